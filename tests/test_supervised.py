"""The supervised baseline (sslax/methods/supervised.py) against independent references:
its loss is NumPy's softmax cross-entropy of the classifier outputs with the labels
(with and without label smoothing), it reads the labels, 1 device equals 8 through the
trainer, and a short run on tiny data lowers the training loss."""

from __future__ import annotations

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import parallel, train
from sslax import step as step_lib
from sslax.methods import get_method
from sslax.methods.base import StepInputs
from tests.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def supervised_config(data_dir: str):
  """tiny_config with the method, view and optimizer of configs/supervised_fashion_mnist.py."""
  spec = importlib.util.spec_from_file_location(
      "supervised_fashion_mnist", os.path.join(REPO, "configs", "supervised_fashion_mnist.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  full = module.get_config()
  config = tiny_config(data_dir)
  config.method = full.method
  config.views = full.views
  config.optimizer = full.optimizer
  config.optimizer.warmup_steps = 1
  config.data.num_classes = full.data.num_classes
  return config


def numpy_cross_entropy(logits: np.ndarray, labels: np.ndarray, smoothing: float = 0.0) -> float:
  """Mean over examples of -sum_c target_c log softmax(logits)_c, target (1-eps) onehot + eps/C."""
  logits = logits.astype(np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  classes = logits.shape[1]
  target = (1.0 - smoothing) * np.eye(classes)[labels] + smoothing / classes
  return float(np.mean(-(target * logp).sum(axis=1)))


def loss_and_logits(config, labels: np.ndarray, seed: int = 0, classifier_scale: float = 1.0):
  """The method's loss, metrics and the classifier's outputs on one batch of random views,
  inside a vmap over one "device" (BatchNorm syncs over the mesh axis). classifier_scale
  multiplies the classifier's kernel, to spread the near-uniform outputs at initialization."""
  method = get_method("supervised")
  model = method.build(config)
  variables = step_lib.init_variables(model, config, 1)
  variables["params"]["classifier"]["kernel"] = variables["params"]["classifier"]["kernel"] * classifier_scale
  view = jnp.asarray(np.random.default_rng(seed).normal(size=(len(labels), 28, 28, 1)), jnp.float32)

  def per_device(view, labels):
    inputs = StepInputs(views=[view], labels=labels, step=jnp.zeros((), jnp.int32), state={})
    value, aux = method.loss(model, variables, inputs, config, parallel.DATA_AXIS)
    logits, _ = model.apply(variables, view, train=True, mutable=["batch_stats"])
    return value, aux.metrics, logits

  value, metrics, logits = jax.vmap(per_device, axis_name=parallel.DATA_AXIS)(
      view[None], jnp.asarray(labels, jnp.int32)[None])
  return float(value[0]), {k: float(v[0]) for k, v in metrics.items()}, np.asarray(logits[0])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_is_numpy_cross_entropy_of_classifier_outputs(data_dir, smoothing):
  config = supervised_config(data_dir)
  config.method.label_smoothing = smoothing
  labels = np.random.default_rng(1).integers(0, 10, size=16)
  value, metrics, logits = loss_and_logits(config, labels, classifier_scale=10.0)
  assert logits.shape == (16, 10)
  np.testing.assert_allclose(value, numpy_cross_entropy(logits, labels, smoothing), rtol=1e-5)
  np.testing.assert_allclose(metrics["accuracy"], np.mean(logits.argmax(axis=1) == labels), atol=1e-6)


def test_loss_depends_on_the_labels(data_dir):
  """Relabelling the classes by a permutation of the class ids changes the loss (the same
  images give the same outputs), and the new value is NumPy's with the new labels."""
  config = supervised_config(data_dir)
  labels = np.random.default_rng(2).integers(0, 10, size=16)
  relabel = np.random.default_rng(3).permutation(10)
  permuted = relabel[labels]
  assert not np.array_equal(permuted, labels)
  value, _, logits = loss_and_logits(config, labels, classifier_scale=10.0)
  value_permuted, _, logits_permuted = loss_and_logits(config, permuted, classifier_scale=10.0)
  np.testing.assert_allclose(logits_permuted, logits, rtol=1e-6)
  assert abs(value - value_permuted) > 0.05
  np.testing.assert_allclose(value_permuted, numpy_cross_entropy(logits, permuted), rtol=1e-5)


def test_encode_is_backbone_features_and_classifier_has_num_classes(data_dir):
  config = supervised_config(data_dir)
  model = get_method("supervised").build(config)
  variables = step_lib.init_variables(model, config, 1)
  x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
  features = model.apply(variables, x, train=False, method="encode")
  assert features.shape == (2, config.model.widths[-1])
  classifier = variables["params"]["classifier"]
  assert classifier["kernel"].shape == (config.model.widths[-1], 10)
  # The features are what the classifier reads: the logits are their affine map, in NumPy.
  logits = model.apply(variables, x, train=False)
  np.testing.assert_allclose(logits, np.asarray(features) @ np.asarray(classifier["kernel"])
                             + np.asarray(classifier["bias"]), rtol=1e-5, atol=1e-5)
  assert np.std(np.asarray(features)) > 0  # not a constant that any map would fit


def read_metrics(workdir) -> dict[int, dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r for r in map(json.loads, f)}


def test_same_losses_on_1_and_8_devices(data_dir, tmp_path):
  runs = {}
  for devices in (1, 8):
    config = supervised_config(data_dir)
    config.data.num_classes = 0  # filled from the dataset by the trainer
    config.num_devices = devices
    workdir = str(tmp_path / f"d{devices}")
    train.train(config, workdir)
    runs[devices] = read_metrics(workdir)
  one, eight = runs[1], runs[8]
  assert sorted(one) == [1, 2, 3, 4]
  for key in ("loss", "accuracy", "grad_norm"):
    np.testing.assert_allclose([eight[s][key] for s in range(1, 5)], [one[s][key] for s in range(1, 5)],
                               rtol=2e-5, atol=1e-6, err_msg=key)
  assert one[4]["loss"] != one[1]["loss"]


def test_short_run_lowers_training_loss(data_dir, tmp_path):
  config = supervised_config(data_dir)
  config.total_steps = 40
  config.checkpoint_every_steps = 40
  config.optimizer.base_lr = 1.6  # lr 0.1 at batch 16: the config's 0.1 x 16/256 moves too little in 40 steps
  train.train(config, str(tmp_path / "run"))
  records = read_metrics(str(tmp_path / "run"))
  losses = np.array([records[s]["loss"] for s in range(1, 41)])
  accuracy = np.array([records[s]["accuracy"] for s in range(1, 41)])
  assert np.all(np.isfinite(losses))
  # Ten classes: about log(10) = 2.3 at initialization.
  assert 1.8 < losses[:5].mean() < 3.0
  assert losses[-5:].mean() < 0.9 * losses[:5].mean(), losses
  assert accuracy[-5:].mean() > accuracy[:5].mean() + 0.1, accuracy
