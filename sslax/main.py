"""Command line and orchestration: flags -> config -> pretrain, then evaluate (or fine-tune).

  python -m sslax.main --config=configs/simclr_fashion_mnist.py --workdir=runs/simclr \
      [--config.batch_size=512 --config.total_steps=2000 ...]
  python -m sslax.main --config=... --workdir=DIR --mode=evaluate   # evaluate the latest checkpoint
  python -m sslax.main --config=... --workdir=DIR --mode=finetune   # fine-tune it (sslax/evaluate/finetune.py)
  python -m sslax.main --config=... --workdir=DIR --mode=linear_eval  # the paper's linear evaluation
      # (SGD on crops and flips of the whole training split; sslax/evaluate/linear_eval_recipes.py)

Exit status 143 (= 128 + SIGTERM) or 130 (= 128 + SIGINT, Ctrl-C): stopped after saving a
checkpoint; run the same command again to resume (sslax/preemption.py). What else can go
wrong, and what sslax promises then: docs/faults.md.
"""

from __future__ import annotations

import os
import sys

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from sslax import assemble, cli, parallel, preemption, train
from sslax import config as config_lib
from sslax import workdir as workdir_lib
from sslax.evaluate import finetune, frozen, linear_eval

config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl, TensorBoard events and eval.json.")
flags.DEFINE_enum("mode", "train_and_evaluate",
                  ["train_and_evaluate", "train", "evaluate", "finetune", "linear_eval"],
                  "What to run.")
flags.DEFINE_bool("start_over", False, "When no checkpoint in --workdir can be read, move them to "
                  "checkpoints_corrupt/ and train from step 0; train in a --workdir whose config.json is "
                  "another run's and that holds no checkpoint (without it, either stops the run).")
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


HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


def config_file_problem(argv: list[str]) -> str | None:
  """The one-line message for a --config file that is missing, does not parse, fails, or whose
  get_config() returns no ConfigDict; None when it loads (or there is no --config)."""
  import importlib.util

  import ml_collections

  given = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if given is None:
    return None
  path = given.split(":")[0]
  if not os.path.isfile(path):
    return (f"config file {path} not found (--config={given}); give the path of a config file, "
            "e.g. --config=configs/simclr_fashion_mnist.py")
  try:
    spec = importlib.util.spec_from_file_location("_sslax_config_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
  except SyntaxError as error:
    return f"config file {path}, line {error.lineno}: {error.msg}: {(error.text or '').strip()}"
  except Exception as error:  # noqa: BLE001 - whatever the file raises, named in one line
    return f"config file {path} fails to load: {type(error).__name__}: {error}"
  if not hasattr(module, "get_config"):
    return f"config file {path} defines no get_config(); see configs/ for examples"
  if ":" in given:  # get_config(arg): config_flags passes the string after the colon
    return None
  try:
    config = module.get_config()
  except Exception as error:  # noqa: BLE001
    return f"get_config() in {path} fails: {type(error).__name__}: {error}"
  if not isinstance(config, ml_collections.ConfigDict):
    return (f"get_config() in {path} returns a {type(config).__name__}, not an "
            "ml_collections.ConfigDict: return ml_collections.ConfigDict({...}) (see configs/)")
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a plain message (not a traceback) for a misspelt config key,
  a bad config file and a stray argument; --help exits 0."""
  if any(a in HELP_FLAGS for a in argv[1:]):
    try:
      FLAGS(argv)
    except SystemExit:  # absl exits 1 after printing the help
      pass
    sys.exit(0)
  if (problem := config_file_problem(argv)) is not None:
    sys.exit(f"error: {problem}")
  try:
    rest = FLAGS(argv)
  except (AttributeError, KeyError):
    messages = unknown_config_overrides(argv)
    if not messages:
      raise
    sys.exit("error: " + "\n".join(messages))
  except flags.Error as error:
    sys.exit(f"error: {error}\nTry --helpfull.")
  if len(rest) > 1:
    sys.exit(f"error: unexpected argument(s) {rest[1:]}: every option is a --flag=value, and a "
             "config override is --config.KEY=VALUE (see --help)")
  return rest


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       start_over: bool = False) -> dict:
  """Pretrains (or resumes), then runs the frozen evaluation and, if enabled, fine-tuning."""
  state, model, mesh = train.train(config, workdir, start_over=start_over)
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
         "evaluate": evaluate_latest, "finetune": finetune.finetune_latest,
         "linear_eval": linear_eval.linear_eval_latest}  # the paper's SGD linear evaluation
TRAINING_MODES = ("train_and_evaluate", "train")


def main(argv):
  del argv  # parse_flags refused any positional argument
  cli.setup_logging()
  parallel.maybe_initialize_distributed()
  config, workdir = FLAGS.config, FLAGS.workdir
  options = {"start_over": FLAGS.start_over} if FLAGS.mode in TRAINING_MODES else {}
  try:
    config_lib.validate(config)  # before anything is built or compiled
    # A read-only workdir, or one another process is using, stops the run before any work.
    with workdir_lib.locked(workdir):
      MODES[FLAGS.mode](config, workdir, **options)
  except cli.USER_ERRORS as error:
    sys.exit(f"error: {error}")
  except preemption.Preempted as stopped:
    # A clean stop with its own status, so a resume loop knows to run again.
    print(str(stopped), file=sys.stderr, flush=True)
    sys.exit(stopped.exit_status)
  except KeyboardInterrupt:  # Ctrl-C outside the training loop (which saves and stops)
    print(f"interrupted (Ctrl-C) in --mode={FLAGS.mode}; the checkpoints in {workdir} are as "
          "they were: run the same command again to continue", file=sys.stderr, flush=True)
    sys.exit(preemption.INTERRUPTED_STATUS)
  except Exception as error:
    if workdir_lib.is_disk_full(error):
      sys.exit(f"error: {workdir_lib.disk_full_error(workdir, None)}")
    raise


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
