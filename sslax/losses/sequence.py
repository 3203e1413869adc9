"""Sequences and tokens: autoregressive and contrastive predictive coding (APC, CPC),
masked-frame reconstruction (Mockingjay/TERA) and skip-gram negative sampling.

Padded positions (mask False) are zeroed before any arithmetic, so whatever they hold (even
inf or NaN) reaches neither the value nor the gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslax import parallel
from sslax.losses.common import global_ratio, zero_padding


def apc_loss(pred: jax.Array, frames: jax.Array, mask: jax.Array, shift: int,
             axis_name: str | None = None) -> jax.Array:
  """Autoregressive predictive coding's L1 loss (Chung, Hsu, Tang, Glass 2019, eq. 1).

  The model's output at step t predicts the input frame `shift` steps later (n in the
  paper; it uses n = 3 for 10 ms frames).

  Args:
    pred: [B, T, F] predictions, pred[:, t] is the guess for frames[:, t + shift].
    frames: [B, T, F] input frames (the targets; take stop_gradient in the caller if
      they come from a trained network).
    mask: [B, T] bool, True for real frames, False for padding.
    shift: static int >= 0.
    axis_name: mesh axis the batch is split over; None on a single device.

  Returns:
    sum |pred[b, t] - frames[b, t + shift]| / (F * number of (b, t)), over the pairs of
    the global batch where t and t + shift are both real frames; 0 if there are none.
  """
  if shift < 0:
    raise ValueError(f"apc_loss: shift must be >= 0, got {shift}")
  length, features = pred.shape[1], pred.shape[2]
  pairs = max(length - shift, 0)  # shift >= T leaves empty slices: a loss of 0, no NaN
  mask = mask.astype(bool)
  valid = mask[:, :pairs] & mask[:, shift:]  # [B, T - shift]
  pred = zero_padding(pred[:, :pairs], valid)
  target = zero_padding(frames[:, shift:], valid)
  total = jnp.sum(jnp.abs(pred - target))
  count = jnp.sum(valid, dtype=jnp.float32) * features
  return global_ratio(total, count, axis_name)


def cpc_infonce(preds: jax.Array, z: jax.Array, mask: jax.Array,
                axis_name: str | None = None) -> jax.Array:
  """Contrastive predictive coding's InfoNCE (van den Oord, Li, Vinyals 2018, eq. 4).

  preds[b, t, k] = W_{k+1} c_t, the prediction made at step t for the encoding
  k + 1 steps ahead, is scored against z[b', t + k + 1] for every sequence b' of the
  global batch that is real at that position (the paper's f_k is exp of this dot
  product); z[b, t + k + 1] is the positive, the other sequences' encodings at the
  same step are the negatives.

  Args:
    preds: [B, T, K, D] predictions for 1..K steps ahead.
    z: [B, T, D] encodings of the frames (targets and negatives; gradients flow to
      them, also from other devices' anchors).
    mask: [B, T] bool, True for real frames, False for padding.
    axis_name: mesh axis to gather the candidates over; None on a single device.

  Returns:
    Mean over the anchors (b, t, k) of the global batch with t and t + k + 1 both real
    of logsumexp_{b' real at t+k+1} (preds[b,t,k] . z[b',t+k+1]) - preds[b,t,k] . z[b,t+k+1];
    0 if there are no anchors.
  """
  local, length, steps, _ = preds.shape
  mask = mask.astype(bool)
  preds = zero_padding(preds, mask)
  z = zero_padding(z, mask)
  # The gather's transpose sums every device's cotangent into the owner's rows, so
  # other devices' anchors reach this device's z (tested against one device).
  z_all = parallel.all_gather(z, axis_name)  # [B_global, T, D]
  mask_all = parallel.all_gather(mask.astype(jnp.int32), axis_name) > 0  # [B_global, T]
  own = jnp.arange(local) + parallel.global_offset(local, axis_name)  # [B]

  # Zeros computed from the inputs, not constants: under shard_map they are typed as
  # device-varying like the sums added to them, which psum expects even with no offsets.
  total = jnp.sum(preds[:, :0])
  count = jnp.sum(mask[:, :0], dtype=jnp.float32)
  # One offset at a time: logits are [B, T, B_global] per offset, never [B T, B_global T].
  for k in range(min(steps, length - 1)):
    gap = k + 1
    anchors = preds[:, :length - gap, k]  # [B, T - gap, D]
    logits = jnp.einsum("btd,ctd->btc", anchors, z_all[:, gap:])  # [B, T - gap, B_global]
    # A large finite negative, not -inf: a step with no real candidate stays NaN-free.
    logits = jnp.where(mask_all[:, gap:].T[None], logits, -1e9)
    index = jnp.broadcast_to(own[:, None, None], (local, length - gap, 1))
    positive = jnp.take_along_axis(logits, index, axis=2)[..., 0]
    valid = mask[:, :length - gap] & mask[:, gap:]  # [B, T - gap]
    per_anchor = jax.nn.logsumexp(logits, axis=2) - positive
    total = total + jnp.sum(jnp.where(valid, per_anchor, 0.0))
    count = count + jnp.sum(valid, dtype=jnp.float32)
  return global_ratio(total, count, axis_name)


def masked_frame_loss(recon: jax.Array, frames: jax.Array, frame_mask: jax.Array,
                      mask: jax.Array, axis_name: str | None = None) -> jax.Array:
  """L1 reconstruction loss on the masked frames of Mockingjay (Liu, Yang, Chi, Hsu, Lee
  2020, sec. 2.2) and TERA (Liu, Li, Lee 2020, sec. III-E).

  Args:
    recon: [B, T, F] the model's reconstruction of the (unaltered) input.
    frames: [B, T, F] the unaltered input frames.
    frame_mask: [B, T] bool, True where the input was altered (masked, replaced or
      kept as is but selected) and must be predicted.
    mask: [B, T] bool, True for real frames, False for padding.
    axis_name: mesh axis the batch is split over; None on a single device.

  Returns:
    sum |recon - frames| / (F * number of positions), over the positions of the global
    batch that are both selected and real; 0 if there are none.
  """
  features = recon.shape[2]
  selected = frame_mask.astype(bool) & mask.astype(bool)  # [B, T]
  error = jnp.abs(zero_padding(recon, selected) - zero_padding(frames, selected))
  count = jnp.sum(selected, dtype=jnp.float32) * features
  return global_ratio(jnp.sum(error), count, axis_name)


def skipgram_loss(center: jax.Array, context: jax.Array, negatives: jax.Array,
                  weights: jax.Array | None = None,
                  axis_name: str | None = None) -> jax.Array:
  """Skip-gram with negative sampling (Mikolov, Sutskever, Chen, Corrado, Dean 2013, eq. 4).

  Args:
    center: [N, D] input vectors v_{w_I} of the center words.
    context: [N, D] output vectors v'_{w_O} of the observed context words.
    negatives: [N, M, D] output vectors of M words drawn from the noise distribution.
    weights: optional [N] non-negative pair weights, 0 for padding pairs; None weighs
      every pair 1.
    axis_name: mesh axis the pairs are split over; None on a single device.

  Returns:
    The weighted mean over the pairs of the global batch of
    -log sigma(center . context) - sum_m log sigma(-center . negatives[m]); 0 if the
    weights sum to 0.
  """
  if weights is None:
    weights = jnp.ones(center.shape[:1], jnp.float32)
  weights = weights.astype(jnp.float32)
  live = weights != 0
  center = zero_padding(center, live)
  context = zero_padding(context, live)
  negatives = zero_padding(negatives, live)
  positive = jnp.einsum("nd,nd->n", center, context)  # [N]
  negative = jnp.einsum("nd,nmd->nm", center, negatives)  # [N, M]
  # log_sigmoid(x) = -softplus(-x): no overflow for large |x| of either sign.
  per_pair = -jax.nn.log_sigmoid(positive) - jnp.sum(jax.nn.log_sigmoid(-negative), axis=1)
  return global_ratio(jnp.sum(weights * per_pair), jnp.sum(weights), axis_name)
