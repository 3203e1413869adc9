"""Rebuilds a named results table: every (row, seed) pretrained and evaluated, then one
Markdown and one CSV table of mean ± std over seeds.

  python -m sslax.reproduce --table=NAME [--seeds=0,1,2] [--outdir=runs/reproduce/NAME]
      [--steps=N] [--batch_size=B] [--methods ROW ...] [--override [ROW:]KEY=VALUE ...]
      [--finetune_steps=N] [--dry_run] [--table_only]

Each (row, seed) runs, one at a time and as its own process (a crash loses one cell, not
the table),

  python -m sslax.main --config=CONFIG --workdir=OUTDIR/ROW/seedS --config.seed=S \
      --config.KEY=VALUE ...   (the table's budget, the row's and --override's)

with its output appended to OUTDIR/ROW/seedS/run.log and what was asked in reproduce.json
beside it. A run whose eval.json exists and whose reproduce.json asks for the same is not
run again, so a second invocation resumes an interrupted table (an interrupted run resumes
from its checkpoint) or, when everything is done, only rebuilds the table. A workdir that
holds a run with other settings is an error for that cell: use another --outdir.

The random-init and raw-input baselines cost a full probe each, so per seed they are
evaluated only in the first run of each encoder architecture (config.model): the table
shows one random-init row per encoder and one raw-input row.

Writes OUTDIR/table.md (with the command, the machine and, below, the papers' numbers for
the paper-scale configs from sslax/published.py) and OUTDIR/table.csv, and prints table.md.
This module plans and runs; reading the runs and rendering the table is sslax/results.py's.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time

from sslax import lessons
from sslax.results import (
  Row,
  Table,
  aggregate,
  invocation_lines,
  machine_lines,
  model_key,
  read_json,
  run_entries,
  write_table,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------
# The named tables.
# ----------------------------------------------------------------------------

def _rows(suffix: str, *names: str) -> tuple[Row, ...]:
  return tuple(Row(name, f"configs/{name}_{suffix}.py") for name in names)


# The image tables share one CPU budget, 500 steps x 256 images (2.1 epochs of Fashion-MNIST),
# so their rows compare at equal data seen; the sequence and text tables keep the budgets
# their config files set. Fine-tuning is off unless --finetune_steps asks for it.
TABLES = {
    "fashion_mnist": Table(
        "Joint-embedding methods on Fashion-MNIST, ConvNet (64, 128, 256), one CPU budget",
        _rows("fashion_mnist", "simclr", "moco_v2", "moco_v3", "byol", "simsiam", "barlow_twins",
              "vicreg", "dino", "swav", "supervised"),
        settings=("total_steps=500", "batch_size=256"),
        note="`supervised` trains the same encoder with labels: the ceiling for this encoder at "
             "this budget, not a self-supervised method."),
    "self_prediction": Table(
        "Self-prediction on Fashion-MNIST: MAE and data2vec (ViT), denoising AE and inpainting (ConvNet)",
        _rows("fashion_mnist", "mae", "data2vec", "denoising_ae", "inpainting"),
        settings=("total_steps=500", "batch_size=256")),
    "pretext": Table(
        "Classic pretext tasks on Fashion-MNIST, ConvNet (64, 128, 256)",
        _rows("fashion_mnist", "rotation", "jigsaw", "relative_patch"),
        settings=("total_steps=500", "batch_size=256")),
    "japanese_vowels": Table(
        "Sequence methods on Japanese Vowels (speaker identification from frames)",
        _rows("japanese_vowels", "apc", "cpc", "masked_frames"), raw_label="raw frames"),
    "fashion_mnist_rows": Table(
        "Sequence methods on Fashion-MNIST read as sequences of 28 pixel rows",
        _rows("fashion_mnist_rows", "apc", "cpc", "masked_frames"), raw_label="raw pixels"),
    "fortunes": Table(
        "Text methods on the fortunes corpus",
        _rows("fortunes", "skipgram", "masked_token", "next_token"), raw_label="raw tokens"),
    # What contrastive and non-contrastive learning teach (sslax/lessons.py, docs/lessons.md).
    **lessons.TABLES,
}


# ----------------------------------------------------------------------------
# Planning and running.
# ----------------------------------------------------------------------------

def load_config(path: str, overrides: list[str]):
  """The config file's get_config() with the KEY=VALUE overrides that apply (those that do
  not are left to sslax.main, whose message names the key)."""
  import importlib.util

  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # configs import the data pipeline
  spec = importlib.util.spec_from_file_location("_reproduce_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for item in overrides:
    key, _, value = item.partition("=")
    *parents, leaf = key.split(".")
    try:
      node = config
      for part in parents:
        node = node[part]
      try:
        parsed = ast.literal_eval(value)
      except (ValueError, SyntaxError):
        parsed = value
      node[leaf] = parsed
    except (KeyError, TypeError, AttributeError, ValueError):
      pass
  return config


def split_overrides(items: list[str], label: str) -> list[str]:
  """`KEY=VALUE` applies to every row, `ROW:KEY=VALUE` to ROW only; -> ["KEY=VALUE", ...]."""
  out = []
  for item in items:
    target, sep, rest = item.partition(":")
    if sep and "=" not in target:
      if target != label:
        continue
      item = rest
    if "=" not in item:
      raise SystemExit(f"error: --override {item!r}: expected KEY=VALUE or ROW:KEY=VALUE")
    out.append(item.removeprefix("--config.").removeprefix("config."))
  return out


def last_wins(overrides: list[str]) -> list[str]:
  """KEY=VALUE items with one per key, the last given, in the order keys first appear: the
  command then says each setting once."""
  values = {}
  for item in overrides:
    key = item.split("=", 1)[0]
    values[key] = item
  return list(values.values())


@dataclasses.dataclass
class Run:
  row: Row
  seed: int
  workdir: str
  config_path: str
  overrides: list[str]               # KEY=VALUE, baselines excluded
  steps: int | None = None
  model: dict | None = None
  baseline_keys: tuple[str, ...] = ()
  random_init: bool = False
  raw: bool = False
  status: str = ""                   # why it cannot run ("" when it can)
  devices: int = 0                   # > 0: CPU devices the run sees (the table's)

  def settings(self) -> dict:
    settings = {"config": self.row.config, "seed": self.seed, "overrides": self.overrides}
    if self.devices:
      settings["devices"] = self.devices
    return settings

  def env(self) -> dict | None:
    """The run's environment: this one, plus the table's CPU device count if it has one
    (a fresh process is the only place XLA reads it)."""
    return device_env(self.devices)


  def command(self, python: str) -> list[str]:
    flags = [f"--config.{o}" for o in self.overrides]
    for key in self.baseline_keys:
      on = self.random_init if key == "random_init_baseline" else self.raw
      flags.append(f"--config.eval.{key}={on}")
    return [python, "-m", "sslax.main", f"--config={self.config_path}", f"--workdir={self.workdir}"] + flags


def device_env(devices: int) -> dict | None:
  """This environment with XLA_FLAGS asking for DEVICES CPU devices; None (inherit) for 0."""
  if not devices:
    return None
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  flags.append(f"--xla_force_host_platform_device_count={devices}")
  return dict(os.environ, XLA_FLAGS=" ".join(flags))


def display_path(path: str) -> str:
  rel = os.path.relpath(path)
  return path if rel.startswith("..") else rel


def plan(table: Table, rows: list[Row], seeds: list[int], outdir: str, extra: list[str]) -> list[Run]:
  """One Run per (row, seed); baselines switched on in the first run of each encoder per
  seed, unless a finished run of that seed in OUTDIR already has them."""
  runs = []
  for row in rows:
    path = os.path.join(REPO, row.config)
    if not os.path.exists(path):
      for seed in seeds:
        runs.append(Run(row, seed, "", display_path(path), [],
                        status=f"no config file {row.config} (not written yet)"))
      continue
    base = last_wins(list(table.settings) + list(row.overrides) + split_overrides(extra, row.label))
    config = load_config(path, base)
    keys = tuple(k for k in config.eval.keys() if k.endswith("_baseline"))
    for seed in seeds:
      runs.append(Run(row, seed, os.path.join(outdir, row.label, f"seed{seed}"), display_path(path),
                      base + [f"seed={seed}"], steps=int(config.total_steps),
                      model=config.model.to_dict(), baseline_keys=keys, devices=table.devices))
  for seed in seeds:
    done_models, have_raw = set(), False
    for run in runs:
      entries = run_entries(run.workdir) if run.workdir else None
      if run.seed == seed and entries is not None:
        if "random_init" in entries:
          done_models.add(model_key(entries["model"] or run.model))
        have_raw = have_raw or "raw" in entries
    for run in runs:
      if run.seed != seed or run.status:
        continue
      key = model_key(run.model)
      if key not in done_models:
        done_models.add(key)
        run.random_init = True
      if not have_raw and run.random_init:
        have_raw = run.raw = True
  return runs


def check(run: Run) -> str:
  """"done", "run", or an error: whether RUN's workdir holds this very run finished, nothing
  (or this run unfinished), or a run with other settings."""
  saved = read_json(os.path.join(run.workdir, "reproduce.json"))
  entries = run_entries(run.workdir)
  if saved is not None and saved.get("settings") != run.settings():
    return (f"{run.workdir} holds a run with other settings ({saved.get('settings')}): use another "
            "--outdir or remove it")
  planned = (read_json(os.path.join(run.workdir, "config.json")) or {}).get("total_steps")
  if saved is None and planned is not None and planned != run.steps:
    return f"{run.workdir} holds a run of {planned} steps, not {run.steps}: use another --outdir"
  if entries is None or entries.get("step") != run.steps:
    return "run"
  if (run.random_init and "random_init" not in entries) or (run.raw and "raw" not in entries):
    return "run"  # resumes from its last checkpoint: only the evaluation runs again
  return "done"


def machine_info(python: str, env: dict | None = None) -> dict:
  """This machine, and the devices a run's JAX sees: asked of a separate process, so this
  one never holds an accelerator the runs need."""
  from importlib import metadata

  info = {"platform": f"{platform.platform()} ({platform.machine()})", "cpus": os.cpu_count(),
          "python": platform.python_version(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
  for package in ("jax", "jaxlib"):
    try:
      info[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      pass
  try:
    out = subprocess.run([python, "-c", "import jax; d = jax.devices(); print(len(d), 'x', d[0].device_kind)"],
                         capture_output=True, text=True, timeout=120, env=env)
    if out.returncode == 0:
      info["devices"] = out.stdout.strip().splitlines()[-1]
  except (OSError, subprocess.SubprocessError):
    pass
  return info


def execute(run: Run, python: str, machine: dict, invocation: str, extra_flags: list[str] = (),
            log_name: str = "run.log") -> int:
  """Runs RUN's command (plus extra_flags), output appended to WORKDIR/LOG_NAME."""
  os.makedirs(run.workdir, exist_ok=True)
  cmd = run.command(python) + list(extra_flags)
  record = {"settings": run.settings(), "command": shlex.join(cmd), "invocation": invocation,
            "machine": machine}
  if log_name == "run.log":
    with open(os.path.join(run.workdir, "reproduce.json"), "w") as f:
      json.dump(record, f, indent=2)
  log_path = os.path.join(run.workdir, log_name)
  print(f"[{run.row.label} seed {run.seed}] {shlex.join(cmd[1:])}  (log: {log_path})", file=sys.stderr, flush=True)
  start = time.perf_counter()
  with open(log_path, "a") as log:
    log.write(f"$ {shlex.join(cmd)}\n")
    log.flush()
    code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=run.env())
  if log_name == "run.log":
    record.update(returncode=code, wall_seconds=round(time.perf_counter() - start, 1))
    with open(os.path.join(run.workdir, "reproduce.json"), "w") as f:
      json.dump(record, f, indent=2)
  return code


def finetune(run: Run, python: str, machine: dict, invocation: str, steps: int) -> str:
  """Fine-tunes RUN's encoder (and, in its encoder's baseline run, the random init) unless
  done; -> "" or what failed."""
  failed = []
  for init, file in (("pretrained", "finetune.json"), ("random", "finetune_random_init.json")):
    if init == "random" and "random_init" not in (run_entries(run.workdir) or {}):
      continue
    done = read_json(os.path.join(run.workdir, file))
    if done is not None and done.get("steps") == steps:
      continue
    code = execute(run, python, machine, invocation, log_name="finetune.log",
                   extra_flags=["--mode=finetune", f"--config.finetune.init={init}",
                                f"--config.finetune.total_steps={steps}"])
    if code != 0:
      failed.append(f"fine-tuning ({init}) failed (exit {code}, see {run.workdir}/finetune.log)")
  return "; ".join(failed)


def reproduce(name: str, table: Table, *, rows: list[Row], seeds: list[int], outdir: str,
              overrides: list[str], command: str, python: str = sys.executable,
              finetune_steps: int | None = None, dry_run: bool = False, table_only: bool = False) -> int:
  """Runs what is missing of TABLE (unless table_only), writes OUTDIR/table.md and table.csv,
  prints the Markdown; -> exit status (1 if a cell could not be made, 2 if nothing can)."""
  runs = plan(table, rows, seeds, outdir, overrides)
  missing = sorted({r.row.config for r in runs if r.status.startswith("no config")})
  if len(missing) == len(rows):
    print(f"error: table {name!r}: no config file exists yet: {', '.join(missing)}", file=sys.stderr)
    return 2
  for config in missing:
    print(f"warning: {config} does not exist yet: its row stays empty", file=sys.stderr)
  finetune_steps = table.finetune_steps if finetune_steps is None else finetune_steps
  status = {(r.row.label, r.seed): r.status for r in runs if r.status}
  if dry_run:
    for run in runs:
      if run.status:
        print(f"# {run.row.label} seed {run.seed}: {run.status}")
        continue
      state = check(run)
      prefix = "" if state == "run" else "# done already: " if state == "done" else f"# error: {state}\n# "
      devices = f"XLA_FLAGS=--xla_force_host_platform_device_count={run.devices} " if run.devices else ""
      print(prefix + devices + shlex.join(run.command(python)))
      if finetune_steps:
        print(f"#   then --mode=finetune --config.finetune.total_steps={finetune_steps}"
              + (" (and --config.finetune.init=random)" if run.random_init else ""))
    return 0
  if not table_only:
    machine = None
    for run in runs:
      if run.status:
        continue
      state = check(run)
      if state == "done":
        print(f"[{run.row.label} seed {run.seed}] done already ({run.workdir}/eval.json)", file=sys.stderr)
      elif state != "run":
        status[(run.row.label, run.seed)] = state
        print(f"[{run.row.label} seed {run.seed}] error: {state}", file=sys.stderr)
        continue
      else:
        machine = machine or machine_info(python, device_env(table.devices))
        code = execute(run, python, machine, command)
        if code != 0:
          status[(run.row.label, run.seed)] = f"failed (exit {code}, see {run.workdir}/run.log)"
          continue
      if finetune_steps:
        machine = machine or machine_info(python, device_env(table.devices))
        failed = finetune(run, python, machine, command, finetune_steps)
        if failed:
          status[(run.row.label, run.seed)] = failed

  agg = aggregate(table, rows, seeds, outdir, status)
  text = write_table(name, table, agg, seeds, outdir, command=command,
                     machines=machine_lines(run.workdir for run in runs if run.workdir),
                     invocations=invocation_lines(run.workdir for run in runs if run.workdir),
                     settings=last_wins(list(table.settings) + overrides))
  print(text, flush=True)
  if table.figure is not None:
    from sslax import plot  # matplotlib: only when a table has a picture
    print(plot.draw_table(table.figure, agg, outdir, seeds, os.path.join(outdir, "table.png")),
          file=sys.stderr)
  return 1 if status else 0


def parse_args(argv=None):
  parser = argparse.ArgumentParser(prog="python -m sslax.reproduce", description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--table", required=True, help=f"one of: {', '.join(TABLES)}")
  parser.add_argument("--seeds", default=None, help="comma-separated (default: the table's, 0,1,2)")
  parser.add_argument("--outdir", default=None, help="default: runs/reproduce/TABLE")
  parser.add_argument("--steps", type=int, default=None, help="pretraining steps of every row")
  parser.add_argument("--batch_size", type=int, default=None, help="global batch of every row")
  parser.add_argument("--methods", nargs="+", default=None, metavar="ROW",
                      help="only these rows of the table (commas also separate)")
  parser.add_argument("--override", action="append", default=[], metavar="[ROW:]KEY=VALUE",
                      help="a config override for every row, or for ROW only; repeatable")
  parser.add_argument("--finetune_steps", type=int, default=None,
                      help="also fine-tune every encoder for N steps (0: off; default: the table's)")
  parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  parser.add_argument("--table_only", action="store_true", help="rebuild the table from OUTDIR, run nothing")
  parser.add_argument("--python", default=sys.executable, help="interpreter for the runs")
  return parser.parse_args(argv)


def select_rows(name: str, table: Table, methods) -> list[Row]:
  if not methods:
    return list(table.rows)
  wanted = [m for item in methods for m in item.split(",") if m]
  labels = [r.label for r in table.rows]
  unknown = [m for m in wanted if m not in labels]
  if unknown:
    raise SystemExit(f"error: table {name!r} has no row {', '.join(map(repr, unknown))}; "
                     f"its rows: {', '.join(labels)}")
  return [r for r in table.rows if r.label in wanted]


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parse_args(argv)
  if args.table not in TABLES:
    print(f"error: unknown table {args.table!r}; tables: {', '.join(TABLES)}", file=sys.stderr)
    return 2
  table = TABLES[args.table]
  try:
    seeds = list(table.seeds) if args.seeds is None else [int(s) for s in args.seeds.split(",") if s]
  except ValueError:
    print(f"error: --seeds={args.seeds!r}: expected comma-separated integers", file=sys.stderr)
    return 2
  overrides = list(args.override)
  if args.steps is not None:
    overrides.append(f"total_steps={args.steps}")
  if args.batch_size is not None:
    overrides.append(f"batch_size={args.batch_size}")
  return reproduce(args.table, table, rows=select_rows(args.table, table, args.methods), seeds=seeds,
                   outdir=args.outdir or os.path.join("runs", "reproduce", args.table),
                   overrides=overrides, command=shlex.join(["python", "-m", "sslax.reproduce", *argv]),
                   python=args.python, finetune_steps=args.finetune_steps, dry_run=args.dry_run,
                   table_only=args.table_only)


if __name__ == "__main__":
  sys.exit(main())
