"""Training curves of one or more runs as one PNG, from their WORKDIR/metrics.jsonl:

  python -m sslax.plot WORKDIR [WORKDIR ...] [--out=PATH.png]

One panel per quantity (loss, learning rate, online probe accuracy, RankMe, normalized std),
each run overlaid and named by its workdir; a quantity no run logged gets no panel. The
default output is WORKDIR/curves.png for one run and ./curves.png for several; the path
written is printed. No TensorBoard needed: the JSON lines are the same scalars
(sslax/metrics.py), so this also works on a machine that only copied the workdirs back.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Sequence

# (key in metrics.jsonl, panel title), in the order the panels are drawn. The keys are those
# sslax/train.py and sslax/online_probe.py log.
PANELS = (
    ("loss", "loss"),
    ("learning_rate", "learning rate"),
    ("online_probe/accuracy", "online probe accuracy (train batch)"),
    ("diagnostics/rankme", "RankMe (effective rank)"),
    ("diagnostics/normalized_std", "normalized std"),
)
PANEL_SIZE = (5.0, 3.5)  # inches per panel; at DPI, 500 x 350 pixels
DPI = 100
COLUMNS = 2

Series = dict[str, tuple[list[int], list[float]]]  # key -> (steps, values), in step order


class PlotError(Exception):
  """Something the user can fix (a wrong path, an empty log); printed as one line."""


def read_records(path: str) -> list[dict]:
  """The JSON objects of a metrics.jsonl. A last line that does not parse is skipped: a run
  that is still writing may have written half of it. A bad line before the last is an error,
  since it means the file is not the log this module reads."""
  try:
    with open(path) as f:
      lines = f.read().splitlines()
  except OSError as error:
    raise PlotError(f"cannot read {path}: {error.strerror}") from None
  lines = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
  records = []
  for position, (number, line) in enumerate(lines):
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      if position == len(lines) - 1:
        print(f"note: {path}:{number}: skipped an incomplete last line (is the run still "
              "writing?)", file=sys.stderr)
        break
      raise PlotError(f"{path}:{number}: not a JSON object; is this an sslax metrics.jsonl?") from None
    if not isinstance(record, dict) or "step" not in record:
      raise PlotError(f"{path}:{number}: a record without \"step\"; is this an sslax metrics.jsonl?")
    records.append(record)
  if not records:
    raise PlotError(f"{path} holds no records yet; plot after the run's first log step")
  return records


def collect_series(workdir: str, keys: Sequence[str] = tuple(k for k, _ in PANELS)) -> Series:
  """workdir -> {key: (steps, values)} for each of `keys` the run logged, sorted by step."""
  if not os.path.isdir(workdir):
    raise PlotError(f"{workdir}: no such directory")
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    raise PlotError(f"{workdir} has no metrics.jsonl; is it the --workdir of an sslax run?")
  series: Series = {}
  for record in sorted(read_records(path), key=lambda r: r["step"]):
    for key in keys:
      value = record.get(key)
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        steps, values = series.setdefault(key, ([], []))
        steps.append(int(record["step"]))
        values.append(float(value))
  return series


def run_names(workdirs: Sequence[str]) -> list[str]:
  """The legend's names: each workdir's last component, or the whole path where two runs
  would share it (runs/a/seed0 and runs/b/seed0)."""
  names = [os.path.basename(os.path.normpath(w)) or w for w in workdirs]
  return [name if names.count(name) == 1 else os.path.normpath(w) for name, w in zip(names, workdirs)]


def _figure(panels: int, columns: int = COLUMNS, size: tuple[float, float] = PANEL_SIZE):
  """An empty figure of PANELS panels, COLUMNS to a row, unused axes hidden -> (fig, axes).
  A fixed size (no bbox_inches="tight"), so the picture's size depends only on the panels."""
  import matplotlib
  matplotlib.use("Agg")  # no display: this runs on training machines over ssh
  from matplotlib.figure import Figure

  columns = max(1, min(columns, panels))
  rows = math.ceil(panels / columns)
  fig = Figure(figsize=(size[0] * columns, size[1] * rows), dpi=DPI, layout="constrained")
  axes = fig.subplots(rows, columns, squeeze=False).ravel()
  for ax in axes[panels:]:
    ax.set_visible(False)
  return fig, axes


def draw(runs: dict[str, Series], out: str) -> list[str]:
  """One figure, one panel per key some run logged, written to `out`; -> the keys drawn."""
  panels = [(key, title) for key, title in PANELS if any(key in s for s in runs.values())]
  if not panels:
    raise PlotError("no run logged any of " + ", ".join(k for k, _ in PANELS))
  fig, axes = _figure(len(panels))
  from matplotlib.lines import Line2D  # after _figure has chosen the Agg backend

  colors = {name: f"C{i % 10}" for i, name in enumerate(runs)}
  for ax, (key, title) in zip(axes, panels):
    for name, series in runs.items():
      if key in series:
        steps, values = series[key]
        ax.plot(steps, values, color=colors[name], label=name, marker="." if len(steps) < 30 else None)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  handles = [Line2D([], [], color=colors[name]) for name in runs]
  fig.legend(handles, list(runs), loc="outside upper center", ncols=min(len(runs), 4))
  directory = os.path.dirname(os.path.abspath(out))
  os.makedirs(directory, exist_ok=True)
  try:
    fig.savefig(out)
  except (ValueError, OSError) as error:
    raise PlotError(f"cannot write {out}: {error}") from None
  return [key for key, _ in panels]


def _cell(agg: dict, row: dict, name: str):
  """(mean, std) of column NAME in aggregated ROW; (None, None) if the table lacks it."""
  for (_, _, measured, _), (mean, std, _) in zip(agg["columns"], row["cells"]):
    if measured == name:
      return mean, std
  return None, None


def draw_table(figure, agg: dict, outdir: str, seeds: Sequence[int], out: str) -> str:
  """A results table's picture (figure: sslax.results.Figure; agg: sslax.results.aggregate's
  output, read from OUTDIR's runs) written to OUT; -> OUT. Means with error bars of one std
  over the seeds where there are several."""
  methods = [r for r in agg["rows"] if r["kind"] == "method"]
  if figure.kind == "lines":
    fig, axes = _figure(len(figure.columns))
    for ax, name in zip(axes, figure.columns):
      groups: dict = {}
      for row in methods:
        params = agg["params"].get(row["label"], {})
        mean, std = _cell(agg, row, name)
        if mean is not None and figure.x in params:
          groups.setdefault(params.get(figure.series, ""), []).append((params[figure.x], mean, std or 0.0))
      for series, points in groups.items():
        xs, ys, errors = zip(*sorted(points))
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=f"{figure.series} {series}")
      for row in agg["rows"]:  # the baselines, for scale
        mean, _ = _cell(agg, row, name)
        if row["kind"] != "method" and mean is not None:
          ax.axhline(mean, color="gray", linestyle="--", linewidth=1)
          ax.annotate(row["label"], (0.01, mean), xycoords=("axes fraction", "data"), fontsize=7,
                      color="gray", va="bottom")
      ax.set_xscale("log", base=2)
      ax.set_xlabel(figure.x)
      ax.set_title(f"{name} (%)")
      ax.grid(alpha=0.3)
      if groups:
        ax.legend(fontsize=8)
  elif figure.kind == "bars":
    rows = [r for r in agg["rows"] if any(_cell(agg, r, n)[0] is not None for n in figure.columns)]
    fig, axes = _figure(1, size=(max(6.0, 0.9 * len(rows) * max(1, len(figure.columns)) / 2), 4.5))
    ax = axes[0]
    width = 0.8 / max(1, len(figure.columns))
    for j, name in enumerate(figure.columns):
      cells = [_cell(agg, r, name) for r in rows]
      xs = [i + (j - (len(figure.columns) - 1) / 2) * width for i in range(len(rows))]
      ax.bar(xs, [m if m is not None else 0.0 for m, _ in cells], width,
             yerr=[s or 0.0 for _, s in cells], capsize=2, label=name)
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
    values = [m for r in rows for n in figure.columns for m in [_cell(agg, r, n)[0]] if m is not None]
    if values:  # accuracies differ by points: start the axis near the lowest
      ax.set_ylim(max(0.0, min(values) - 5), min(100.0, max(values) + 2))
    ax.set_ylabel("test top-1 (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(3, len(figure.columns)))
  elif figure.kind == "curves":
    runs = {}
    for row in methods:
      workdir = os.path.join(outdir, row["label"], f"seed{seeds[0]}")
      try:
        runs[row["label"]] = collect_series(workdir, [k for k, _ in figure.keys])
      except PlotError:
        continue
    fig, axes = _figure(len(figure.keys))
    for ax, (key, title) in zip(axes, figure.keys):
      for i, (name, series) in enumerate(runs.items()):
        if key in series:
          ax.plot(*series[key], color=f"C{i % 10}", label=name)
      ax.set_title(title)
      ax.set_xlabel("step")
      ax.grid(alpha=0.3)
    if runs:
      axes[0].legend(fontsize=7)
  else:
    raise PlotError(f"unknown figure kind {figure.kind!r}: lines, bars or curves")
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  fig.savefig(out)
  return out


def default_out(workdirs: Sequence[str]) -> str:
  return os.path.join(workdirs[0], "curves.png") if len(workdirs) == 1 else "curves.png"


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m sslax.plot", description="Training curves of sslax runs as one PNG.")
  parser.add_argument("workdirs", nargs="+", metavar="WORKDIR", help="a run's --workdir")
  parser.add_argument("--out", help="the PNG to write (default: WORKDIR/curves.png for one "
                      "run, ./curves.png for several)")
  args = parser.parse_args(argv)
  try:
    runs = {name: collect_series(w) for name, w in zip(run_names(args.workdirs), args.workdirs)}
    out = args.out or default_out(args.workdirs)
    draw(runs, out)
  except PlotError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
