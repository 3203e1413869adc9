"""NT-Xent against the paper's definition, written independently in NumPy, and the
8-device value and gradients against the 1-device global batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sslax import losses, parallel


def nt_xent_reference(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
  """Chen et al. 2020, Algorithm 1: samples 2k-1 and 2k are the two views of image k;
  l(i, j) = -log exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau); L = mean over all 2N."""
  n = len(z1)
  z = np.empty((2 * n, z1.shape[1]), np.float64)
  z[0::2], z[1::2] = z1, z2  # interleaved, as in the paper's algorithm
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  sim = z @ z.T
  total = 0.0
  for i in range(2 * n):
    j = i + 1 if i % 2 == 0 else i - 1
    denominator = sum(np.exp(sim[i, k] / tau) for k in range(2 * n) if k != i)
    total += -np.log(np.exp(sim[i, j] / tau) / denominator)
  return total / (2 * n)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_paper_definition(tau):
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(12, 7)), rng.normal(size=(12, 7))
  value = losses.nt_xent(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), tau)
  np.testing.assert_allclose(float(value), nt_xent_reference(z1, z2, tau), rtol=1e-5)


def test_nt_xent_is_low_for_aligned_views_and_scale_invariant():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(16, 32)).astype(np.float32)
  aligned = float(losses.nt_xent(z, z * 3.0, 0.1))
  shuffled = float(losses.nt_xent(z, z[::-1], 0.1))
  assert aligned < shuffled
  np.testing.assert_allclose(aligned, nt_xent_reference(z, z, 0.1), rtol=1e-5)


def _sharded(mesh, *arrays):
  return [jax.device_put(a, NamedSharding(mesh, P(parallel.DATA_AXIS))) for a in arrays]


def test_nt_xent_on_8_devices_equals_global_batch_values_and_gradients():
  assert len(jax.devices()) == 8, "conftest.py asks for 8 CPU devices"
  rng = np.random.default_rng(2)
  z1 = rng.normal(size=(32, 16)).astype(np.float32)
  z2 = rng.normal(size=(32, 16)).astype(np.float32)
  tau = 0.2

  reference_value, reference_grads = jax.value_and_grad(
      lambda a, b: losses.nt_xent(a, b, tau), argnums=(0, 1))(z1, z2)

  mesh = parallel.make_mesh(8)

  def per_device(a, b):
    value, grads = jax.value_and_grad(
        lambda a, b: losses.nt_xent(a, b, tau, axis_name=parallel.DATA_AXIS), argnums=(0, 1))(a, b)
    return value, grads

  fn = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P("data"), P("data")),
                             out_specs=(P(), P("data")), check_vma=True))
  value, grads = fn(*_sharded(mesh, z1, z2))
  np.testing.assert_allclose(float(value), float(reference_value), rtol=1e-5)
  for got, want in zip(grads, reference_grads):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-7)


def test_parameter_gradient_through_gathered_loss_is_global():
  """Replicated parameters: jax.grad inside the sharded step is the full-batch gradient."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=(16, 5)).astype(np.float32)
  w = (0.3 * rng.normal(size=(5, 4))).astype(np.float32)

  def loss(w, x, axis_name=None):
    z = x @ w
    return losses.nt_xent(z[::2], z[1::2], 0.5, axis_name=axis_name)

  want_value, want_grad = jax.value_and_grad(loss)(w, x)
  mesh = parallel.make_mesh(8)
  fn = jax.jit(jax.shard_map(
      lambda w, x: jax.value_and_grad(loss)(w, x, parallel.DATA_AXIS), mesh=mesh,
      in_specs=(P(), P("data")), out_specs=(P(), P()), check_vma=True))
  # 16 rows on 8 devices: each device holds one pair (rows 2d, 2d+1), in the global order.
  got_value, got_grad = fn(jax.device_put(w, NamedSharding(mesh, P())), *_sharded(mesh, x))
  np.testing.assert_allclose(float(got_value), float(want_value), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(got_grad), np.asarray(want_grad), rtol=1e-4, atol=1e-6)


def _nt_xent_on_mesh(z1, z2, tau, devices, per_device_negatives):
  mesh = parallel.make_mesh(devices)
  fn = jax.jit(jax.shard_map(
      lambda a, b: losses.nt_xent(a, b, tau, axis_name=parallel.DATA_AXIS,
                                  per_device_negatives=per_device_negatives),
      mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P(), check_vma=True))
  return float(fn(*_sharded(mesh, z1, z2)))


def test_per_device_negatives_are_each_shards_own_nt_xent():
  """negatives="per_device" (SimCLR without the gather): on 8 devices the mean over the 8
  shards of the NumPy NT-Xent of each shard alone, not the global batch's value; on one
  device the same as global."""
  rng = np.random.default_rng(4)
  z1 = rng.normal(size=(32, 16)).astype(np.float32)
  z2 = rng.normal(size=(32, 16)).astype(np.float32)
  tau = 0.2
  per_device = _nt_xent_on_mesh(z1, z2, tau, 8, True)
  want = np.mean([nt_xent_reference(z1[s:s + 4], z2[s:s + 4], tau) for s in range(0, 32, 4)])
  np.testing.assert_allclose(per_device, want, rtol=1e-5)
  global_value = _nt_xent_on_mesh(z1, z2, tau, 8, False)
  np.testing.assert_allclose(global_value, nt_xent_reference(z1, z2, tau), rtol=1e-5)
  assert abs(per_device - global_value) > 0.1
  np.testing.assert_allclose(_nt_xent_on_mesh(z1, z2, tau, 1, True),
                             _nt_xent_on_mesh(z1, z2, tau, 1, False), rtol=1e-6)


def test_per_device_negatives_gradient_is_the_mean_of_the_shards_gradients():
  rng = np.random.default_rng(5)
  z1 = rng.normal(size=(16, 8)).astype(np.float32)
  z2 = rng.normal(size=(16, 8)).astype(np.float32)

  def shards_mean(a, b):  # 8 independent losses on 2 images each, averaged
    return jnp.mean(jnp.stack([losses.nt_xent(a[s:s + 2], b[s:s + 2], 0.5) for s in range(0, 16, 2)]))

  want = jax.grad(shards_mean, argnums=(0, 1))(z1, z2)
  mesh = parallel.make_mesh(8)
  fn = jax.jit(jax.shard_map(
      jax.grad(lambda a, b: losses.nt_xent(a, b, 0.5, axis_name=parallel.DATA_AXIS,
                                           per_device_negatives=True), argnums=(0, 1)),
      mesh=mesh, in_specs=(P("data"), P("data")), out_specs=(P("data"), P("data")), check_vma=True))
  for got, expected in zip(fn(*_sharded(mesh, z1, z2)), want):
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-4, atol=1e-7)
