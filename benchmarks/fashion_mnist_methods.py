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
reported, not run. The random-init encoder and raw-pixel baselines are evaluated once per
encoder architecture (`config.model` of the config file): in the run of the first method
(in --methods order) with that encoder, unless a result in OUTDIR has them already. The CPU
configs share `config_lib.fashion_mnist_cpu`'s data and seed, so methods with the same
encoder share its random initialization (the table names the run each baseline came
from); every other run has both baselines switched off.

With --finetune, every pretrained encoder is then also fine-tuned with labels
(`--mode=finetune`, sslax/evaluate/finetune.py; --finetune_steps sets its length), and each
encoder's random initialization is fine-tuned by the same protocol as a baseline
(`--config.finetune.init=random`, in the run that evaluated that encoder's baselines): a
fine-tune column.

A method whose OUTDIR/NAME/eval.json already records the requested number of steps is
not run again, so an interrupted benchmark resumes where it stopped (an interrupted
pretraining resumes from its last checkpoint). A workdir whose config.json asks for a
different number of steps is an error: use another --outdir.

The pretraining time is the trainer's own "trained steps a..b in T s" log line (summed
over resumed segments, fine-tuning runs left out: compilation included, data preparation
and evaluation not);
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
    segments, finetuning = [], False
    with open(log, errors="replace") as f:
      for line in f:
        if line.startswith("$ "):  # a command's output follows: fine-tuning's is not pretraining
          finetuning = "--mode=finetune" in line
        elif not finetuning and (m := _TRAINED.search(line)):
          segments.append(float(m.group(3)))
    if segments:
      return sum(segments), False
  wall = os.path.join(outdir, f"{name}.time")
  if os.path.exists(wall):
    with open(wall) as f:
      return float(json.load(f)["wall_seconds"]), True
  return None, False


def read_eval(outdir: str, name: str, file: str = "eval.json") -> dict | None:
  path = os.path.join(outdir, name, file)
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
    entries.append(dict(name=name, eval=result, seconds=seconds, wall=wall, status=why,
                        model=run_model(outdir, name),
                        finetune=read_eval(outdir, name, "finetune.json"),
                        finetune_random_init=read_eval(outdir, name, "finetune_random_init.json")))
  return entries


def model_key(model: dict | None) -> str:
  """A comparable form of a config.model dict (tuples and lists alike)."""
  return json.dumps(json.loads(json.dumps(model)), sort_keys=True)


def run_model(outdir: str, name: str) -> dict | None:
  """config.model of the run OUTDIR/NAME (from its config.json), None if unknown."""
  path = os.path.join(outdir, name, "config.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f).get("model")


def describe_model(model: dict | None) -> str:
  """A short name of an encoder config, for the random-init rows."""
  if not model:
    return "encoder"
  if model.get("name") == "convnet":
    return f"ConvNet {tuple(model.get('widths', ()))}"
  if str(model.get("name", "")).startswith("vit"):
    return (f"ViT ({model.get('patch_size')}px patches, {model.get('hidden_dim', '?')} wide, "
            f"{model.get('depth', '?')} deep)")
  return str(model.get("name"))


def _percent(result: dict | None, key: str) -> str:
  if not result or key not in result:
    return "-"
  return f"{100 * result[key]['accuracy']:.2f}%"


def markdown_table(entries: list[dict]) -> str:
  """The markdown table of `collect`'s entries: a row per method, then the random-init and
  raw-pixel rows from the first eval.json that has them."""
  finetuned = any(e.get("finetune") or e.get("finetune_random_init") for e in entries)
  ft_steps = sorted({r["steps"] for e in entries for r in (e.get("finetune"), e.get("finetune_random_init"))
                     if r})

  def row(*cells, finetune=None):
    """cells: name, linear probe, kNN, time; the fine-tune cell (a string, or a result
    whose accuracy it shows) goes before the time."""
    cells = list(cells)
    if finetuned:
      if isinstance(finetune, dict):
        finetune = f"{100 * finetune['accuracy']:.2f}%"
      cells.insert(3, finetune or "-")
    return "| " + " | ".join(cells) + " |"

  lines = [row("method", "linear probe", "kNN", "pretraining time (s)", finetune="fine-tune"),
           "|---" * (5 if finetuned else 4) + "|"]
  baselines = {}  # model key -> the first entry whose eval.json has that encoder's baselines
  steps = set()
  for e in entries:
    result = e["eval"]
    if result is None:
      lines.append(row(e["name"], e["status"] or "no result", "-", "-"))
      continue
    steps.add(result.get("step"))
    if "random_init" in result or "raw_pixels" in result:
      baselines.setdefault(model_key(e.get("model")), e)
    pretrained = result.get("pretrained", {})
    seconds = "-" if e["seconds"] is None else f"{e['seconds']:.0f}" + (" (wall)" if e["wall"] else "")
    lines.append(row(e["name"], _percent(pretrained, "linear_probe"), _percent(pretrained, "knn"),
                     seconds, finetune=e.get("finetune")))
  several = len(baselines) > 1
  for e in baselines.values():
    if "random_init" in e["eval"]:
      r = e["eval"]["random_init"]
      name = f"random-init {describe_model(e.get('model'))}" if several else "random-init encoder"
      lines.append(row(name, _percent(r, "linear_probe"), _percent(r, "knn"), "-",
                       finetune=e.get("finetune_random_init")))
  raw = next((e for e in baselines.values() if "raw_pixels" in e["eval"]), None)
  if raw is not None:
    lines.append(row("raw pixels", _percent(raw["eval"]["raw_pixels"], "linear_probe"), "-", "-"))
  baseline_from = list(baselines.values())
  done = [e["eval"] for e in entries if e["eval"] is not None]
  if done:
    first = done[0]
    caption = (f"{first.get('dataset', '?')} {first.get('test_split', '?')} accuracy after "
               f"{' / '.join(str(s) for s in sorted(s for s in steps if s is not None))} pretraining steps")
    if baseline_from:
      runs = " and ".join(e["name"] for e in baseline_from)
      caption += f"; baselines evaluated in the {runs} run" + ("s" if len(baseline_from) > 1 else "")
    if ft_steps:
      caption += (f"; fine-tune: {' / '.join(map(str, ft_steps))} steps of full fine-tuning "
                  "(sslax/evaluate/finetune.py), random-init rows from the encoder's initialization")
    lines = [caption, ""] + lines
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# Running the methods.
# ----------------------------------------------------------------------------

def load_config(name: str):
  """configs/NAME_fashion_mnist.py's config (imports sslax: only when running)."""
  import importlib.util

  spec = importlib.util.spec_from_file_location(f"_{name}_fashion_mnist", config_path(name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def config_total_steps(name: str) -> int:
  return int(load_config(name).total_steps)


def config_model(name: str, overrides: list[str]) -> dict:
  """config.model of configs/NAME_fashion_mnist.py with the --override flags on model.* keys."""
  import ast

  model = load_config(name).model.to_dict()
  for flag in split_overrides(overrides, name):
    key, _, value = flag.removeprefix("--config.").partition("=")
    if key.startswith("model."):
      try:
        model[key.removeprefix("model.")] = ast.literal_eval(value)
      except (ValueError, SyntaxError):
        model[key.removeprefix("model.")] = value
  return model


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
  have_baselines = {model_key(run_model(args.outdir, n)) for n in runs_in_outdir
                    if "random_init" in (read_eval(args.outdir, n) or {})}
  baseline_runs = set()  # the first method of each encoder without baselines yet
  for n in args.methods:
    if os.path.exists(config_path(n)):
      ran = run_model(args.outdir, n)  # what an earlier run of n used, else what it will use
      key = model_key(ran if ran is not None else config_model(n, args.override))
      if key not in have_baselines:
        have_baselines.add(key)
        baseline_runs.add(n)
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
    baselines = name in baseline_runs
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
  if args.finetune:
    for name in args.methods:
      if name in status or read_eval(args.outdir, name) is None:
        continue
      finetune_method(args, name, "pretrained")
      if "random_init" in read_eval(args.outdir, name):  # this encoder's baseline run
        finetune_method(args, name, "random")
  return status


def finetune_method(args, name: str, init: str) -> None:
  """python -m sslax.main --mode=finetune on OUTDIR/NAME (init "pretrained" or "random"),
  unless its result for this many steps exists; output appended to OUTDIR/NAME.log."""
  file = "finetune.json" if init == "pretrained" else "finetune_random_init.json"
  done = read_eval(args.outdir, name, file)
  if done is not None and (args.finetune_steps is None or done["steps"] == args.finetune_steps):
    print(f"[{name}] {file} done already", file=sys.stderr, flush=True)
    return
  workdir = os.path.join(args.outdir, name)
  cmd = command(name, workdir, steps=None, batch_size=args.batch_size, baselines=False,
                overrides=args.override, python=args.python)
  cmd = [c for c in cmd if "_baseline=" not in c]
  cmd += ["--mode=finetune", f"--config.finetune.init={init}"]
  if args.finetune_steps is not None:
    cmd.append(f"--config.finetune.total_steps={args.finetune_steps}")
  with open(os.path.join(workdir, "config.json")) as f:  # the pretraining run's steps
    cmd.append(f"--config.total_steps={json.load(f)['total_steps']}")
  log_path = os.path.join(args.outdir, f"{name}.log")
  print(f"[{name}] {' '.join(cmd[1:])}  (log: {log_path})", file=sys.stderr, flush=True)
  with open(log_path, "a") as log:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    code = subprocess.call(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
  if code != 0:
    print(f"[{name}] fine-tuning ({init}) failed with exit code {code}: see {log_path}",
          file=sys.stderr, flush=True)


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
  parser.add_argument("--finetune", action="store_true",
                      help="also fine-tune every pretrained encoder (--mode=finetune), and each "
                           "encoder's random init as a baseline; adds a fine-tune column")
  parser.add_argument("--finetune_steps", type=int, default=None,
                      help="fine-tuning steps (default: config.finetune.total_steps)")
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
