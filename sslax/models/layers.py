"""Small layers shared by several models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.custom_jvp
def gelu(x: jax.Array) -> jax.Array:
  """Exact (erf) GELU, as torch.nn.GELU() (ViT, MAE, DINO heads). jax.nn.gelu(approximate=False)
  cannot be differentiated inside shard_map with check_vma=True in jax 0.12 (the erfc
  polynomial's constant coefficients are not marked device-varying), so the derivative,
  Phi(x) + x phi(x), is written out."""
  return x * _normal_cdf(x)


def _normal_cdf(x):
  return 0.5 * (1.0 + jax.lax.erf(x * np.sqrt(0.5).astype(x.dtype)))


@gelu.defjvp
def _gelu_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  cdf = _normal_cdf(x)
  pdf = jnp.exp(-0.5 * x * x) * np.asarray(1.0 / np.sqrt(2.0 * np.pi), x.dtype)
  return x * cdf, (cdf + x * pdf) * t
