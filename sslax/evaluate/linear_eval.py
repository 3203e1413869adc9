"""The papers' linear evaluation: a linear classifier trained with SGD (or LARS) on the
frozen encoder, each training image augmented afresh every epoch (random resized crop and
flip) over the whole training split; top-1 on the test split's evaluation view.

  python -m sslax.evaluate.linear_eval --config=configs/moco_v2_imagenet.py --workdir=DIR

It fits nothing on precomputed features (the feature protocols of protocols.py do that),
so it is a training run: the `supervised` method with `frozen_encoder` (the encoder in
evaluation mode, BatchNorm on its running statistics, its parameters put back after every
step: moco main_lincls.py's model.eval() and requires_grad=False), trained by the generic
trainer from the pretraining run's evaluated encoder (sslax/evaluate/finetune.py's
`pretrained_encoder`), in WORKDIR/linear_eval (its checkpoints and metrics.jsonl; it
resumes like pretraining). The test view is the pipeline's evaluation view (for
full-resolution datasets: resize to size / 0.875, centre crop) as for every evaluation.
Result: WORKDIR/linear_eval.json with the recipe, its source and its departures.

Each paper's settings are in linear_eval_recipes.py, with where they come from; each
configs/*_imagenet.py selects its own (config.linear_eval.recipe).
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import ml_collections

from sslax import assemble, optim, parallel, train
from sslax import config as config_lib
from sslax.data import datasets
from sslax.errors import ConfigError
from sslax.evaluate import finetune
from sslax.evaluate.linear_eval_recipes import RECIPES

PROTOCOL = ("linear evaluation: a linear classifier on the frozen encoder (evaluation mode), "
            "trained with the paper's optimizer on augmented images of the whole training "
            "split; top-1 on the test split's evaluation view")


def linear_eval_config(config: ml_collections.ConfigDict, train_examples: int) -> ml_collections.ConfigDict:
  """The supervised run that trains the classifier: the pretraining config's data, model,
  seed, devices and logging with the recipe's optimizer, batch and epochs; a copy."""
  from sslax.methods.supervised import defaults

  settings = RECIPES[config.linear_eval.recipe]
  steps_per_epoch = max(1, train_examples // settings["batch_size"])
  lin = config.copy_and_resolve_references()
  with lin.unlocked():
    lin.method = defaults()
    lin.method.frozen_encoder = True
    lin.views = ml_collections.ConfigDict({"view1": config.linear_eval.view.copy_and_resolve_references()})
    if "train_subset" in lin.data:  # a subset restricts pretraining only
      lin.data.train_subset = ""
    lin.batch_size = settings["batch_size"]
    lin.total_steps = settings["epochs"] * steps_per_epoch
    lin.checkpoint_every_steps = config.linear_eval.checkpoint_every_steps
    lin.optimizer = optim.default_config()
    lin.optimizer.update(dict(
        name=settings["optimizer"], base_lr=settings["base_lr"], lr_scaling="linear",
        warmup_steps=settings["warmup_epochs"] * steps_per_epoch, weight_decay=settings["weight_decay"],
        momentum=settings["momentum"], nesterov=settings["nesterov"]))
    lin.online_probe.enabled = False
    lin.eval.enabled = False
    lin.finetune.enabled = False
  return lin


def linear_eval_run(config: ml_collections.ConfigDict, state, workdir: str) -> dict:
  """Trains and tests the linear classifier on the encoder of `state` (the pretraining
  run's) in WORKDIR/linear_eval; writes WORKDIR/linear_eval.json and returns it."""
  if datasets.get_dataset(config.data.name).modality != "image":
    raise ConfigError("the linear evaluation trains on augmented images; "
                      f"{config.data.name} holds sequences or text: use --mode=evaluate")
  if not config.linear_eval.recipe:
    raise ConfigError(f"config.linear_eval.recipe: name one of {sorted(RECIPES)}")
  train_examples = len(assemble.open_split(config, config.data.train_split))
  lin = linear_eval_config(config, train_examples)
  devices = assemble.make_mesh(config).devices.size
  if lin.batch_size % devices:
    raise ConfigError(f"linear_eval recipe {config.linear_eval.recipe!r}: batch {lin.batch_size} "
                      f"is not divisible by the {devices} devices")
  pretrained_step = int(parallel.to_host(state.step))
  directory = os.path.join(workdir, "linear_eval")
  finetune.check_same_pretraining(directory, pretrained_step)
  start = time.perf_counter()
  lin_state, model, mesh = train.train(lin, directory, init_from=finetune.pretrained_encoder(config, state))
  settings = RECIPES[config.linear_eval.recipe]
  results = {
      "protocol": PROTOCOL, "recipe": config.linear_eval.recipe, "source": settings["source"],
      "departures": list(settings["departures"]), "dataset": config.data.name,
      "train_split": config.data.train_split, "test_split": config.data.test_split,
      "pretrained_step": pretrained_step, "steps": int(parallel.to_host(lin_state.step)),
      "lr": settings["base_lr"] * settings["batch_size"] / 256,
      "accuracy": finetune.classifier_accuracy(lin, model, lin_state, mesh),
      "settings": {k: v for k, v in settings.items() if k not in ("source", "departures")},
      "seconds": round(time.perf_counter() - start, 1)}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "linear_eval.json"), "w") as f:
      json.dump(results, f, indent=2)
    print(f"[linear_eval] {config.data.name} {config.data.test_split} accuracy after "
          f"{results['steps']} steps: {100 * results['accuracy']:.2f}%", file=sys.stderr, flush=True)
  return results


def linear_eval_latest(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The linear evaluation of the newest pretraining checkpoint in WORKDIR."""
  config_lib.validate(config)
  state = assemble.restore_latest(config, workdir, assemble.make_mesh(config),
                                  what="pretraining checkpoint").state
  return linear_eval_run(config, state, workdir)


if __name__ == "__main__":
  from absl import app, flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).")
  flags.DEFINE_string("workdir", None, "The pretraining run's directory.")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(lambda argv: linear_eval_latest(flags.FLAGS.config, flags.FLAGS.workdir))
