"""Contrastive losses: a positive pair scored against negatives (SimCLR, MoCo v2, MoCo v3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslax import parallel
from sslax.losses.common import l2_normalize


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float = 0.1,
            axis_name: str | None = None, *, per_device_negatives: bool = False) -> jax.Array:
  """NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR (Chen et al. 2020, eq. 1).

  Args:
    z1, z2: [local_batch, dim] projections of two views of the same images; row i
      of z1 and row i of z2 are a positive pair. Normalized here.
    temperature: tau.
    axis_name: mesh axis the batch is split over; None on a single device.
    per_device_negatives: False: the candidates k are both views of every image of the
      global batch (gathered over `axis_name`). True: only those of this device's shard,
      as a data-parallel implementation without the gather; the mean still runs over the
      global batch's anchors, so the gradient is the mean of the per-device losses'.

  Returns:
    The mean over all 2 * global_batch anchors of
    -log( exp(s(i, pos)/tau) / sum_{k != i} exp(s(i, k)/tau) ), where k runs over
    both views of every image of the global batch (or of the anchor's shard).
  """
  z1 = l2_normalize(z1.astype(jnp.float32))
  z2 = l2_normalize(z2.astype(jnp.float32))
  local = z1.shape[0]
  # Every device scores its own anchors against the candidates of all devices (or its own).
  negatives_axis = None if per_device_negatives else axis_name
  cand1 = parallel.all_gather(z1, negatives_axis)  # [global_batch, dim]
  cand2 = parallel.all_gather(z2, negatives_axis)
  total = cand1.shape[0]
  anchors = jnp.concatenate([z1, z2])  # [2 * local, dim]
  candidates = jnp.concatenate([cand1, cand2])  # [2 * global, dim]
  logits = anchors @ candidates.T / temperature  # [2 * local, 2 * global]

  rows = jnp.arange(local) + parallel.global_offset(local, negatives_axis)
  self_index = jnp.concatenate([rows, rows + total])
  positive_index = jnp.concatenate([rows + total, rows])
  # An anchor is not its own negative: -inf would give NaN gradients in bf16 paths.
  is_self = jax.nn.one_hot(self_index, 2 * total, dtype=jnp.bool_)
  logits = jnp.where(is_self, -1e9, logits)
  positive = jnp.take_along_axis(logits, positive_index[:, None], axis=1)[:, 0]
  per_anchor = jax.nn.logsumexp(logits, axis=1) - positive
  return parallel.global_mean(per_anchor, axis_name)


def moco_infonce(q: jax.Array, k: jax.Array, queue: jax.Array, temperature: float = 0.2,
                 axis_name: str | None = None) -> jax.Array:
  """MoCo's InfoNCE with a queue of negatives (He et al. 2020, eq. 1 and Algorithm 1).

  Args:
    q: [local_batch, dim] queries (query encoder), normalized here.
    k: [local_batch, dim] keys of the same images (momentum encoder), normalized
      here; row i is the positive of q[i]. Gradient stopped.
    queue: [queue_size, dim] already normalized keys of earlier batches, the
      negatives. Gradient stopped.
    temperature: tau.
    axis_name: mesh axis for the global-batch mean; None on a single device.

  Returns:
    Mean over the global batch of -log( exp(q.k+/tau) / (exp(q.k+/tau) +
    sum_queue exp(q.k-/tau)) ), i.e. cross-entropy with the positive at index 0.
  """
  q = l2_normalize(q.astype(jnp.float32))
  k = jax.lax.stop_gradient(l2_normalize(k.astype(jnp.float32)))
  queue = jax.lax.stop_gradient(queue.astype(jnp.float32))
  positive = jnp.sum(q * k, axis=1, keepdims=True)  # [B, 1]
  negatives = q @ queue.T  # [B, queue_size]
  logits = jnp.concatenate([positive, negatives], axis=1) / temperature
  per_example = jax.nn.logsumexp(logits, axis=1) - logits[:, 0]
  return parallel.global_mean(per_example, axis_name)


def batch_keys_infonce(q: jax.Array, k: jax.Array, temperature: float,
                       axis_name: str | None = None) -> jax.Array:
  """InfoNCE of each query against the keys of the global batch: the positive of q[i] is
  its own image's key, the negatives the keys of every other image of the global batch
  (MoCo v3's loss without its 2 tau factor; MoCo v2 with queue_size=0).

  Args:
    q: [local_batch, dim] queries, normalized here.
    k: [local_batch, dim] keys (momentum encoder), normalized here; row i is the positive
      of q[i]. Gradient stopped.
    temperature: tau.
    axis_name: mesh axis to gather the keys over; None on a single device.

  Returns:
    Mean over the global batch of cross-entropy(q . k_all / tau, own index).
  """
  q = l2_normalize(q.astype(jnp.float32))
  k = jax.lax.stop_gradient(l2_normalize(k.astype(jnp.float32)))
  keys = parallel.all_gather(k, axis_name)  # [global_batch, dim]
  logits = q @ keys.T / temperature  # [local_batch, global_batch]
  own = jnp.arange(q.shape[0]) + parallel.global_offset(q.shape[0], axis_name)
  per_example = jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, own[:, None], axis=1)[:, 0]
  return parallel.global_mean(per_example, axis_name)


def moco_v3_infonce(q: jax.Array, k: jax.Array, temperature: float = 1.0,
                    axis_name: str | None = None) -> jax.Array:
  """MoCo v3's InfoNCE against the keys of the global batch (Chen, Xie, He 2021, Algorithm 1
  and the official `contrastive_loss`): no queue; the negatives of query i are the keys
  of every other image of the global batch.

  Args:
    q: [local_batch, dim] queries (encoder + projector + predictor), normalized here.
    k: [local_batch, dim] keys of the other view (momentum encoder), normalized here;
      row i is the positive of q[i]. Gradient stopped.
    temperature: tau (the paper: 1.0 for ResNet-50, 0.2 for ViT).
    axis_name: mesh axis to gather the keys over; None on a single device.

  Returns:
    2 * tau * mean over the global batch of cross-entropy(q . k_all / tau, own index);
    the factor 2 tau is the official code's (it makes the gradient scale independent of tau).
  """
  return 2.0 * temperature * batch_keys_infonce(q, k, temperature, axis_name)
