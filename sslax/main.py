"""Command line and orchestration: flags -> config -> pretrain, then evaluate (or fine-tune).

  python -m sslax.main --config=configs/simclr_fashion_mnist.py --workdir=runs/simclr \
      [--config.batch_size=512 --config.total_steps=2000 ...]
  python -m sslax.main --config=... --workdir=DIR --mode=evaluate   # evaluate the latest checkpoint
  python -m sslax.main --config=... --workdir=DIR --mode=finetune   # fine-tune it (sslax/evaluate/finetune.py)

Exit status 143 (= 128 + SIGTERM): stopped by SIGTERM after saving a checkpoint; run the
same command again to resume (sslax/preemption.py).
"""

from __future__ import annotations

import os
import sys

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from sslax import assemble, cli, parallel, preemption, train
from sslax import config as config_lib
from sslax.evaluate import finetune, frozen

config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl, TensorBoard events and eval.json.")
flags.DEFINE_enum("mode", "train_and_evaluate", ["train_and_evaluate", "train", "evaluate", "finetune"],
                  "What to run.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def unknown_config_overrides(argv: list[str]) -> list[str]:
  """Messages for `--config.a.b=v` overrides whose key path is not in the config file."""
  import difflib
  import importlib.util

  path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if path is None or not os.path.exists(path.split(":")[0]):
    return []
  spec = importlib.util.spec_from_file_location("_sslax_config", path.split(":")[0])
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  messages = []
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    key = arg[len("--config."):].split("=", 1)[0]
    node, walked = config, "config"
    for part in key.split("."):
      if not hasattr(node, "keys"):
        break
      if part not in node:
        close = difflib.get_close_matches(part, list(node.keys()), n=1)
        hint = f" Did you mean {walked}.{close[0]}?" if close else ""
        messages.append(f"unknown config key {'config.' + key!r}: {walked} has no {part!r}; "
                        f"valid keys of {walked}: {sorted(node.keys())}.{hint}")
        break
      node, walked = node[part], f"{walked}.{part}"
  return messages


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a plain message (not a traceback) for a misspelt config key."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError):
    messages = unknown_config_overrides(argv)
    if not messages:
      raise
    sys.exit("error: " + "\n".join(messages))
  except flags.Error as error:
    sys.exit(f"error: {error}\nTry --helpfull.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Pretrains (or resumes), then runs the frozen evaluation and, if enabled, fine-tuning."""
  state, model, mesh = train.train(config, workdir)
  results = {}
  if config.eval.enabled:
    results = frozen.evaluate_run(config, model, state, mesh, workdir)
  if config.finetune.enabled:
    results["finetune"] = finetune.finetune_run(config, state, workdir)
  return results


def evaluate_latest(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Evaluates the newest checkpoint in WORKDIR without training."""
  config_lib.validate(config)
  run = assemble.restore_latest(config, workdir, assemble.make_mesh(config))
  return frozen.evaluate_run(config, run.model, run.state, run.mesh, workdir)


MODES = {"train_and_evaluate": train_and_evaluate, "train": train.train,
         "evaluate": evaluate_latest, "finetune": finetune.finetune_latest}


def main(argv):
  del argv
  cli.setup_logging()
  parallel.maybe_initialize_distributed()
  config = FLAGS.config
  try:
    config_lib.validate(config)  # before anything is built or compiled
    MODES[FLAGS.mode](config, FLAGS.workdir)
  except cli.USER_ERRORS as error:
    sys.exit(f"error: {error}")
  except preemption.Preempted as stopped:
    # A clean stop with its own status, so a resume loop knows to run again.
    print(str(stopped), file=sys.stderr, flush=True)
    sys.exit(preemption.EXIT_STATUS)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
