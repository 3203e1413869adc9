"""Collapse monitors: cheap statistics of a batch of embeddings, logged as metrics."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslax import losses, parallel


def normalized_std(z: jax.Array, axis_name: str | None) -> jax.Array:
  """Mean over dimensions of the global-batch std of l2-normalized z (paper fig. 2):
  about 1/sqrt(dim) for spread-out outputs, 0 when they collapse to one vector."""
  z = jax.lax.stop_gradient(losses.l2_normalize(z))
  mean = parallel.pmean(jnp.mean(z, axis=0), axis_name)
  var = parallel.pmean(jnp.mean((z - mean) ** 2, axis=0), axis_name)
  return jnp.mean(jnp.sqrt(var))
