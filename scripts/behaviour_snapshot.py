"""What a refactor must leave unchanged, written to one JSON file: every configs/*.py resolved
(ml_collections' JSON, keys sorted), and the losses a short fixed-seed run logs for a few
configs through the real command line (python -m sslax.main).

  .venv/bin/python scripts/behaviour_snapshot.py OUT.json [--runs=simclr_fashion_mnist,...]

Compare two checkouts: run it in each (git worktree add /tmp/before REV), then
  .venv/bin/python scripts/behaviour_snapshot.py --compare BEFORE.json AFTER.json
which prints every config whose resolved form differs and every logged loss that differs
(exactly: same machine, same versions, same seed).

The runs use tiny Fashion-MNIST-format files made here (tests/helpers.py), so nothing needs
the real dataset; JapaneseVowels and fortunes runs are added when their data is installed.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = ("simclr_fashion_mnist", "byol_fashion_mnist", "dino_fashion_mnist", "swav_fashion_mnist",
        "mae_fashion_mnist", "moco_v2_fashion_mnist", "supervised_fashion_mnist",
        "jigsaw_fashion_mnist", "denoising_ae_fashion_mnist", "inpainting_fashion_mnist",
        "rotation_fashion_mnist", "data2vec_fashion_mnist", "vicreg_fashion_mnist",
        "relative_patch_fashion_mnist", "barlow_twins_fashion_mnist", "simsiam_fashion_mnist",
        "moco_v3_fashion_mnist")
SEQUENCE_RUNS = ("apc_japanese_vowels", "cpc_japanese_vowels", "masked_frames_fashion_mnist_rows",
                 "skipgram_fortunes", "masked_token_fortunes", "next_token_fortunes")
# Small enough for seconds a run on 2 cores; the same overrides before and after.
OVERRIDES = ("--config.total_steps=3", "--config.log_every_steps=1", "--config.batch_size=16",
             "--config.checkpoint_every_steps=3", "--config.eval.enabled=False",
             "--config.async_checkpoints=False")


def resolved_configs() -> dict[str, str]:
  out = {}
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"snapshot_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out[name] = module.get_config().to_json_best_effort(sort_keys=True, indent=1)
  return out


def run_losses(name: str, tmp: str, env: dict) -> list[dict] | str:
  workdir = os.path.join(tmp, name)
  command = [sys.executable, "-m", "sslax.main", f"--config={ROOT}/configs/{name}.py",
             f"--workdir={workdir}", "--mode=train", *OVERRIDES]
  done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
  if done.returncode:
    return f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  keep = ("step", "loss", "grad_norm", "learning_rate", "online_probe/loss")
  return [{k: row[k] for k in keep if k in row} for row in rows]


def snapshot(runs: list[str]) -> dict:
  sys.path.insert(0, ROOT)
  from tests.helpers import write_tiny_fashion_mnist

  with tempfile.TemporaryDirectory() as tmp:
    write_tiny_fashion_mnist(os.path.join(tmp, "idx"), train=96, test=32)
    env = {**os.environ, "SSLAX_FASHION_MNIST_DIR": os.path.join(tmp, "idx"),
           "TFDS_DATA_DIR": os.path.join(tmp, "tfds"), "JAX_PLATFORMS": "cpu"}
    losses = {name: run_losses(name, tmp, env) for name in runs}
  return {"configs": resolved_configs(), "losses": losses}


def differences(old, new, prefix: str = "") -> list[tuple[str, object, object]]:
  """(key path, before, after) of every leaf that differs; <absent> where a key is missing."""
  if not (isinstance(old, dict) and isinstance(new, dict)):
    return [] if old == new else [(prefix, old, new)]
  out = []
  for key in sorted(set(old) | set(new)):
    out += differences(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}.{key}" if prefix else key)
  return out


def compare(before_path: str, after_path: str) -> int:
  with open(before_path) as f:
    before = json.load(f)
  with open(after_path) as f:
    after = json.load(f)
  bad = 0
  for name in sorted(set(before["configs"]) | set(after["configs"])):
    if before["configs"].get(name) != after["configs"].get(name):
      bad += 1
      old, new = (json.loads(s["configs"].get(name) or "{}") for s in (before, after))
      print(f"config {name}: " + "; ".join(
          f"{key} {a} -> {b}" for key, a, b in differences(old, new)))
  same = 0
  for name in sorted(set(before["losses"]) | set(after["losses"])):
    if before["losses"].get(name) != after["losses"].get(name):
      bad += 1
      print(f"run {name}: logged losses differ:\n  before {before['losses'].get(name)}\n"
            f"  after  {after['losses'].get(name)}")
    else:
      same += 1
  print(f"{len(after['configs'])} configs, {same} runs identical; {bad} difference(s)")
  return 1 if bad else 0


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("out", nargs="?")
  parser.add_argument("--runs", default=",".join(RUNS + SEQUENCE_RUNS))
  parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
  args = parser.parse_args()
  if args.compare:
    return compare(*args.compare)
  if not args.out:
    parser.error("give OUT.json, or --compare BEFORE AFTER")
  result = snapshot([r for r in args.runs.split(",") if r])
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1, sort_keys=True)
  failed = {k: v for k, v in result["losses"].items() if isinstance(v, str)}
  print(f"wrote {args.out}: {len(result['configs'])} configs, {len(result['losses'])} runs"
        + (f"; not run: {failed}" if failed else ""))
  return 0


if __name__ == "__main__":
  sys.exit(main())
