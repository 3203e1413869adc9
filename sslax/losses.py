"""Pure loss functions: arrays in, scalar out.

Every loss takes an optional `axis_name`. Called inside the per-device function
(see sslax/parallel.py) with the mesh's axis name, it returns the value of the
loss on the *global* batch, the same on every device, and its gradients are the
global-batch gradients. Called without it, it is the plain single-device loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslax import parallel


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  # Same epsilon convention as torch.nn.functional.normalize: x / max(||x||, eps).
  norm = jnp.linalg.norm(x, axis=axis, keepdims=True)
  return x / jnp.maximum(norm, eps)


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float = 0.1,
            axis_name: str | None = None) -> jax.Array:
  """NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR (Chen et al. 2020, eq. 1).

  Args:
    z1, z2: [local_batch, dim] projections of two views of the same images; row i
      of z1 and row i of z2 are a positive pair. Normalized here.
    temperature: tau.
    axis_name: mesh axis to gather negatives over; None on a single device.

  Returns:
    The mean over all 2 * global_batch anchors of
    -log( exp(s(i, pos)/tau) / sum_{k != i} exp(s(i, k)/tau) ), where k runs over
    both views of every image of the global batch.
  """
  z1 = l2_normalize(z1.astype(jnp.float32))
  z2 = l2_normalize(z2.astype(jnp.float32))
  local = z1.shape[0]
  # Every device scores its own anchors against the candidates of all devices.
  cand1 = parallel.all_gather(z1, axis_name)  # [global_batch, dim]
  cand2 = parallel.all_gather(z2, axis_name)
  total = cand1.shape[0]
  anchors = jnp.concatenate([z1, z2])  # [2 * local, dim]
  candidates = jnp.concatenate([cand1, cand2])  # [2 * global, dim]
  logits = anchors @ candidates.T / temperature  # [2 * local, 2 * global]

  rows = jnp.arange(local) + parallel.global_offset(local, axis_name)
  self_index = jnp.concatenate([rows, rows + total])
  positive_index = jnp.concatenate([rows + total, rows])
  # An anchor is not its own negative: -inf would give NaN gradients in bf16 paths.
  is_self = jax.nn.one_hot(self_index, 2 * total, dtype=jnp.bool_)
  logits = jnp.where(is_self, -1e9, logits)
  positive = jnp.take_along_axis(logits, positive_index[:, None], axis=1)[:, 0]
  per_anchor = jax.nn.logsumexp(logits, axis=1) - positive
  return parallel.global_mean(per_anchor, axis_name)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array,
                          axis_name: str | None = None) -> jax.Array:
  """Mean cross-entropy over the global batch; logits [n, classes], labels int [n]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))
  per_example = -jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
  return parallel.global_mean(per_example, axis_name)
