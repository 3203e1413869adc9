"""A method from outside the library, examples/nnclr.py (NNCLR), loaded by its import path:
its loss against a NumPy version of the paper's formula (on 1 device and on 8), its support
set update, its config check, and 4 training steps on 1 and on 8 devices giving the same
losses and support set."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from sslax import config as config_lib
from sslax import parallel, train
from sslax.errors import ConfigError
from tests.helpers import tiny_config

NAME = "examples.nnclr"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




@pytest.fixture(scope="module")
def nnclr():
  """The example module, as the registry loads it: by import path, from outside sslax."""
  from sslax.methods import get_method
  assert get_method(NAME).name == NAME
  return importlib.import_module(NAME)


# ---------------------------------------------------------------------------------------
# The loss against the paper's formula.
# ---------------------------------------------------------------------------------------

def _unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_nnclr(z1, z2, p1, p2, support, temperature):
  """Dwibedi et al. 2021, eqs. 2-3 with the prediction head (Algorithm 1): the positive of
  anchor i is NN(z_i, Q), the support row of highest cosine; the candidates are the other
  view's predictions of the batch; symmetrized over the two views."""
  q = _unit(support.astype(np.float64))

  def neighbours(z):
    cosines = _unit(z.astype(np.float64)) @ q.T
    return np.stack([q[int(np.argmax(row))] for row in cosines])

  def infonce(nn, p):
    logits = nn @ _unit(p.astype(np.float64)).T / temperature
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -np.mean(np.diag(log_softmax))

  return 0.5 * (infonce(neighbours(z1), p2) + infonce(neighbours(z2), p1))


@pytest.fixture(scope="module")
def arrays():
  rng = np.random.default_rng(0)
  batch, dim, support_size = 16, 8, 40
  z1, z2, p1, p2 = (rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(4))
  support = _unit(rng.normal(size=(support_size, dim))).astype(np.float32)
  return z1, z2, p1, p2, support


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_loss_matches_the_papers_formula(nnclr, arrays, temperature):
  want = numpy_nnclr(*arrays, temperature)
  got, _ = nnclr.nnclr_loss(*map(jnp.asarray, arrays), temperature)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_loss_on_8_devices_is_the_global_batch_loss(nnclr, arrays):
  *batch, support = arrays
  mesh = parallel.make_mesh(8)

  def per_device(support, z1, z2, p1, p2):
    return nnclr.nnclr_loss(z1, z2, p1, p2, support, 0.1, parallel.DATA_AXIS)

  fn = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(),) + (P(parallel.DATA_AXIS),) * 4,
                             out_specs=(P(), P())))
  got, cosine = fn(support, *batch)
  np.testing.assert_allclose(float(got), numpy_nnclr(*arrays, 0.1), rtol=1e-5)
  z = np.concatenate([batch[0], batch[1]])
  np.testing.assert_allclose(float(cosine), np.mean(np.max(_unit(z) @ support.T, axis=1)), rtol=1e-5)


def test_neighbours_carry_no_gradient(nnclr, arrays):
  """The support set is a constant: the gradient reaches the projections only through the
  predictor, never through the neighbour lookup."""
  z1, z2, p1, p2, support = map(jnp.asarray, arrays)
  grad_z = jax.grad(lambda z1, z2: nnclr.nnclr_loss(z1, z2, p1, p2, support, 0.1)[0],
                    argnums=(0, 1))(z1, z2)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in grad_z)
  grad_p = jax.grad(lambda p1: nnclr.nnclr_loss(z1, z2, p1, p2, support, 0.1)[0])(p1)
  assert float(jnp.abs(grad_p).max()) > 0.0


def test_support_set_takes_the_newest_global_batch_and_wraps(nnclr):
  state = {"support": jnp.zeros((6, 2)), "support_index": jnp.asarray(4, jnp.int32)}
  newest = jnp.arange(4.0).reshape(2, 2) + 1
  _, state = nnclr.update_state(None, {}, state, {"projections": newest}, 0)
  np.testing.assert_array_equal(state["support"][4:], newest)
  assert int(state["support_index"]) == 0


# ---------------------------------------------------------------------------------------
# Config and training through the trainer.
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  return tiny_fashion_mnist


def nnclr_config(nnclr, data_dir: str):
  """tiny_config with NNCLR's defaults, tiny heads and a support set of 3 global batches,
  so 4 steps wrap around it."""
  config = tiny_config(data_dir)
  config.method = nnclr.defaults()
  config.method.projector_hidden = (32,)
  config.method.projector_dim = 16
  config.method.predictor_hidden = (8,)
  config.method.queue_size = 3 * config.batch_size
  config.checkpoint_every_steps = config.total_steps  # one save: checkpoints are not tested here
  return config


def test_validate_rejects_a_support_set_of_partial_batches(nnclr, data_dir):
  config = nnclr_config(nnclr, data_dir)
  config.method.queue_size = config.batch_size + 1
  with pytest.raises(ConfigError, match="method.queue_size.*multiple of batch_size = 16"):
    nnclr.METHOD.validate(config)


def test_example_config_is_valid(nnclr):
  spec = importlib.util.spec_from_file_location(
      "nnclr_fashion_mnist", os.path.join(REPO, "examples", "nnclr_fashion_mnist.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  assert config.method.name == NAME
  config_lib.validate(config)


def read_losses(workdir) -> dict[int, float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["loss"] for r in map(json.loads, f)}


def test_same_losses_and_support_set_on_1_and_8_devices(nnclr, data_dir, tmp_path):
  results = {}
  for devices in (1, 8):
    config = nnclr_config(nnclr, data_dir)
    config.num_devices = devices
    workdir = str(tmp_path / f"d{devices}")
    state, _, _ = train.train(config, workdir)
    results[devices] = (read_losses(workdir), jax.tree.map(np.asarray, parallel.to_host(state.method_state)))
  (losses1, state1), (losses8, state8) = results[1], results[8]
  assert sorted(losses1) == [1, 2, 3, 4] and all(np.isfinite(list(losses1.values())))
  np.testing.assert_allclose([losses8[s] for s in range(1, 5)], [losses1[s] for s in range(1, 5)],
                             rtol=2e-5, atol=1e-6)
  assert losses1[4] != losses1[1], "the loss moved"
  # 4 steps into a support set of 3 batches: the last step's batch went to the first slot.
  assert int(state1["support_index"]) == int(state8["support_index"]) == 16
  np.testing.assert_allclose(np.linalg.norm(state1["support"], axis=1), 1.0, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4), state8, state1)
