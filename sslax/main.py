"""Command line: flags -> config -> pretrain, then evaluate.

  python -m sslax.main --config=configs/simclr_fashion_mnist.py --workdir=runs/simclr \
      [--config.batch_size=512 --config.total_steps=2000 ...]
  python -m sslax.main --config=... --workdir=DIR --mode=evaluate   # evaluate the latest checkpoint
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl, TensorBoard events and eval.json.")
flags.DEFINE_enum("mode", "train_and_evaluate", ["train_and_evaluate", "train", "evaluate"], "What to run.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
  for noisy in ("absl", "orbax", "jax", "tensorflow", "tensorflow_datasets"):
    logging.getLogger(noisy).setLevel(logging.WARNING)

  from sslax import config as config_lib, parallel, train
  from sslax.data.pipeline import DatasetNotFoundError

  parallel.maybe_initialize_distributed()
  config = FLAGS.config
  run = {"train_and_evaluate": train.train_and_evaluate, "train": train.train,
         "evaluate": train.evaluate_latest}[FLAGS.mode]
  try:
    config_lib.validate(config)  # before anything is built or compiled
    run(config, FLAGS.workdir)
  except (config_lib.ConfigError, DatasetNotFoundError, FileNotFoundError) as error:
    # Errors the user can fix: the message says how; a traceback would bury it.
    sys.exit(f"error: {error}")


if __name__ == "__main__":
  app.run(main)
