"""Reconstruction and regression losses: pixels (denoising, inpainting, colorization), masked
patches (MAE) and masked latent targets (data2vec), each a global-batch mean."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslax import parallel
from sslax.losses.common import regression_error


def weighted_mse(prediction: jax.Array, target: jax.Array, weights: jax.Array,
                 axis_name: str | None = None) -> jax.Array:
  """Weighted mean squared error over the global batch (reconstruction losses):

    sum(w * (prediction - target)^2) / sum(w), both sums over every element of the global
    batch, with the weights w broadcast to prediction's shape.

  Args:
    prediction, target: [local_batch, H, W, C].
    weights: non-negative, broadcastable to prediction (e.g. [local_batch, H, W, 1]): 1 on
      the pixels that count, 0 elsewhere (a masked MSE), or per-region weights. All ones is
      the plain MSE. The global sum of weights must be > 0.
    axis_name: mesh axis the batch is split over; None on a single device.
  """
  weights = jnp.broadcast_to(weights, prediction.shape).astype(jnp.float32)
  error = jnp.square(prediction.astype(jnp.float32) - target.astype(jnp.float32))
  # A ratio of global means is the ratio of global sums (each device holds the same count).
  return parallel.pmean(jnp.sum(weights * error), axis_name) / parallel.pmean(jnp.sum(weights), axis_name)


def masked_patch_mse(pred: jax.Array, target: jax.Array, mask: jax.Array,
                     axis_name: str | None = None) -> jax.Array:
  """Mean over the hidden patches of the global batch of the per-patch mean squared error.
  pred, target [B, N, P]; mask [B, N] (1 = hidden)."""
  per_patch = jnp.mean((pred - target) ** 2, axis=-1)
  return parallel.psum(jnp.sum(per_patch * mask), axis_name) / parallel.psum(jnp.sum(mask), axis_name)


def masked_regression(pred: jax.Array, target: jax.Array, mask: jax.Array, beta: float = 0.0,
                      axis_name: str | None = None) -> jax.Array:
  """Mean over the masked positions of the global batch of the per-position mean over
  features of (pred - target)^2 (beta = 0) or smooth L1 with `beta` (data2vec).
  pred, target [B, N, D]; mask [B, N] (True or 1 = masked)."""
  per_position = jnp.mean(regression_error(pred - target, beta), axis=-1)
  mask = mask.astype(per_position.dtype)
  return parallel.psum(jnp.sum(per_position * mask), axis_name) / parallel.psum(jnp.sum(mask), axis_name)


def mean_regression(prediction: jax.Array, target: jax.Array, beta: float = 0.0,
                    axis_name: str | None = None) -> jax.Array:
  """Mean over every element of the global batch of (prediction - target)^2 (beta = 0) or
  its smooth L1 with `beta` (> 0); prediction, target [local_batch, ...], equal local batches."""
  return parallel.pmean(jnp.mean(regression_error(prediction - target, beta)), axis_name)
