"""Classification losses: softmax cross-entropy over the global batch, with label smoothing,
and over the weighted positions of token sequences."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslax import parallel


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array,
                          axis_name: str | None = None) -> jax.Array:
  """Mean cross-entropy over the global batch; logits [n, classes], labels int [n]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))
  per_example = -jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
  return parallel.global_mean(per_example, axis_name)


def label_smoothed_cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float,
                                 axis_name: str | None = None) -> jax.Array:
  """Global-batch mean of the label-smoothed cross-entropy (Szegedy et al. 2016), the
  cross-entropy with the target (1 - eps) * onehot(y) + eps / C; logits [n, C], labels int [n]."""
  value = softmax_cross_entropy(logits, labels, axis_name)
  if label_smoothing:
    uniform = -jnp.mean(jax.nn.log_softmax(logits.astype(jnp.float32)), axis=-1)
    value = (1.0 - label_smoothing) * value + label_smoothing * parallel.global_mean(uniform, axis_name)
  return value


def token_cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array,
                        axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """logits [..., V], targets [...] int, weights [...] (0 or 1) -> (the mean cross-entropy over
  the weighted positions of the global batch, their accuracy); (0, 0) if there are none."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))
  nll = -jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  count = jnp.maximum(parallel.psum(jnp.sum(weights), axis_name), 1.0)
  return (parallel.psum(jnp.sum(weights * nll), axis_name) / count,
          parallel.psum(jnp.sum(weights * correct), axis_name) / count)
