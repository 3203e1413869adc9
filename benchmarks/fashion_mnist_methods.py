"""Every method pretrained on Fashion-MNIST at the same CPU budget, evaluated by the same
frozen linear probe and kNN, printed as one markdown table (the README's methods table).

  .venv/bin/python benchmarks/fashion_mnist_methods.py [--outdir=runs/fmnist_methods]
      [--methods simclr simsiam ...] [--steps=N] [--batch_size=B]
      [--override KEY=VALUE ...] [--override METHOD:KEY=VALUE ...] [--table_only]

For each method NAME it runs, one at a time,

  python -m sslax.main --config=configs/NAME_fashion_mnist.py --workdir=OUTDIR/NAME \
      [--config.total_steps=N] [--config.batch_size=B] [--config.KEY=VALUE ...]

with its output in OUTDIR/NAME.log (appended to, so a resumed run keeps the earlier part)
and the wall time of the command in OUTDIR/NAME.time. A method without a config file is
reported, not run. The random-init encoder and raw-pixel baselines are evaluated once,
in the run of the first method (in --methods order) that has a config, unless a result
in OUTDIR has them already: every CPU config shares `config_lib.fashion_mnist_cpu`'s
ConvNet, data and seed, so the random-init encoder is the same for all of them (the
table names the run they came from); every other run has both baselines switched off.

A method whose OUTDIR/NAME/eval.json already records the requested number of steps is
not run again, so an interrupted benchmark resumes where it stopped (an interrupted
pretraining resumes from its last checkpoint). A workdir whose config.json asks for a
different number of steps is an error: use another --outdir.

The pretraining time is the trainer's own "trained steps a..b in T s" log line (summed
over resumed segments: compilation included, data preparation and evaluation not);
where the log has none, the wall time of the whole command (OUTDIR/NAME.time) is shown
with a "(wall)" mark.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_METHODS = ("simclr", "moco_v2", "moco_v3", "byol", "simsiam", "barlow_twins", "vicreg",
                   "dino", "swav", "rotation", "jigsaw", "relative_patch", "supervised")
_TRAINED = re.compile(r"trained steps (\d+)\.\.(\d+) in ([0-9.]+) s")


def config_path(name: str) -> str:
  return os.path.join(REPO, "configs", f"{name}_fashion_mnist.py")


# ----------------------------------------------------------------------------
# Reading a run's results, and the table (pure: tested on fake files).
# ----------------------------------------------------------------------------

def pretraining_seconds(outdir: str, name: str) -> tuple[float | None, bool]:
  """(seconds, is_wall_time): the sum of the trainer's "trained steps" lines in
  OUTDIR/NAME.log, else the wall time in OUTDIR/NAME.time, else None."""
  log = os.path.join(outdir, f"{name}.log")
  if os.path.exists(log):
    with open(log, errors="replace") as f:
      segments = [float(m.group(3)) for m in _TRAINED.finditer(f.read())]
    if segments:
      return sum(segments), False
  wall = os.path.join(outdir, f"{name}.time")
  if os.path.exists(wall):
    with open(wall) as f:
      return float(json.load(f)["wall_seconds"]), True
  return None, False


def read_eval(outdir: str, name: str) -> dict | None:
  path = os.path.join(outdir, name, "eval.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def collect(outdir: str, methods, status: dict[str, str] | None = None) -> list[dict]:
  """One entry per method: name, eval (eval.json or None), seconds, wall, status (why
  there is no result: "no config", "failed", ...; "" when there is one)."""
  status = status or {}
  entries = []
  for name in methods:
    seconds, wall = pretraining_seconds(outdir, name)
    result = read_eval(outdir, name)
    why = status.get(name, "")
    if not why and result is None:
      why = "no config" if not os.path.exists(config_path(name)) else "not run"
    entries.append(dict(name=name, eval=result, seconds=seconds, wall=wall, status=why))
  return entries


def _percent(result: dict | None, key: str) -> str:
  if not result or key not in result:
    return "-"
  return f"{100 * result[key]['accuracy']:.2f}%"


def markdown_table(entries: list[dict]) -> str:
  """The markdown table of `collect`'s entries: a row per method, then the random-init and
  raw-pixel rows from the first eval.json that has them."""
  lines = ["| method | linear probe | kNN | pretraining time (s) |", "|---|---|---|---|"]
  baseline_from = None
  steps = set()
  for e in entries:
    result = e["eval"]
    if result is None:
      lines.append(f"| {e['name']} | {e['status'] or 'no result'} | - | - |")
      continue
    steps.add(result.get("step"))
    if baseline_from is None and ("random_init" in result or "raw_pixels" in result):
      baseline_from = e
    pretrained = result.get("pretrained", {})
    seconds = "-" if e["seconds"] is None else f"{e['seconds']:.0f}" + (" (wall)" if e["wall"] else "")
    lines.append(f"| {e['name']} | {_percent(pretrained, 'linear_probe')} | "
                 f"{_percent(pretrained, 'knn')} | {seconds} |")
  if baseline_from is not None:
    result = baseline_from["eval"]
    if "random_init" in result:
      r = result["random_init"]
      lines.append(f"| random-init encoder | {_percent(r, 'linear_probe')} | {_percent(r, 'knn')} | - |")
    if "raw_pixels" in result:
      lines.append(f"| raw pixels | {_percent(result['raw_pixels'], 'linear_probe')} | - | - |")
  done = [e["eval"] for e in entries if e["eval"] is not None]
  if done:
    first = done[0]
    caption = (f"{first.get('dataset', '?')} {first.get('test_split', '?')} accuracy after "
               f"{' / '.join(str(s) for s in sorted(s for s in steps if s is not None))} pretraining steps")
    if baseline_from is not None:
      caption += f"; baselines evaluated in the {baseline_from['name']} run"
    lines = [caption, ""] + lines
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# Running the methods.
# ----------------------------------------------------------------------------

def config_total_steps(name: str) -> int:
  """total_steps of configs/NAME_fashion_mnist.py (imports sslax: only when running)."""
  import importlib.util

  spec = importlib.util.spec_from_file_location(f"_{name}_fashion_mnist", config_path(name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return int(module.get_config().total_steps)


def split_overrides(overrides: list[str], name: str) -> list[str]:
  """`--override KEY=VALUE` applies to every method, `METHOD:KEY=VALUE` to METHOD only;
  -> ["--config.KEY=VALUE", ...] for NAME."""
  flags = []
  for item in overrides:
    target, sep, rest = item.partition(":")
    if sep and "=" not in target:  # METHOD:KEY=VALUE
      if target != name:
        continue
      item = rest
    if "=" not in item:
      raise SystemExit(f"error: --override {item!r}: expected KEY=VALUE or METHOD:KEY=VALUE")
    flags.append("--config." + item.removeprefix("config."))
  return flags


def command(name: str, workdir: str, *, steps: int | None, batch_size: int | None,
            baselines: bool, overrides: list[str], python: str) -> list[str]:
  cmd = [python, "-m", "sslax.main", f"--config={config_path(name)}", f"--workdir={workdir}"]
  if steps is not None:
    cmd.append(f"--config.total_steps={steps}")
  if batch_size is not None:
    cmd.append(f"--config.batch_size={batch_size}")
  cmd += [f"--config.eval.random_init_baseline={baselines}",
          f"--config.eval.raw_pixel_baseline={baselines}"]
  return cmd + split_overrides(overrides, name)


def _workdir_steps(workdir: str) -> int | None:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f).get("total_steps")


def run_all(args) -> dict[str, str]:
  """Runs every method that has a config and no result yet; -> {name: status} for those
  without a result."""
  os.makedirs(args.outdir, exist_ok=True)
  status = {}
  # The baselines are evaluated once: in the first method's run, unless a result in
  # OUTDIR has them already.
  # Any run in OUTDIR counts, also one of a method not asked for this time.
  runs_in_outdir = [n for n in os.listdir(args.outdir) if os.path.isdir(os.path.join(args.outdir, n))]
  have_baselines = any("random_init" in (read_eval(args.outdir, n) or {}) for n in runs_in_outdir)
  baseline_name = None if have_baselines else next(
      (n for n in args.methods if os.path.exists(config_path(n))), None)
  for name in args.methods:
    if not os.path.exists(config_path(name)):
      status[name] = "no config"
      print(f"[{name}] skipped: no configs/{name}_fashion_mnist.py", file=sys.stderr, flush=True)
      continue
    steps = args.steps
    for flag in split_overrides(args.override, name):  # --override total_steps=N counts too
      if flag.startswith("--config.total_steps="):
        steps = int(flag.split("=", 1)[1])
    if steps is None:
      steps = config_total_steps(name)
    workdir = os.path.join(args.outdir, name)
    baselines = name == baseline_name
    result = read_eval(args.outdir, name)
    if result is not None and result.get("step") == steps and not baselines:
      print(f"[{name}] done already ({workdir}/eval.json, {steps} steps)", file=sys.stderr, flush=True)
      continue
    # (A finished run without the baselines is run again: it resumes from its last
    # checkpoint, so only the evaluation runs.)
    planned = _workdir_steps(workdir)
    if planned is not None and planned != steps:
      status[name] = f"{workdir} holds a {planned}-step run"
      print(f"[{name}] error: {workdir} holds a run of {planned} steps, not {steps}: "
            "use another --outdir or remove it", file=sys.stderr, flush=True)
      continue
    cmd = command(name, workdir, steps=steps, batch_size=args.batch_size, baselines=baselines,
                  overrides=args.override, python=args.python)
    log_path = os.path.join(args.outdir, f"{name}.log")
    print(f"[{name}] {' '.join(cmd[1:])}  (log: {log_path})", file=sys.stderr, flush=True)
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    start = time.perf_counter()
    with open(log_path, "a") as log:
      log.write(f"$ {' '.join(cmd)}\n")
      log.flush()
      code = subprocess.call(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    with open(os.path.join(args.outdir, f"{name}.time"), "w") as f:
      json.dump({"wall_seconds": round(wall, 1), "steps": steps, "returncode": code}, f)
    with open(log_path, errors="replace") as f:
      f.seek(offset)
      for line in f.read().splitlines():
        if line.startswith("[eval]") or line.startswith("error:"):
          print(f"[{name}] {line}", file=sys.stderr, flush=True)
    if code != 0:
      status[name] = f"failed (exit {code}, see {log_path})"
      print(f"[{name}] failed with exit code {code}: see {log_path}", file=sys.stderr, flush=True)
  return status


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--outdir", default=os.path.join(REPO, "runs", "fashion_mnist_methods"))
  parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                      help="method names (configs/NAME_fashion_mnist.py); commas also separate")
  parser.add_argument("--steps", type=int, default=None,
                      help="pretraining steps for every method (default: each config's total_steps)")
  parser.add_argument("--batch_size", type=int, default=None, help="global batch (default: the configs')")
  parser.add_argument("--override", action="append", default=[], metavar="[METHOD:]KEY=VALUE",
                      help="extra --config.KEY=VALUE for every method, or for METHOD only; repeatable")
  parser.add_argument("--table_only", action="store_true", help="print the table from OUTDIR, run nothing")
  parser.add_argument("--python", default=sys.executable, help="interpreter for the runs")
  args = parser.parse_args(argv)
  args.methods = [m for item in args.methods for m in item.split(",") if m]
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  status = {} if args.table_only else run_all(args)
  print(markdown_table(collect(args.outdir, args.methods, status)), flush=True)
  failed = [n for n, why in status.items() if why != "no config"]
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
