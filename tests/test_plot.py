"""python -m sslax.plot on hand-written metrics.jsonl files: the series it collects are the
values written, the PNG decodes at the size its panels imply, and user errors exit with
status 2 and one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from sslax import plot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run "alpha" logs all five plotted quantities (and one the plot ignores); run "beta" only
# the loss, every other step, and was cut off mid-line as a run still writing would be.
ALPHA = [
    {"step": s, "loss": 5.0 - s, "learning_rate": 0.1 * s, "grad_norm": 9.0,
     "online_probe/accuracy": 0.1 * s, "diagnostics/rankme": 2.0 + s,
     "diagnostics/normalized_std": 0.01 * s}
    for s in (1, 2, 3, 4)
]
BETA = [{"step": s, "loss": 6.0 - 0.5 * s} for s in (2, 4)]


def write_run(folder, records, tail: str = "") -> str:
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
    f.write(tail)
  return str(folder)


def run_plot(*args, cwd=REPO):
  return subprocess.run([sys.executable, "-m", "sslax.plot", *args], cwd=cwd,
                        capture_output=True, text=True, timeout=120,
                        env={**os.environ, "PYTHONPATH": REPO})


@pytest.fixture
def runs(tmp_path):
  return (write_run(tmp_path / "alpha", ALPHA),
          write_run(tmp_path / "beta", BETA, tail='{"step": 6, "lo'))


def test_collected_series_are_the_values_written(runs):
  alpha, beta = runs
  got = plot.collect_series(alpha)
  assert sorted(got) == sorted(k for k, _ in plot.PANELS)
  for key in got:
    assert got[key] == ([1, 2, 3, 4], [r[key] for r in ALPHA])
  assert plot.collect_series(beta) == {"loss": ([2, 4], [5.0, 4.0])}


def test_two_runs_give_one_png_with_a_panel_per_quantity(runs, tmp_path):
  out = tmp_path / "both.png"
  result = run_plot(*runs, f"--out={out}")
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == str(out)
  assert "incomplete last line" in result.stderr
  with Image.open(out) as image:
    image.load()
    # 5 panels in 2 columns x 3 rows of 500 x 350 pixels.
    assert image.size == (1000, 1050)


def test_one_run_defaults_to_its_workdir_and_omits_unlogged_panels(runs):
  _, beta = runs
  result = run_plot(beta)
  assert result.returncode == 0, result.stderr
  out = os.path.join(beta, "curves.png")
  assert result.stdout.strip() == out
  with Image.open(out) as image:
    image.load()
    assert image.size == (500, 350)  # the loss alone


@pytest.mark.parametrize("case, message", [
    ("missing", "no such directory"),
    ("no_log", "has no metrics.jsonl"),
    ("empty", "holds no records"),
    ("garbled", "not a JSON object"),
])
def test_user_errors_exit_2_with_one_line(case, message, tmp_path):
  workdir = tmp_path / case
  if case == "no_log":
    workdir.mkdir()
  elif case == "empty":
    write_run(workdir, [])
  elif case == "garbled":
    write_run(workdir, [], tail='{"step": 1, "lo\n{"step": 2, "loss": 1.0}\n')
  result = run_plot(str(workdir), cwd=tmp_path)
  assert result.returncode == 2
  assert result.stdout == ""
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
  assert not (tmp_path / "curves.png").exists()
