"""The stateless methods (SimSiam, Barlow Twins, VICReg) through the trainer on tiny
local data: the same losses on 1 and 8 devices, and the loss moves.

The losses themselves (and SimSiam's stop-gradient) are tested against the papers'
definitions in tests/test_joint_losses.py."""

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
METHODS = ("simsiam", "barlow_twins", "vicreg")


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def method_config(name: str, data_dir: str):
  """tiny_config with the method and optimizer of configs/<name>_fashion_mnist.py, small heads."""
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "configs", f"{name}_fashion_mnist.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  full = module.get_config()
  config = tiny_config(data_dir)
  config.method = full.method
  config.method.projector_hidden = (32,)
  config.method.projector_dim = 16
  if "predictor_hidden" in config.method:
    config.method.predictor_hidden = (8,)
  config.optimizer = full.optimizer
  config.optimizer.warmup_steps = 1
  return config


def read_losses(workdir) -> dict[int, float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["loss"] for r in map(json.loads, f)}


@pytest.mark.parametrize("views_forward", ["concatenated", "per_view"])
@pytest.mark.parametrize("name", METHODS)
def test_same_losses_on_1_and_8_devices(name, views_forward, data_dir, tmp_path):
  runs = {}
  for devices in (1, 8):
    config = method_config(name, data_dir)
    config.method.views_forward = views_forward  # each view's BatchNorm statistics global too
    config.num_devices = devices
    workdir = str(tmp_path / f"d{devices}")
    train.train(config, workdir)
    runs[devices] = read_losses(workdir)
  losses1, losses8 = runs[1], runs[8]
  assert sorted(losses1) == [1, 2, 3, 4]
  np.testing.assert_allclose([losses8[s] for s in range(1, 5)], [losses1[s] for s in range(1, 5)],
                             rtol=2e-5, atol=1e-6)
  # atol: SimSiam's loss is a mean of cosines, near 0 at initialization, where float32
  # summation-order noise (~1e-7 on values of order 1) exceeds any relative tolerance.
  assert all(np.isfinite(list(losses1.values())))
  assert losses1[4] != losses1[1], "the loss moved, so the runs are not two untrained states"


def test_simsiam_gradient_reaches_predictor_and_encoder(data_dir):
  config = method_config("simsiam", data_dir)
  method = get_method("simsiam")
  model = method.build(config)
  variables = step_lib.init_variables(model, config, 1)
  rng = np.random.default_rng(0)
  views = [jnp.asarray(rng.normal(size=(8, 28, 28, 1)), jnp.float32) for _ in range(2)]

  def loss_fn(params):
    # BatchNorm syncs over the mesh axis, so name it: a vmap over one "device".
    def per_device(views):
      inputs = StepInputs(views=views, labels=jnp.zeros(8, jnp.int32), step=jnp.zeros((), jnp.int32),
                          state={})
      value, aux = method.loss(model, {**variables, "params": params}, inputs,
                               config, parallel.DATA_AXIS)
      return value, aux.metrics
    value, metrics = jax.vmap(per_device, axis_name=parallel.DATA_AXIS)([v[None] for v in views])
    return value[0], jax.tree.map(lambda m: m[0], metrics)

  (value, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
  assert -1.0 <= float(value) <= 1.0  # a mean of negative cosines
  assert 0.0 < float(metrics["z_std"]) <= 1.0
  for part in ("encoder", "projector", "predictor"):
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads[part])]
    assert max(norms) > 0, f"no gradient reaches the {part}"


def test_per_view_forward_normalizes_each_view_by_its_own_statistics():
  """networks.apply_to_views(per_view=True) equals one train-mode call per view, the
  running statistics threaded through in view order; concatenated differs (shared stats)."""
  import flax.linen as nn

  from sslax.methods.common import networks

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
      return nn.BatchNorm(use_running_average=not train, momentum=0.9)(nn.Dense(3)(x))

  model = Net()
  rng = np.random.default_rng(0)
  view1 = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)
  view2 = jnp.asarray(3.0 + 2.0 * rng.normal(size=(8, 4)), jnp.float32)
  variables = model.init(jax.random.key(0), view1)
  (out1, out2), stats = networks.apply_to_views(model, variables, [view1, view2], per_view=True)
  want1, s1 = model.apply(variables, view1, mutable=["batch_stats"])
  want2, s2 = model.apply({**variables, **s1}, view2, mutable=["batch_stats"])
  np.testing.assert_allclose(out1, want1, rtol=1e-6)
  np.testing.assert_allclose(out2, want2, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), stats, s2["batch_stats"])
  # each output is standardized by its own view's statistics
  np.testing.assert_allclose(np.asarray(out2).mean(0), 0.0, atol=1e-5)
  (shared1, shared2), _ = networks.apply_to_views(model, variables, [view1, view2])
  assert abs(float(np.asarray(shared2).mean())) > 0.1  # shared statistics leave view 2 offset
