"""The papers' linear evaluation (sslax/evaluate/linear_eval.py):

* each recipe's numbers against the sources, recorded here with where each was read;
* a tiny run (pretrain 2 steps, then a linear evaluation of 8 steps with weight decay 0.1
  and momentum, which would move a trainable encoder): the encoder's parameters and
  BatchNorm statistics come out bit-identical to the pretraining checkpoint's (both read
  back with Orbax), the classifier moves, the losses are finite, linear_eval.json records
  the recipe and its source;
* an unknown recipe stops at validation.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from sslax import config as config_lib
from sslax import train
from sslax.errors import ConfigError
from sslax.evaluate import linear_eval, linear_eval_recipes
from tests.helpers import tiny_config

# (optimizer, lr at batch 256 or base lr, batch, epochs, weight decay, nesterov): read from
# moco main_lincls.py argparse (lr 30, epochs 100, wd 0, batch 256); moco-v3 main_lincls.py
# argparse + CONFIG.md (lr 0.1, -b 1024, epochs 90, wd 0); dino eval_linear.py argparse (lr
# 0.001, 128 per GPU on 8, epochs 100); mae FINETUNE.md (blr 0.1, batch 16384, 90 epochs) and
# main_linprobe.py (warmup 10, wd 0, LARS); barlowtwins evaluate.py (lr-classifier 0.3, wd 1e-6).
SOURCES = {
    "moco_v2": ("sgd", 30.0, 256, 100, 0.0, False),
    "moco_v3": ("sgd", 0.1, 1024, 90, 0.0, False),
    "dino": ("sgd", 0.001, 1024, 100, 0.0, False),
    "mae": ("lars", 0.1, 16384, 90, 0.0, False),
    "barlow_twins": ("sgd", 0.3, 256, 100, 1e-6, False),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_recipes_hold_the_sources_numbers(name):
  r = linear_eval_recipes.RECIPES[name]
  assert (r["optimizer"], r["base_lr"], r["batch_size"], r["epochs"], r["weight_decay"], r["nesterov"]) == SOURCES[name]
  assert "/" in r["source"] or "appendix" in r["source"]


def test_every_paper_imagenet_config_names_a_recipe():
  import importlib.util
  for name in linear_eval_recipes.RECIPES:
    path = os.path.join(os.path.dirname(__file__), "..", "configs", f"{name}_imagenet.py")
    spec = importlib.util.spec_from_file_location(f"{name}_imagenet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    assert config.linear_eval.recipe == name
    assert config.eval.max_train_examples == -1 and "knn" in config.eval.protocols
    assert config.eval.knn_k == (20 if name == "dino" else 200) and config.eval.knn_temperature == 0.07


def test_unknown_recipe_stops_at_validation(tiny_fashion_mnist):
  config = tiny_config(tiny_fashion_mnist)
  config.linear_eval.recipe = "moco_v9"
  with pytest.raises(ConfigError, match="linear_eval.recipe.*moco_v9"):
    config_lib.validate(config)


def restore(directory: str, step: int) -> dict:
  return ocp.StandardCheckpointer().restore(os.path.join(directory, "checkpoints", str(step), "default"))


def test_tiny_linear_evaluation_trains_the_classifier_and_leaves_the_encoder(tiny_fashion_mnist, tmp_path, monkeypatch):
  config = tiny_config(tiny_fashion_mnist)
  config.total_steps = 2
  config.eval.enabled = False
  workdir = str(tmp_path)
  train.train(config, workdir)
  monkeypatch.setitem(linear_eval.RECIPES, "tiny", linear_eval_recipes.recipe(
      "this test", optimizer="sgd", base_lr=1.0, batch_size=16, epochs=2, weight_decay=0.1))
  config.linear_eval.recipe = "tiny"
  config.linear_eval.checkpoint_every_steps = 100
  config.linear_eval.view.crop_scale = (0.5, 1.0)
  results = linear_eval.linear_eval_latest(config, workdir)
  assert results["steps"] == 8 and results["pretrained_step"] == 2  # 64 images / 16 x 2 epochs
  pretrained, tuned = restore(workdir, 2), restore(os.path.join(workdir, "linear_eval"), 8)
  def flat(tree):
    return {"/".join(map(str, k)): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
  for collection in ("params", "batch_stats"):
    before, after = flat(pretrained[collection]["encoder"]), flat(tuned[collection]["encoder"])
    assert sorted(before) == sorted(after)
    for name in before:
      np.testing.assert_array_equal(after[name], before[name], err_msg=f"{collection} {name}")
  assert np.abs(tuned["params"]["classifier"]["kernel"]).max() > 0
  with open(os.path.join(workdir, "linear_eval", "metrics.jsonl")) as f:
    losses = [r["loss"] for r in map(json.loads, f)]
  assert len(losses) == 8 and np.all(np.isfinite(losses))
  with open(os.path.join(workdir, "linear_eval.json")) as f:
    recorded = json.load(f)
  assert recorded["recipe"] == "tiny" and recorded["source"] == "this test"
  assert 0 <= recorded["accuracy"] <= 1 and recorded["lr"] == pytest.approx(1.0 * 16 / 256)
