"""The joint-embedding losses (BYOL, SimSiam, Barlow Twins, VICReg, MoCo, DINO, SwAV's
Sinkhorn-Knopp) against independent float64 NumPy versions written from the papers'
formulas and official code, and their 8-device values and gradients against the
1-device global batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sslax import losses, parallel

BATCH = 32  # global batch; 4 examples per device on the 8-device mesh


# ----------------------------------------------------------------------------
# NumPy references, float64, loops where the paper writes a sum.
# ----------------------------------------------------------------------------

def f64(*arrays):
  return [np.asarray(a, np.float64) for a in arrays]


def cos(a, b):
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def byol_reference(p, z):
  """Grill et al. 2020, eq. 2: || p/||p|| - z/||z|| ||^2, averaged over the batch."""
  p, z = f64(p, z)
  return np.mean([np.sum((p[i] / np.linalg.norm(p[i]) - z[i] / np.linalg.norm(z[i])) ** 2)
                  for i in range(len(p))])


def simsiam_reference(p, z):
  """Chen & He 2021, eq. 1: D(p, z) = -cos(p, z), averaged over the batch."""
  p, z = f64(p, z)
  return -np.mean([cos(p[i], z[i]) for i in range(len(p))])


def barlow_twins_reference(z1, z2, lambd):
  """Official Barlow Twins: BatchNorm1d(affine=False) (biased variance, eps 1e-5),
  c = bn(z1).T @ bn(z2) / N, loss = sum (1 - c_ii)^2 + lambd sum_{i != j} c_ij^2."""
  def bn(z):
    return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)  # np.var is biased (ddof=0)
  n, d = z1.shape
  z1, z2 = f64(z1, z2)
  c = bn(z1).T @ bn(z2) / n
  loss = 0.0
  for i in range(d):
    for j in range(d):
      loss += (1 - c[i, i]) ** 2 if i == j else lambd * c[i, j] ** 2
  return loss


def vicreg_reference(x, y, sim_coeff, std_coeff, cov_coeff):
  """Official VICReg forward (main_vicreg.py), on the already gathered batch."""
  x, y = f64(x, y)
  n, d = x.shape
  repr_loss = np.mean((x - y) ** 2)
  x = x - x.mean(0)
  y = y - y.mean(0)
  std_x = np.sqrt(x.var(0, ddof=1) + 1e-4)
  std_y = np.sqrt(y.var(0, ddof=1) + 1e-4)
  std_loss = np.mean(np.maximum(1 - std_x, 0)) / 2 + np.mean(np.maximum(1 - std_y, 0)) / 2
  cov_x = np.cov(x, rowvar=False)  # unbiased, like x.T @ x / (n - 1)
  cov_y = np.cov(y, rowvar=False)
  off = ~np.eye(d, dtype=bool)
  cov_loss = np.sum(cov_x[off] ** 2) / d + np.sum(cov_y[off] ** 2) / d
  return sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss


def moco_reference(q, k, queue, tau):
  """He et al. 2020, eq. 1: -log exp(q.k+/t) / (exp(q.k+/t) + sum_queue exp(q.k/t))."""
  q, k, queue = f64(q, k, queue)
  total = 0.0
  for i in range(len(q)):
    qi = q[i] / np.linalg.norm(q[i])
    ki = k[i] / np.linalg.norm(k[i])
    positive = np.exp(qi @ ki / tau)
    negatives = sum(np.exp(qi @ key / tau) for key in queue)
    total += -np.log(positive / (positive + negatives))
  return total / len(q)


def softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def dino_reference(student, teacher, center, student_temp, teacher_temp):
  """Official DINOLoss.forward, loop for loop."""
  student, teacher, center = f64(student, teacher, center)
  student_out = student / student_temp
  teacher_out = softmax((teacher - center) / teacher_temp)
  total, n_terms = 0.0, 0
  for iq in range(2):
    for v in range(len(student_out)):
      if v == iq:
        continue
      log_p = np.log(softmax(student_out[v]))
      total += np.mean(np.sum(-teacher_out[iq] * log_p, axis=-1))
      n_terms += 1
  return total / n_terms


def dino_center_reference(center, teacher, momentum):
  """Official update_center: the batch sum over both views / (2 * global batch)."""
  center, teacher = f64(center, teacher)
  flat = teacher.reshape(-1, teacher.shape[-1])
  return center * momentum + flat.sum(0) / len(flat) * (1 - momentum)


def sinkhorn_reference(scores, epsilon, iterations):
  """Official SwAV distributed_sinkhorn on one process (world_size = 1)."""
  (scores,) = f64(scores)
  q = np.exp(scores / epsilon).T
  b = q.shape[1]
  k = q.shape[0]
  q /= q.sum()
  for _ in range(iterations):
    q /= q.sum(axis=1, keepdims=True)
    q /= k
    q /= q.sum(axis=0, keepdims=True)
    q /= b
  q *= b
  return q.T


# ----------------------------------------------------------------------------
# Single device against the references.
# ----------------------------------------------------------------------------

def _normal(seed, *shape, scale=1.0):
  return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def test_byol_and_simsiam_match_paper_definitions():
  p, z = _normal(0, 12, 9), _normal(1, 12, 9)
  np.testing.assert_allclose(float(losses.byol_loss(p, z)), byol_reference(p, z), rtol=1e-5)
  np.testing.assert_allclose(float(losses.simsiam_loss(p, z)), simsiam_reference(p, z),
                             rtol=1e-5, atol=1e-6)


def test_byol_and_simsiam_stop_the_gradient_of_the_target():
  p, z = _normal(2, 6, 5), _normal(3, 6, 5)
  for loss in (losses.byol_loss, losses.simsiam_loss):
    grad_p, grad_z = jax.grad(loss, argnums=(0, 1))(p, z)
    assert np.all(np.asarray(grad_z) == 0)
    assert np.any(np.asarray(grad_p) != 0)


@pytest.mark.parametrize("loss, scale", [(losses.byol_loss, -2.0), (losses.simsiam_loss, -1.0)])
def test_without_stop_gradient_the_target_gets_the_cosines_gradient(loss, scale):
  """stop_gradient=False: the value is unchanged, the gradient w.r.t. p is unchanged, and
  the gradient w.r.t. z is scale / B * d cos(p_i, z_i) / d z_i, with
  d cos(p, z) / d z = p / (|p| |z|) - cos(p, z) z / |z|^2 (both losses are c + scale * mean cos)."""
  p, z = _normal(4, 6, 5), _normal(5, 6, 5)
  value, (grad_p, grad_z) = jax.value_and_grad(
      lambda a, b: loss(a, b, stop_gradient=False), argnums=(0, 1))(p, z)
  stopped_value, (stopped_grad_p, _) = jax.value_and_grad(loss, argnums=(0, 1))(p, z)
  np.testing.assert_allclose(float(value), float(stopped_value), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(grad_p), np.asarray(stopped_grad_p), rtol=1e-6)
  p64, z64 = f64(p, z)
  norm_p = np.linalg.norm(p64, axis=1, keepdims=True)
  norm_z = np.linalg.norm(z64, axis=1, keepdims=True)
  cosines = np.sum(p64 * z64, axis=1, keepdims=True) / (norm_p * norm_z)
  want = scale / len(p) * (p64 / (norm_p * norm_z) - cosines * z64 / norm_z ** 2)
  np.testing.assert_allclose(np.asarray(grad_z), want, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("lambd", [0.0051, 0.5])
def test_barlow_twins_matches_official_formula(lambd):
  z1, z2 = _normal(4, 16, 6, scale=2.0) + 1.0, _normal(5, 16, 6)
  z2 = z2 + 0.5 * z1  # correlated views, so on- and off-diagonal terms both matter
  np.testing.assert_allclose(float(losses.barlow_twins_loss(z1, z2, lambd)),
                             barlow_twins_reference(z1, z2, lambd), rtol=1e-4)


def test_vicreg_matches_official_formula():
  # Scale 0.5: some dimensions have std < 1, so the hinge is active for them.
  z1, z2 = _normal(6, 16, 6, scale=0.5), _normal(7, 16, 6, scale=1.5)
  z2 = z2 + z1
  np.testing.assert_allclose(float(losses.vicreg_loss(z1, z2, 25.0, 25.0, 1.0)),
                             vicreg_reference(z1, z2, 25.0, 25.0, 1.0), rtol=1e-5)
  np.testing.assert_allclose(float(losses.vicreg_loss(z1, z2, 1.0, 3.0, 7.0)),
                             vicreg_reference(z1, z2, 1.0, 3.0, 7.0), rtol=1e-5)


def test_vicreg_variance_not_halved_matches_solo_learn():
  """solo-learn's variance_loss sums the two views' hinge terms: official std_loss * 2."""
  z1, z2 = _normal(6, 16, 6, scale=0.5), _normal(7, 16, 6, scale=1.5)
  halved = vicreg_reference(z1, z2, 0.0, 1.0, 0.0)  # the variance term alone, official
  np.testing.assert_allclose(float(losses.vicreg_loss(z1, z2, 0.0, 1.0, 0.0, halve_variance=False)),
                             2 * halved, rtol=1e-5)
  assert halved > 0  # the hinge is active, so the factor is tested


def test_moco_infonce_matches_paper_definition():
  q, k = _normal(8, 10, 8), _normal(9, 10, 8)
  queue = _normal(10, 24, 8)
  queue /= np.linalg.norm(queue, axis=1, keepdims=True)
  np.testing.assert_allclose(float(losses.moco_infonce(q, k, queue, 0.2)),
                             moco_reference(q, k, queue, 0.2), rtol=1e-5)
  grad_k, grad_queue = jax.grad(losses.moco_infonce, argnums=(1, 2))(q, k, queue, 0.2)
  assert np.all(np.asarray(grad_k) == 0) and np.all(np.asarray(grad_queue) == 0)


def test_batch_keys_infonce_is_moco_with_the_other_keys_of_the_batch_as_its_queue():
  """MoCo v2's queue_size=0: the negatives of q[i] are the keys k[j], j != i, of the batch."""
  q, k = _normal(11, 10, 8), _normal(12, 10, 8)
  normalized = k / np.linalg.norm(k, axis=1, keepdims=True)
  want = np.mean([moco_reference(q[i:i + 1], k[i:i + 1], np.delete(normalized, i, axis=0), 0.2)
                  for i in range(len(q))])
  np.testing.assert_allclose(float(losses.batch_keys_infonce(q, k, 0.2)), want, rtol=1e-5)
  grad_k = jax.grad(losses.batch_keys_infonce, argnums=1)(q, k, 0.2)
  assert np.all(np.asarray(grad_k) == 0)


def moco_v3_reference(q, k, temperature):
  """The official contrastive_loss on one GPU, in NumPy (float64)."""
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  k = k / np.linalg.norm(k, axis=1, keepdims=True)
  logits = q.astype(np.float64) @ k.T.astype(np.float64) / temperature
  log_softmax = logits - np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1,
                                       keepdims=True)) - logits.max(1, keepdims=True)
  return float(-np.mean(np.diag(log_softmax)) * 2 * temperature)


@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_moco_v3_infonce_matches_official_code(temperature):
  q, k = _normal(40, 12, 8), _normal(41, 12, 8)
  np.testing.assert_allclose(float(losses.moco_v3_infonce(q, k, temperature)),
                             moco_v3_reference(q, k, temperature), rtol=1e-5)
  assert np.all(np.asarray(jax.grad(losses.moco_v3_infonce, argnums=1)(q, k, temperature)) == 0)


@pytest.mark.parametrize("n_crops", [2, 4])
def test_dino_loss_matches_official_code(n_crops):
  student, teacher = _normal(11, n_crops, 8, 10), _normal(12, 2, 8, 10)
  center = _normal(13, 10, scale=0.1)
  np.testing.assert_allclose(float(losses.dino_loss(student, teacher, center, 0.1, 0.04)),
                             dino_reference(student, teacher, center, 0.1, 0.04), rtol=1e-5)
  # The official center has shape [1, K]; both shapes broadcast the same.
  np.testing.assert_allclose(float(losses.dino_loss(student, teacher, center[None], 0.1, 0.04)),
                             dino_reference(student, teacher, center, 0.1, 0.04), rtol=1e-5)
  assert np.all(np.asarray(jax.grad(losses.dino_loss, argnums=1)(student, teacher, center)) == 0)


def test_dino_center_update_matches_official_code():
  center, teacher = _normal(14, 1, 10), _normal(15, 2, 8, 10)
  got = losses.dino_center_update(center, teacher, 0.9)
  assert got.shape == center.shape
  np.testing.assert_allclose(np.asarray(got), dino_center_reference(center, teacher, 0.9),
                             rtol=1e-5, atol=1e-7)


def test_sinkhorn_matches_official_code():
  scores = np.tanh(_normal(16, 12, 5))  # in [-1, 1] as cosine scores are
  got = losses.sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
  np.testing.assert_allclose(np.asarray(got), sinkhorn_reference(scores, 0.05, 3),
                             rtol=1e-4, atol=1e-6)


def test_sinkhorn_marginals_are_equipartitioned():
  batch, prototypes = 24, 6
  scores = np.tanh(_normal(17, batch, prototypes))
  codes = np.asarray(losses.sinkhorn_knopp(scores, epsilon=0.1, iterations=300))
  # The last step normalizes examples: each row is a distribution over prototypes...
  np.testing.assert_allclose(codes.sum(1), np.ones(batch), rtol=1e-5)
  # ...and at convergence each prototype gets an equal share of the batch.
  np.testing.assert_allclose(codes.sum(0), np.full(prototypes, batch / prototypes), rtol=1e-3)


def test_sinkhorn_does_not_overflow_for_large_scores():
  # exp(5.5 / 0.05) = exp(110) is inf in float32; the official code would give NaN.
  scores = 5.0 + 0.5 * np.tanh(_normal(18, 8, 4))
  codes = np.asarray(losses.sinkhorn_knopp(scores, epsilon=0.05, iterations=3))
  assert np.all(np.isfinite(codes))
  np.testing.assert_allclose(codes, sinkhorn_reference(scores, 0.05, 3),
                             rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------
# 8 devices against the 1-device global batch: values and input gradients.
# ----------------------------------------------------------------------------

def _on_8_devices(fn, arrays, in_specs, out_specs):
  """jit(shard_map(fn)) on the 8-device mesh, with the arrays placed by in_specs."""
  assert len(jax.devices()) == 8, "conftest.py asks for 8 CPU devices"
  mesh = parallel.make_mesh(8)
  placed = [jax.device_put(a, NamedSharding(mesh, spec)) for a, spec in zip(arrays, in_specs)]
  mapped = jax.shard_map(fn, mesh=mesh, in_specs=tuple(in_specs), out_specs=out_specs,
                         check_vma=True)
  return jax.jit(mapped)(*placed)


def _assert_sharded_equals_global(loss, arrays, in_specs, rtol=1e-5, grad_atol=1e-6):
  """loss(*arrays, axis_name) -> scalar. Value and gradients w.r.t. every array."""
  argnums = tuple(range(len(arrays)))
  want_value, want_grads = jax.value_and_grad(
      lambda *a: loss(*a, None), argnums=argnums)(*arrays)
  got_value, got_grads = _on_8_devices(
      lambda *a: jax.value_and_grad(lambda *b: loss(*b, parallel.DATA_AXIS), argnums=argnums)(*a),
      arrays, in_specs, out_specs=(P(), tuple(in_specs)))
  np.testing.assert_allclose(float(got_value), float(want_value), rtol=rtol)
  for got, want in zip(got_grads, want_grads):
    assert np.any(np.asarray(want) != 0) or np.all(np.asarray(got) == 0)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=grad_atol)


BATCH_SPLIT = P(parallel.DATA_AXIS)


def test_byol_on_8_devices_equals_global_batch():
  p, z = _normal(20, BATCH, 8), _normal(21, BATCH, 8)
  _assert_sharded_equals_global(lambda p, z, ax: losses.byol_loss(p, z, axis_name=ax),
                                [p, z], [BATCH_SPLIT, BATCH_SPLIT])


def test_barlow_twins_on_8_devices_equals_global_batch():
  z1 = _normal(22, BATCH, 8, scale=2.0) + 1.0
  z2 = _normal(23, BATCH, 8) + 0.5 * z1
  _assert_sharded_equals_global(
      lambda a, b, ax: losses.barlow_twins_loss(a, b, 0.0051, axis_name=ax),
      [z1, z2], [BATCH_SPLIT, BATCH_SPLIT])


def test_vicreg_on_8_devices_equals_global_batch():
  z1 = _normal(24, BATCH, 8, scale=0.5)
  z2 = _normal(25, BATCH, 8, scale=1.5) + z1
  _assert_sharded_equals_global(
      lambda a, b, ax: losses.vicreg_loss(a, b, axis_name=ax),
      [z1, z2], [BATCH_SPLIT, BATCH_SPLIT], grad_atol=1e-5)


def test_moco_on_8_devices_equals_global_batch():
  q, k = _normal(26, BATCH, 8), _normal(27, BATCH, 8)
  queue = _normal(28, 40, 8)
  queue /= np.linalg.norm(queue, axis=1, keepdims=True)
  # The queue is replicated: every device scores its queries against all of it.
  _assert_sharded_equals_global(
      lambda q, k, queue, ax: losses.moco_infonce(q, k, queue, 0.2, axis_name=ax),
      [q, k, queue], [BATCH_SPLIT, BATCH_SPLIT, P()])


def test_moco_v3_on_8_devices_equals_global_batch():
  q, k = _normal(42, BATCH, 8), _normal(43, BATCH, 8)
  _assert_sharded_equals_global(
      lambda q, k, ax: losses.moco_v3_infonce(q, k, 0.2, axis_name=ax),
      [q, k], [BATCH_SPLIT, BATCH_SPLIT])


def test_batch_keys_infonce_on_8_devices_equals_global_batch():
  q, k = _normal(44, BATCH, 8), _normal(45, BATCH, 8)
  _assert_sharded_equals_global(
      lambda q, k, ax: losses.batch_keys_infonce(q, k, 0.2, axis_name=ax),
      [q, k], [BATCH_SPLIT, BATCH_SPLIT])


def test_dino_loss_on_8_devices_equals_global_batch():
  crops_split = P(None, parallel.DATA_AXIS)  # [crops, batch, K]: the batch is axis 1
  student, teacher = _normal(29, 4, BATCH, 10), _normal(30, 2, BATCH, 10)
  center = _normal(31, 10, scale=0.1)
  _assert_sharded_equals_global(
      lambda s, t, c, ax: losses.dino_loss(s, t, c, 0.1, 0.04, axis_name=ax),
      [student, teacher, center], [crops_split, crops_split, P()])


def test_dino_center_update_on_8_devices_equals_global_batch():
  crops_split = P(None, parallel.DATA_AXIS)
  center, teacher = _normal(32, 10), _normal(33, 2, BATCH, 10)
  weights = _normal(34, 10)  # a scalar function of the new center, to differentiate
  _assert_sharded_equals_global(
      lambda c, t, ax: jnp.sum(weights * losses.dino_center_update(c, t, 0.9, axis_name=ax)),
      [center, teacher], [P(), crops_split])
  got = _on_8_devices(lambda c, t: losses.dino_center_update(c, t, 0.9, axis_name=parallel.DATA_AXIS),
                      [center, teacher], [P(), crops_split], P())
  np.testing.assert_allclose(np.asarray(got), dino_center_reference(center, teacher, 0.9),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("iterations", [3, 100])
def test_sinkhorn_on_8_devices_equals_global_batch(iterations):
  scores = np.tanh(_normal(35, BATCH, 6))
  want = losses.sinkhorn_knopp(scores, epsilon=0.1, iterations=iterations)
  got = _on_8_devices(
      lambda s: losses.sinkhorn_knopp(s, epsilon=0.1, iterations=iterations,
                                      axis_name=parallel.DATA_AXIS),
      [scores], [BATCH_SPLIT], BATCH_SPLIT)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-6)
  if iterations == 100:
    # The global batch (not each device's 4 examples) is equipartitioned.
    np.testing.assert_allclose(np.asarray(got).sum(0), np.full(6, BATCH / 6), rtol=1e-3)


def test_sinkhorn_codes_carry_no_gradient_on_8_devices():
  scores = np.tanh(_normal(36, BATCH, 6))
  weights = _normal(37, BATCH, 6)
  # A SwAV-like use: the codes are targets, so the gradient is zero on both sides.
  _assert_sharded_equals_global(
      lambda s, w, ax: parallel.psum(jnp.sum(w * losses.sinkhorn_knopp(s, 0.1, 3, axis_name=ax)), ax),
      [scores, weights], [BATCH_SPLIT, BATCH_SPLIT])
  # ... and that gradient is zero: the sharded-equals-global comparison alone would also pass
  # with the gradient through the iterations that a missing stop_gradient lets through.
  codes_loss = lambda s, w: jnp.sum(w * losses.sinkhorn_knopp(s, 0.1, 3))  # noqa: E731
  np.testing.assert_array_equal(jax.grad(codes_loss)(jnp.asarray(scores), jnp.asarray(weights)), 0.0)
  # A check that can fail: the same loss through the normalization without the stop does move.
  assert np.abs(jax.grad(lambda s, w: jnp.sum(w * jax.nn.softmax(s / 0.1, axis=0)))(
      jnp.asarray(scores), jnp.asarray(weights))).max() > 0
