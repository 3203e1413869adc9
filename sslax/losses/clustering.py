"""Distillation and clustering: DINO's cross-entropy with a centered teacher and its center,
SwAV's Sinkhorn-Knopp codes and swapped prediction."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslax import parallel


def dino_loss(student_logits: jax.Array, teacher_logits: jax.Array, center: jax.Array,
              student_temp: float = 0.1, teacher_temp: float = 0.04,
              axis_name: str | None = None) -> jax.Array:
  """DINO self-distillation cross-entropy (Caron et al. 2021, eq. 1 and Algorithm 1).

  As the official DINOLoss: teacher probabilities are softmax((t - center) /
  teacher_temp) with the gradient stopped; for each teacher view i (the two global
  crops) and each student view v != i, the cross-entropy
  sum_K -P_t log softmax(s / student_temp) is averaged over the batch; the result is
  the mean over those 2 * (n_crops - 1) pairs.

  Args:
    student_logits: [n_crops, local_batch, K]; the two global crops come first.
    teacher_logits: [2, local_batch, K], the teacher's outputs on the global crops.
    center: [K] (or [1, K]) running center of the teacher logits, see
      `dino_center_update`.
    student_temp, teacher_temp: temperatures (the teacher's is usually scheduled by
      the caller).
    axis_name: mesh axis for the global-batch mean; None on a single device.

  Returns:
    The scalar loss of the global batch, identical on every device.
  """
  n_crops = student_logits.shape[0]
  teacher = jax.nn.softmax(
      (teacher_logits.astype(jnp.float32) - center) / teacher_temp, axis=-1)
  teacher = jax.lax.stop_gradient(teacher)  # [2, B, K]
  student = jax.nn.log_softmax(student_logits.astype(jnp.float32) / student_temp, axis=-1)
  # cross_entropy[i, v, b] = -sum_K teacher[i, b] * student[v, b]
  cross_entropy = -jnp.einsum("ibk,vbk->ivb", teacher, student)
  per_pair = parallel.pmean(jnp.mean(cross_entropy, axis=2), axis_name)  # [2, n_crops]
  # A student view is never matched with the teacher's output on the same crop.
  not_same_view = jnp.arange(2)[:, None] != jnp.arange(n_crops)[None, :]
  return jnp.sum(jnp.where(not_same_view, per_pair, 0.0)) / jnp.sum(not_same_view)


def dino_center_update(center: jax.Array, teacher_logits: jax.Array, momentum: float = 0.9,
                       axis_name: str | None = None) -> jax.Array:
  """DINO's center EMA (Caron et al. 2021, eq. 4; official DINOLoss.update_center).

  center <- momentum * center + (1 - momentum) * mean of the teacher logits over both
  global views and the global batch (the official code all-reduces the batch sum).

  Args:
    center: [K] or [1, K].
    teacher_logits: [2, local_batch, K].
    momentum: m.
    axis_name: mesh axis over which the batch is split; None on a single device.

  Returns:
    The new center, same shape as `center`, identical on every device. (No
    stop-gradient: the update is state bookkeeping, never differentiated in training.)
  """
  batch_center = parallel.pmean(jnp.mean(teacher_logits.astype(jnp.float32), axis=(0, 1)), axis_name)
  return momentum * center + (1.0 - momentum) * batch_center.reshape(center.shape)


def sinkhorn_knopp(scores: jax.Array, epsilon: float = 0.05, iterations: int = 3,
                   axis_name: str | None = None) -> jax.Array:
  """SwAV's equipartitioned soft assignments (Caron et al. 2020, eq. 3; official
  `distributed_sinkhorn`).

  Q = exp(scores / epsilon)^T is [K, B_global] (split over devices along B). After
  normalizing its total to 1, each iteration scales the rows (prototypes) to sum to
  1/K and the columns (examples) to sum to 1/B_global; row sums are summed over
  devices, column sums are local. Returns (B_global * Q)^T, whose rows sum to 1.

  Args:
    scores: [local_batch, K] similarities of the (normalized) features to the
      (normalized) prototypes.
    epsilon: entropy regularization.
    iterations: Sinkhorn-Knopp iterations (3 in SwAV).
    axis_name: mesh axis over which the batch is split; None on a single device.

  Returns:
    [local_batch, K] soft codes, gradient stopped.
  """
  scores = jax.lax.stop_gradient(scores.astype(jnp.float32))
  # Subtracting the global maximum scales Q by one constant, which the first
  # normalization removes; it keeps exp() from overflowing (the official code gives
  # inf/NaN once a score exceeds ~88 * epsilon). Scores more than ~87 * epsilon below
  # the maximum still underflow to 0 in float32.
  global_max = jnp.max(parallel.all_gather(jnp.max(scores)[None], axis_name))
  q = jnp.exp((scores - global_max) / epsilon).T  # [K, local_batch]
  num_prototypes = q.shape[0]
  global_batch = parallel.psum(q.shape[1], axis_name)  # a static int: local size x devices

  q = q / parallel.psum(jnp.sum(q), axis_name)
  for _ in range(iterations):
    # Every prototype gets the same total mass 1/K over the global batch...
    q = q / parallel.psum(jnp.sum(q, axis=1, keepdims=True), axis_name)
    q = q / num_prototypes
    # ...and every example the same mass 1/B_global.
    q = q / jnp.sum(q, axis=0, keepdims=True)
    q = q / global_batch
  return (q * global_batch).T


def swapped_prediction(codes: jax.Array, scores: jax.Array, temperature: float = 0.1,
                       axis_name: str | None = None) -> jax.Array:
  """SwAV's swapped prediction loss (Caron et al. 2020, eq. 1 and main_swav.py).

  Args:
    codes: [2, local_batch, K] (or a pair of [local_batch, K]) soft codes of the two global
      crops (e.g. `sinkhorn_knopp`'s).
    scores: [n_crops, local_batch, K] prototype scores of every crop, the 2 global ones first.
    temperature: of the softmax that turns scores into predicted codes.
    axis_name: mesh axis for the global-batch mean; None on a single device.

  Returns:
    1/2 sum_{i in globals} 1/(V-1) sum_{v != i} mean_b -sum_k q_i[b, k] log p_v[b, k], the
    scalar loss of the global batch.
  """
  n_crops = scores.shape[0]
  log_p = jax.nn.log_softmax(scores / temperature, axis=-1)
  value = 0.0
  for i in range(2):
    sub = sum(parallel.global_mean(-jnp.sum(codes[i] * log_p[v], axis=-1), axis_name)
              for v in range(n_crops) if v != i)
    value = value + sub / (n_crops - 1)
  return value / 2
