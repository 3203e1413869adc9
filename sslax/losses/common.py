"""Pieces the loss families share: normalization, cosine similarity, ratios of global sums
and padding that reaches neither the value nor the gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslax import parallel


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  # Same epsilon convention as torch.nn.functional.normalize: x / max(||x||, eps).
  norm = jnp.linalg.norm(x, axis=axis, keepdims=True)
  return x / jnp.maximum(norm, eps)


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
  """Row-wise cosine similarity of [n, dim] arrays -> [n]."""
  return jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def off_diagonal_sum_of_squares(c: jax.Array) -> jax.Array:
  return jnp.sum(c ** 2) - jnp.sum(jnp.diagonal(c) ** 2)


def global_ratio(total: jax.Array, count: jax.Array, axis_name: str | None) -> jax.Array:
  """psum(total) / psum(count) over the devices; 0 (not NaN) when nothing was counted."""
  total = parallel.psum(total, axis_name)
  count = parallel.psum(count, axis_name)
  return total / jnp.where(count > 0, count, 1.0)


def zero_padding(x: jax.Array, keep: jax.Array) -> jax.Array:
  """x [B, T, ...] in float32 with the positions where keep [B, T] is False set to 0."""
  keep = keep.reshape(keep.shape + (1,) * (x.ndim - keep.ndim))
  # where, not a multiply: 0 * inf is NaN, and where's gradient is exactly 0 there.
  return jnp.where(keep, x.astype(jnp.float32), 0.0)


def smooth_l1(diff: jax.Array, beta: float) -> jax.Array:
  """Elementwise smooth L1 (Huber / beta) of a difference: 0.5 d^2 / beta below beta, |d| - 0.5
  beta beyond."""
  return jnp.where(jnp.abs(diff) < beta, 0.5 * diff ** 2 / beta, jnp.abs(diff) - 0.5 * beta)


def regression_error(diff: jax.Array, beta: float) -> jax.Array:
  """Elementwise squared error (beta = 0) or smooth L1 with that beta (> 0) of a difference."""
  return smooth_l1(diff, beta) if beta > 0 else diff ** 2
