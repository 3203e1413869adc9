"""The online linear probe and the training diagnostics (sslax/online_probe.py): they
leave pretraining unchanged, the probe's first step is Adam's on the softmax cross-entropy
of the evaluated features (recomputed here in NumPy), and 8 devices log what 1 does."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import assemble, optim, train
from sslax import step as step_lib
from sslax.data import pipeline
from sslax.methods import get_method
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def records(workdir) -> dict[int, dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r for r in map(json.loads, f)}


def monitored_config(data_dir, *, probe=True, diagnostics=True, devices=1):
  config = tiny_config(data_dir)
  config.total_steps = 3
  config.num_devices = devices
  config.online_probe.enabled = probe
  config.online_probe.learning_rate = 0.01
  config.diagnostics.enabled = diagnostics
  return config


def test_monitors_leave_pretraining_unchanged_and_log_the_same_on_1_and_8_devices(data_dir, tmp_path):
  plain, _, _ = train.train(monitored_config(data_dir, probe=False, diagnostics=False),
                            str(tmp_path / "plain"))
  watched, _, _ = train.train(monitored_config(data_dir), str(tmp_path / "d1"))
  train.train(monitored_config(data_dir, devices=8), str(tmp_path / "d8"))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(watched.params),
               jax.device_get(plain.params))
  logged, logged8 = records(tmp_path / "d1"), records(tmp_path / "d8")
  assert [logged[s]["loss"] for s in (1, 2, 3)] == [records(tmp_path / "plain")[s]["loss"] for s in (1, 2, 3)]
  for step in (1, 2, 3):
    row = logged[step]
    assert 0.0 <= row["online_probe/accuracy"] <= 1.0
    # RankMe is an effective rank: between 1 and min(batch 16, feature dim 16).
    assert 1.0 <= row["diagnostics/rankme"] <= 16.0 + 1e-6
    for key in ("online_probe/accuracy", "online_probe/loss", "diagnostics/rankme",
                "diagnostics/alignment", "diagnostics/uniformity"):
      np.testing.assert_allclose(logged8[step][key], row[key], rtol=1e-4, atol=1e-6)


def test_first_probe_step_is_adam_on_cross_entropy_of_the_features(data_dir, tmp_path):
  """Step 1: the probe starts at zero, so its logged accuracy is the share of class 0 (argmax
  of equal logits) and, Adam's first update being -lr * g / (|g| + eps), w1 and b1 follow
  from the NumPy gradient of the mean softmax cross-entropy on the step-0 features."""
  config = monitored_config(data_dir, diagnostics=False)
  config.total_steps = 1
  state, model, _ = train.train(config, str(tmp_path / "run"))

  source = assemble.open_split(config, config.data.train_split)
  method = get_method(config.method.name)
  initial = step_lib.initial_state(assemble.with_dataset_facts(config, source), method, model,
                                optim.make_optimizer(config.optimizer, lambda s: 0.0), source)
  batch = next(iter(pipeline.host_batches(source, global_batch=config.batch_size, seed=config.seed)))
  views = step_lib.make_views_fn(config, source)(
      jnp.asarray(batch["image"]), jnp.asarray(batch["position"]))
  variables = {"params": initial.params, "batch_stats": initial.batch_stats}
  x = np.asarray(model.apply(variables, views[0], train=False, method="encode"), np.float64)
  y = batch["label"]
  k = source.num_classes
  p = np.full((len(y), k), 1.0 / k)           # softmax of zero logits
  g_logits = (p - np.eye(k)[y]) / len(y)      # d mean CE / d logits
  lr, eps = config.online_probe.learning_rate, 1e-8
  want_w = -lr * (x.T @ g_logits) / (np.abs(x.T @ g_logits) + eps)
  want_b = -lr * g_logits.sum(0) / (np.abs(g_logits.sum(0)) + eps)
  probe = jax.device_get(state.probe["params"])
  np.testing.assert_allclose(probe["w"], want_w, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(probe["b"], want_b, rtol=1e-4, atol=1e-6)
  assert records(tmp_path / "run")[1]["online_probe/accuracy"] == pytest.approx(np.mean(y == 0))
