"""benchmarks/fashion_mnist_methods.py: the table from fake run directories, the command
it builds, and one end-to-end run of the script on tiny data (resumed, then --table_only)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import write_tiny_fashion_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "fashion_mnist_methods.py")


def load_script():
  spec = importlib.util.spec_from_file_location("fashion_mnist_methods", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def fake_eval(step: int, probe: float, knn: float, baselines: bool = False) -> dict:
  result = {"step": step, "dataset": "fashion_mnist", "train_split": "train", "test_split": "test",
            "pretrained": {"linear_probe": {"accuracy": probe}, "knn": {"accuracy": knn},
                           "feature_dim": 256, "seconds": 1.0}}
  if baselines:
    result["random_init"] = {"linear_probe": {"accuracy": 0.8401}, "knn": {"accuracy": 0.7648}}
    result["raw_pixels"] = {"linear_probe": {"accuracy": 0.8430}}
  return result


def write(path: str, text: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)


def test_table_from_fake_runs(tmp_path):
  bench = load_script()
  out = str(tmp_path)
  write(f"{out}/simclr/eval.json", json.dumps(fake_eval(4000, 0.88154, 0.83149, baselines=True)))
  # A resumed run: the trainer logged two segments, their times add up.
  write(f"{out}/simclr.log", "INFO sslax.train: trained steps 0..2500 in 400.0 s\nstep ...\n"
                             "INFO sslax.train: trained steps 2500..4000 in 275.0 s\n"
                             "$ python -m sslax.main --mode=finetune ...\n"  # not pretraining
                             "INFO sslax.train: trained steps 0..500 in 50.0 s\n")
  write(f"{out}/vicreg/eval.json", json.dumps(fake_eval(4000, 0.8612, 0.8011)))
  write(f"{out}/vicreg.log", "no trainer line here\n")
  write(f"{out}/vicreg.time", json.dumps({"wall_seconds": 812.4, "steps": 4000, "returncode": 0}))
  write(f"{out}/moco_v2.log", "Traceback ...\n")  # a run that failed: no eval.json
  entries = bench.collect(out, ["simclr", "vicreg", "moco_v2", "simsiam", "no_such_method"],
                          {"moco_v2": "failed (exit 1, see moco_v2.log)"})
  table = bench.markdown_table(entries)
  assert table.splitlines() == [
      "fashion_mnist test accuracy after 4000 pretraining steps; baselines evaluated in the simclr run",
      "",
      "| method | linear probe | kNN | pretraining time (s) |",
      "|---|---|---|---|",
      "| simclr | 88.15% | 83.15% | 675 |",
      "| vicreg | 86.12% | 80.11% | 812 (wall) |",
      "| moco_v2 | failed (exit 1, see moco_v2.log) | - | - |",
      "| simsiam | not run | - | - |",
      "| no_such_method | no config | - | - |",
      "| random-init encoder | 84.01% | 76.48% | - |",
      "| raw pixels | 84.30% | - | - |",
  ]


def test_table_without_any_result_and_baselines_from_a_later_row(tmp_path):
  bench = load_script()
  out = str(tmp_path)
  assert bench.markdown_table(bench.collect(out, ["simclr"])).splitlines() == [
      "| method | linear probe | kNN | pretraining time (s) |", "|---|---|---|---|",
      "| simclr | not run | - | - |"]
  write(f"{out}/simclr/eval.json", json.dumps(fake_eval(100, 0.5, 0.4)))
  write(f"{out}/vicreg/eval.json", json.dumps(fake_eval(100, 0.6, 0.5, baselines=True)))
  lines = bench.markdown_table(bench.collect(out, ["simclr", "vicreg"])).splitlines()
  assert lines[0].endswith("baselines evaluated in the vicreg run")
  assert lines[-2:] == ["| random-init encoder | 84.01% | 76.48% | - |", "| raw pixels | 84.30% | - | - |"]


def test_command_and_overrides():
  bench = load_script()
  overrides = ["model.widths=(8,16)", "simclr:method.projector_dim=16", "vicreg:method.sim_coeff=1.0",
               "config.data.data_dir=C:/data"]
  cmd = bench.command("simclr", "/out/simclr", steps=10, batch_size=32, baselines=False,
                      overrides=overrides, python="python")
  assert cmd == ["python", "-m", "sslax.main", f"--config={REPO}/configs/simclr_fashion_mnist.py",
                 "--workdir=/out/simclr", "--config.total_steps=10", "--config.batch_size=32",
                 "--config.eval.random_init_baseline=False", "--config.eval.raw_pixel_baseline=False",
                 "--config.model.widths=(8,16)", "--config.method.projector_dim=16",
                 "--config.data.data_dir=C:/data"]
  cmd = bench.command("vicreg", "/out/vicreg", steps=None, batch_size=None, baselines=True,
                      overrides=overrides, python="python")
  assert "--config.eval.random_init_baseline=True" in cmd and "--config.method.sim_coeff=1.0" in cmd
  assert not any("total_steps" in c or "batch_size" in c or "projector_dim" in c for c in cmd)
  with pytest.raises(SystemExit):
    bench.split_overrides(["no_equals_sign"], "simclr")


def test_end_to_end_on_tiny_data(tmp_path):
  """Two methods and a missing one on the tiny dataset; the second run has the baselines
  off; a second invocation runs nothing; --table_only prints the same table."""
  idx = str(tmp_path / "idx")
  write_tiny_fashion_mnist(idx)
  env = {**os.environ, "SSLAX_FASHION_MNIST_DIR": idx, "JAX_PLATFORMS": "cpu"}
  out = str(tmp_path / "bench")
  tiny = ["--steps=4", "--batch_size=16"]
  for item in (f"data.data_dir={tmp_path / 'tfds'}", "num_devices=1", "model.widths=(8,16)",
               "log_every_steps=2", "checkpoint_every_steps=4", "async_checkpoints=False",
               "eval.batch_size=32", "eval.probe_weight_decays=(1e-4,)", "eval.knn_k=5",
               "simclr:method.projector_hidden=(32,)", "simclr:method.projector_dim=16"):
    tiny.append(f"--override={item}")
  run = lambda *extra: subprocess.run(  # noqa: E731
      [sys.executable, SCRIPT, f"--outdir={out}", "--methods", "simclr", "supervised", "no_such_method",
       *tiny, *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)

  first = run()
  assert first.returncode == 0, first.stderr[-3000:]
  assert "no_such_method" in first.stderr and "no configs/no_such_method_fashion_mnist.py" in first.stderr
  lines = first.stdout.strip().splitlines()
  assert lines[0].startswith("fashion_mnist test accuracy after 4 pretraining steps; "
                             "baselines evaluated in the simclr run")
  rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
  assert set(rows) == {"method", "simclr", "supervised", "no_such_method", "random-init encoder",
                       "raw pixels"}
  for name in ("simclr", "supervised"):
    cells = [c.strip() for c in rows[name].strip("|").split("|")]
    assert cells[1].endswith("%") and cells[2].endswith("%") and float(cells[3]) > 0, rows[name]
  assert "no config" in rows["no_such_method"]
  with open(f"{out}/supervised/eval.json") as f:
    supervised = json.load(f)
  assert supervised["step"] == 4 and "random_init" not in supervised and "raw_pixels" not in supervised
  with open(f"{out}/simclr/eval.json") as f:
    assert {"random_init", "raw_pixels"} <= set(json.load(f))
  with open(f"{out}/supervised.time") as f:
    assert json.load(f)["returncode"] == 0

  again = run()  # everything is done: nothing runs
  assert again.returncode == 0, again.stderr[-3000:]
  assert "done already" in again.stderr and "sslax.main" not in again.stderr
  assert again.stdout == first.stdout
  table_only = run("--table_only")
  assert table_only.stdout == first.stdout


def test_one_random_init_row_per_encoder(tmp_path):
  """Methods on different encoders (a ConvNet and a ViT) each get their own random-init row,
  from the first run of that encoder; raw pixels once."""
  bench = load_script()
  out = str(tmp_path)
  convnet = {"name": "convnet", "widths": [64, 128, 256]}
  vit = {"name": "vit", "patch_size": 4, "hidden_dim": 128, "depth": 4}
  vit_init = fake_eval(1000, 0.7, 0.6, baselines=True)
  vit_init["random_init"] = {"linear_probe": {"accuracy": 0.7512}, "knn": {"accuracy": 0.7012}}
  for name, model, result in (("mae", vit, vit_init), ("data2vec", vit, fake_eval(1000, 0.8, 0.7)),
                              ("inpainting", convnet, fake_eval(1000, 0.85, 0.75, baselines=True))):
    write(f"{out}/{name}/eval.json", json.dumps(result))
    write(f"{out}/{name}/config.json", json.dumps({"model": model, "total_steps": 1000}))
  lines = bench.markdown_table(bench.collect(out, ["mae", "data2vec", "inpainting"])).splitlines()
  assert lines[0].endswith("baselines evaluated in the mae and inpainting runs")
  assert lines[-3:] == ["| random-init ViT (4px patches, 128 wide, 4 deep) | 75.12% | 70.12% | - |",
                        "| random-init ConvNet (64, 128, 256) | 84.01% | 76.48% | - |",
                        "| raw pixels | 84.30% | - | - |"]


def test_fine_tune_column(tmp_path):
  bench = load_script()
  out = str(tmp_path)
  write(f"{out}/mae/eval.json", json.dumps(fake_eval(1000, 0.7, 0.6, baselines=True)))
  write(f"{out}/mae/finetune.json", json.dumps({"steps": 500, "accuracy": 0.9012}))
  write(f"{out}/mae/finetune_random_init.json", json.dumps({"steps": 500, "accuracy": 0.8834}))
  write(f"{out}/data2vec/eval.json", json.dumps(fake_eval(1000, 0.8, 0.7)))
  lines = bench.markdown_table(bench.collect(out, ["mae", "data2vec"])).splitlines()
  assert "fine-tune: 500 steps of full fine-tuning" in lines[0]
  assert lines[2:] == [
      "| method | linear probe | kNN | fine-tune | pretraining time (s) |",
      "|---|---|---|---|---|",
      "| mae | 70.00% | 60.00% | 90.12% | - |",
      "| data2vec | 80.00% | 70.00% | - | - |",
      "| random-init encoder | 84.01% | 76.48% | 88.34% | - |",
      "| raw pixels | 84.30% | - | - | - |"]
