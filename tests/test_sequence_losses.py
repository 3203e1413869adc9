"""Sequence and token losses (APC, CPC, masked-frame L1, skip-gram) against references
written from the papers' definitions with explicit loops in float64, padding invariance,
and 8-device values and gradients against the 1-device global batch.

Tolerances: float32 losses against float64 references rtol 1e-5 (atol 1e-6 near 0);
8 devices against 1 device rtol 1e-5 on values, rtol 1e-4 / atol 1e-6 on gradients
(only the order of float32 sums differs); padding invariance is exact up to the same
reordering, rtol 1e-6 / atol 1e-7.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sslax import losses, parallel

B, T, F, K, D = 16, 9, 5, 3, 6  # 16 sequences: 2 per device on the 8-device mesh


# ----------------------------------------------------------------------------
# References: float64, one loop iteration per term of the paper's sum.
# ----------------------------------------------------------------------------

def apc_reference(pred, frames, mask, shift):
  """Chung et al. 2019: sum_t |x_{t+n} - y_t|, averaged over the real pairs and features."""
  total, count = 0.0, 0
  for b in range(pred.shape[0]):
    for t in range(pred.shape[1]):
      if t + shift < pred.shape[1] and mask[b, t] and mask[b, t + shift]:
        for f in range(pred.shape[2]):
          total += abs(float(pred[b, t, f]) - float(frames[b, t + shift, f]))
          count += 1
  return total / max(count, 1)


def cpc_reference(preds, z, mask):
  """van den Oord et al. 2018, eq. 4: -log f(x_{t+k}, c_t) / sum_{x_j in X} f(x_j, c_t),
  X = the positive and the other sequences' encodings at step t+k, f = exp(z^T W_k c)."""
  batch, length, steps, _ = preds.shape
  total, count = 0.0, 0
  for b in range(batch):
    for t in range(length):
      for k in range(steps):
        target = t + k + 1
        if target >= length or not mask[b, t] or not mask[b, target]:
          continue
        scores = [float(np.dot(preds[b, t, k].astype(np.float64), z[c, target].astype(np.float64)))
                  for c in range(batch) if mask[c, target]]
        positive = float(np.dot(preds[b, t, k].astype(np.float64), z[b, target].astype(np.float64)))
        top = max(scores)
        total += top + math.log(sum(math.exp(s - top) for s in scores)) - positive
        count += 1
  return total / max(count, 1)


def masked_frame_reference(recon, frames, frame_mask, mask):
  total, count = 0.0, 0
  for b in range(recon.shape[0]):
    for t in range(recon.shape[1]):
      if frame_mask[b, t] and mask[b, t]:
        for f in range(recon.shape[2]):
          total += abs(float(recon[b, t, f]) - float(frames[b, t, f]))
          count += 1
  return total / max(count, 1)


def _log_sigmoid(x):
  return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def skipgram_reference(center, context, negatives, weights=None):
  """Mikolov et al. 2013, eq. 4 (negated): -log s(v'_O . v_I) - sum_i log s(-v'_i . v_I)."""
  n = center.shape[0]
  weights = np.ones(n) if weights is None else weights
  total, weight_sum = 0.0, 0.0
  for i in range(n):
    if weights[i] == 0:
      continue
    term = -_log_sigmoid(float(np.dot(center[i].astype(np.float64), context[i].astype(np.float64))))
    for m in range(negatives.shape[1]):
      term -= _log_sigmoid(-float(np.dot(center[i].astype(np.float64),
                                         negatives[i, m].astype(np.float64))))
    total += weights[i] * term
    weight_sum += weights[i]
  return total / weight_sum if weight_sum > 0 else 0.0


# ----------------------------------------------------------------------------
# Data.
# ----------------------------------------------------------------------------

def _random_mask(rng, batch, length):
  """Real frames with holes and different lengths, one sequence fully padded."""
  mask = rng.random((batch, length)) < 0.8
  lengths = rng.integers(1, length + 1, size=batch)
  mask &= np.arange(length)[None, :] < lengths[:, None]
  mask[3] = False
  return mask


def _sequences(seed, *trailing_shapes):
  rng = np.random.default_rng(seed)
  arrays = [rng.normal(size=(B, T) + s).astype(np.float32) for s in trailing_shapes]
  return arrays, _random_mask(rng, B, T)


def _pad_time(x, extra, garbage):
  """Appends `extra` padded steps along axis 1 filled with garbage (large, inf, NaN)."""
  pad = np.full((x.shape[0], extra) + x.shape[2:], garbage, x.dtype) if x.dtype != bool else \
      np.zeros((x.shape[0], extra) + x.shape[2:], bool)
  return np.concatenate([x, pad], axis=1)


def _assert_padding_invariant(loss, arrays, masks, argnums, extra=4):
  """loss(*arrays, *masks): the same value and real-part gradients with padded steps
  appended; the gradients on the padding are exactly 0."""
  value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=argnums))
  want, want_grads = value_and_grad(*arrays, *masks)
  for garbage in (1e6, np.inf, np.nan):
    padded = [_pad_time(a, extra, garbage) for a in arrays]
    padded_masks = [_pad_time(m, extra, garbage) for m in masks]
    got, got_grads = value_and_grad(*padded, *padded_masks)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6, atol=1e-7)
    for g, w in zip(got_grads, want_grads):
      g = np.asarray(g)
      np.testing.assert_allclose(g[:, :T], np.asarray(w), rtol=1e-6, atol=1e-7)
      assert np.all(g[:, T:] == 0), garbage


def _on_8_devices(loss, arrays, argnums):
  """value_and_grad of loss(*arrays, axis_name=DATA_AXIS) split over 8 devices."""
  mesh = parallel.make_mesh(8)
  fn = jax.jit(jax.shard_map(
      lambda *xs: jax.value_and_grad(
          lambda *ys: loss(*ys, axis_name=parallel.DATA_AXIS), argnums=argnums)(*xs),
      mesh=mesh, in_specs=tuple(P(parallel.DATA_AXIS) for _ in arrays),
      out_specs=(P(), tuple(P(parallel.DATA_AXIS) for _ in argnums)), check_vma=True))
  return fn(*[jax.device_put(a, NamedSharding(mesh, P(parallel.DATA_AXIS))) for a in arrays])


def _assert_8_devices_equal_global_batch(loss, arrays, argnums):
  assert len(jax.devices()) == 8, "conftest.py asks for 8 CPU devices"
  want, want_grads = jax.value_and_grad(loss, argnums=argnums)(*arrays)
  got, got_grads = _on_8_devices(loss, arrays, argnums)
  np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
  for g, w in zip(got_grads, want_grads):
    assert np.abs(np.asarray(w)).max() > 0  # the comparison is not vacuous
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------
# APC.
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("shift", [1, 3])
def test_apc_matches_reference(shift):
  (pred, frames), mask = _sequences(0, (F,), (F,))
  value = losses.apc_loss(pred, frames, mask, shift)
  np.testing.assert_allclose(float(value), apc_reference(pred, frames, mask, shift), rtol=1e-5)


def test_apc_padding_invariant():
  (pred, frames), mask = _sequences(1, (F,), (F,))
  _assert_padding_invariant(lambda p, x, m: losses.apc_loss(p, x, m, 2), [pred, frames], [mask], (0, 1))


def test_apc_on_8_devices_equals_global_batch():
  (pred, frames), mask = _sequences(2, (F,), (F,))
  _assert_8_devices_equal_global_batch(
      lambda p, x, m, axis_name=None: losses.apc_loss(p, x, m, 2, axis_name=axis_name),
      [pred, frames, mask], (0, 1))


# ----------------------------------------------------------------------------
# CPC.
# ----------------------------------------------------------------------------

def test_cpc_matches_reference():
  (preds, z), mask = _sequences(3, (K, D), (D,))
  value = losses.cpc_infonce(preds, z, mask)
  np.testing.assert_allclose(float(value), cpc_reference(preds, z, mask), rtol=1e-5)


def test_cpc_is_low_when_predictions_point_at_their_targets():
  (_, z), mask = _sequences(4, (K, D), (D,))
  mask[:] = True
  z /= np.linalg.norm(z, axis=-1, keepdims=True)
  preds = np.zeros((B, T, K, D), np.float32)
  for k in range(K):
    preds[:, :T - k - 1, k] = 20.0 * z[:, k + 1:]
  assert float(losses.cpc_infonce(preds, z, mask)) < 0.1 < float(
      losses.cpc_infonce(preds[::-1], z, mask))


def test_cpc_padding_invariant_in_time_and_batch():
  (preds, z), mask = _sequences(5, (K, D), (D,))
  loss = lambda p, x, m: losses.cpc_infonce(p, x, m)
  _assert_padding_invariant(loss, [preds, z], [mask], (0, 1))
  # A fully padded sequence appended to the batch adds no anchor and no candidate.
  value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  want, want_grads = value_and_grad(preds, z, mask)
  got, got_grads = value_and_grad(
      np.concatenate([preds, np.full_like(preds[:1], np.nan)]),
      np.concatenate([z, np.full_like(z[:1], 1e6)]),
      np.concatenate([mask, np.zeros_like(mask[:1])]))
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(np.asarray(g)[:B], np.asarray(w), rtol=1e-6, atol=1e-7)
    assert np.all(np.asarray(g)[B:] == 0)


def test_cpc_on_8_devices_equals_global_batch_values_and_gradients():
  (preds, z), mask = _sequences(6, (K, D), (D,))
  _assert_8_devices_equal_global_batch(
      lambda p, x, m, axis_name=None: losses.cpc_infonce(p, x, m, axis_name=axis_name),
      [preds, z, mask], (0, 1))


# ----------------------------------------------------------------------------
# Masked frames.
# ----------------------------------------------------------------------------

def test_masked_frame_matches_reference():
  (recon, frames), mask = _sequences(7, (F,), (F,))
  frame_mask = np.random.default_rng(8).random((B, T)) < 0.3
  value = losses.masked_frame_loss(recon, frames, frame_mask, mask)
  np.testing.assert_allclose(
      float(value), masked_frame_reference(recon, frames, frame_mask, mask), rtol=1e-5)


def test_masked_frame_padding_invariant():
  (recon, frames), mask = _sequences(9, (F,), (F,))
  frame_mask = np.random.default_rng(10).random((B, T)) < 0.3
  # Padding inside frame_mask too: a selected padded frame still must not count.
  _assert_padding_invariant(
      lambda r, x, fm, m: losses.masked_frame_loss(r, x, fm, m), [recon, frames],
      [frame_mask, mask], (0, 1))
  padded_selected = np.concatenate([frame_mask, np.ones((B, 4), bool)], axis=1)
  got = losses.masked_frame_loss(_pad_time(recon, 4, 7.0), _pad_time(frames, 4, -7.0),
                                 padded_selected, _pad_time(mask, 4, 0))
  np.testing.assert_allclose(
      float(got), float(losses.masked_frame_loss(recon, frames, frame_mask, mask)), rtol=1e-6)


def test_masked_frame_on_8_devices_equals_global_batch():
  (recon, frames), mask = _sequences(11, (F,), (F,))
  frame_mask = np.random.default_rng(12).random((B, T)) < 0.3
  _assert_8_devices_equal_global_batch(
      lambda r, x, fm, m, axis_name=None: losses.masked_frame_loss(r, x, fm, m, axis_name=axis_name),
      [recon, frames, frame_mask, mask], (0, 1))


# ----------------------------------------------------------------------------
# Skip-gram.
# ----------------------------------------------------------------------------

def test_skipgram_known_vectors():
  center = np.array([[1.0, 0.0]], np.float32)
  context = np.array([[2.0, 0.0]], np.float32)
  negatives = np.array([[[0.0, 1.0], [-1.0, 0.0]]], np.float32)
  # dots: positive 2, negatives 0 and -1 -> log(1 + e^-2) + log 2 + log(1 + e^-1).
  want = math.log1p(math.exp(-2.0)) + math.log(2.0) + math.log1p(math.exp(-1.0))
  np.testing.assert_allclose(float(losses.skipgram_loss(center, context, negatives)), want, rtol=1e-6)
  # Far in the saturated tails: finite, the margins exactly, and a finite gradient.
  big = 1000.0 * center
  value, grad = jax.value_and_grad(losses.skipgram_loss)(big, -context, -negatives)
  # dots: positive -2000, negatives 0 and 1000 -> 2000 + log 2 + 1000.
  np.testing.assert_allclose(float(value), 3000.0 + math.log(2.0), rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_skipgram_matches_reference_with_weights():
  rng = np.random.default_rng(13)
  center, context = rng.normal(size=(2, B, D)).astype(np.float32)
  negatives = rng.normal(size=(B, 4, D)).astype(np.float32)
  weights = rng.random(B).astype(np.float32)
  weights[[2, 5]] = 0.0
  np.testing.assert_allclose(float(losses.skipgram_loss(center, context, negatives)),
                             skipgram_reference(center, context, negatives), rtol=1e-5)
  np.testing.assert_allclose(float(losses.skipgram_loss(center, context, negatives, weights)),
                             skipgram_reference(center, context, negatives, weights), rtol=1e-5)
  # Zero-weight pairs are padding: garbage there changes neither value nor gradients.
  garbage = [a.copy() for a in (center, context, negatives)]
  for a in garbage:
    a[[2, 5]] = np.nan
  want, want_grads = jax.value_and_grad(losses.skipgram_loss, argnums=(0, 1, 2))(
      center, context, negatives, weights)
  got, got_grads = jax.value_and_grad(losses.skipgram_loss, argnums=(0, 1, 2))(*garbage, weights)
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-7)


def test_skipgram_on_8_devices_equals_global_batch():
  rng = np.random.default_rng(14)
  center, context = rng.normal(size=(2, B, D)).astype(np.float32)
  negatives = rng.normal(size=(B, 4, D)).astype(np.float32)
  weights = (rng.random(B) * (rng.random(B) < 0.7)).astype(np.float32)
  _assert_8_devices_equal_global_batch(
      lambda c, x, n, w, axis_name=None: losses.skipgram_loss(c, x, n, w, axis_name=axis_name),
      [center, context, negatives, weights], (0, 1, 2))


# ----------------------------------------------------------------------------
# Nothing to score.
# ----------------------------------------------------------------------------

def test_no_valid_positions_give_a_finite_zero_and_zero_gradients():
  rng = np.random.default_rng(15)
  frames = rng.normal(size=(2, 4, F)).astype(np.float32)
  preds = rng.normal(size=(2, 4, K, D)).astype(np.float32)
  z = rng.normal(size=(2, 4, D)).astype(np.float32)
  one_frame = np.zeros((2, 4), bool)
  one_frame[:, 0] = True  # a real frame per sequence, but nothing after it to predict
  cases = [
      (lambda p: losses.apc_loss(p, frames, one_frame, 1), frames),
      (lambda p: losses.apc_loss(p, frames, np.ones((2, 4), bool), 4), frames),  # shift >= T
      (lambda p: losses.cpc_infonce(p, z, one_frame), preds),
      (lambda p: losses.cpc_infonce(p[:, :1], z[:, :1], one_frame[:, :1]), preds),  # T = 1
      (lambda p: losses.masked_frame_loss(p, frames, ~one_frame, one_frame), frames),
      (lambda p: losses.skipgram_loss(p[:, 0], p[:, 1], p[:, 2:], jnp.zeros(2)), frames),
  ]
  for loss, x in cases:
    value, grad = jax.jit(jax.value_and_grad(loss))(x)
    assert float(value) == 0.0
    assert np.all(np.asarray(grad) == 0)


def test_cpc_with_no_anchor_on_some_devices_stays_global():
  """Devices whose sequences are all padding still take part in the psums."""
  (preds, z), mask = _sequences(16, (K, D), (D,))
  mask[:6] = False  # devices 0-2 hold only padding
  _assert_8_devices_equal_global_batch(
      lambda p, x, m, axis_name=None: losses.cpc_infonce(p, x, m, axis_name=axis_name),
      [preds, z, mask], (0, 1))
