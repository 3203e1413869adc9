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


# ----------------------------------------------------------------------------
# Joint-embedding losses without explicit negatives (BYOL, SimSiam) and with
# redundancy reduction (Barlow Twins, VICReg), plus MoCo, DINO and SwAV pieces.
# ----------------------------------------------------------------------------

def _cosine(a: jax.Array, b: jax.Array) -> jax.Array:
  """Row-wise cosine similarity of [n, dim] arrays -> [n]."""
  return jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def byol_loss(p: jax.Array, z: jax.Array, axis_name: str | None = None) -> jax.Array:
  """BYOL regression loss (Grill et al. 2020, eq. 2).

  Args:
    p: [local_batch, dim] online predictions q_theta(z_theta).
    z: [local_batch, dim] target projections z'_xi of the other view; the
      gradient is stopped here (the target network is not trained by the loss).
    axis_name: mesh axis for the global-batch mean; None on a single device.

  Returns:
    Mean over the global batch of ||p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z). The
    paper symmetrizes by swapping the views; that is the caller's sum of two calls.
  """
  p = p.astype(jnp.float32)
  z = jax.lax.stop_gradient(z.astype(jnp.float32))
  return parallel.global_mean(2.0 - 2.0 * _cosine(p, z), axis_name)


def simsiam_loss(p: jax.Array, z: jax.Array, axis_name: str | None = None) -> jax.Array:
  """SimSiam negative cosine similarity D(p, stopgrad(z)) (Chen & He 2021, eqs. 1 and 3).

  Args:
    p: [local_batch, dim] predictor outputs of one view.
    z: [local_batch, dim] projector outputs of the other view (gradient stopped:
      the stop-gradient is what prevents collapse in SimSiam).
    axis_name: mesh axis for the global-batch mean; None on a single device.

  Returns:
    -mean over the global batch of cos(p, z). The symmetrized loss of the paper
    is 0.5 * (simsiam_loss(p1, z2) + simsiam_loss(p2, z1)).
  """
  p = p.astype(jnp.float32)
  z = jax.lax.stop_gradient(z.astype(jnp.float32))
  return parallel.global_mean(-_cosine(p, z), axis_name)


def _off_diagonal_sum_of_squares(c: jax.Array) -> jax.Array:
  return jnp.sum(c ** 2) - jnp.sum(jnp.diagonal(c) ** 2)


def barlow_twins_loss(z1: jax.Array, z2: jax.Array, lambd: float = 0.0051,
                      axis_name: str | None = None, eps: float = 1e-5) -> jax.Array:
  """Barlow Twins redundancy-reduction loss (Zbontar et al. 2021, eqs. 1-2).

  As the official code: each embedding is standardized per dimension by a
  BatchNorm1d(affine=False) in training mode, synchronized over devices (global
  batch mean and *biased* variance, eps=1e-5), the cross-correlation is
  C = z1n^T z2n / global_batch (the local products are summed over devices), and
  L = sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2.

  Args:
    z1, z2: [local_batch, dim] projector outputs of the two views.
    lambd: weight of the redundancy-reduction (off-diagonal) term.
    axis_name: mesh axis over which the batch is split; None on a single device.
    eps: the BatchNorm epsilon added to the variance.

  Returns:
    The scalar loss of the global batch, identical on every device.
  """
  global_batch = parallel.psum(z1.shape[0], axis_name)  # a static int: local size x devices

  def standardize(z):
    z = z.astype(jnp.float32)
    # Equal local batches, so the mean of the per-device means is the global mean.
    mean = parallel.pmean(jnp.mean(z, axis=0), axis_name)
    var = parallel.pmean(jnp.mean((z - mean) ** 2, axis=0), axis_name)
    return (z - mean) / jnp.sqrt(var + eps)

  z1n, z2n = standardize(z1), standardize(z2)
  # The [dim, dim] matrix is summed over devices, as the official all_reduce(c).
  c = parallel.psum(z1n.T @ z2n, axis_name) / global_batch
  on_diagonal = jnp.sum((1.0 - jnp.diagonal(c)) ** 2)
  return on_diagonal + lambd * _off_diagonal_sum_of_squares(c)


def vicreg_loss(z1: jax.Array, z2: jax.Array, sim_coeff: float = 25.0,
                std_coeff: float = 25.0, cov_coeff: float = 1.0,
                axis_name: str | None = None) -> jax.Array:
  """VICReg: variance-invariance-covariance regularization (Bardes et al. 2022, eqs. 1-6).

  Follows the official code (facebookresearch/vicreg, main_vicreg.py):
    invariance = MSE(z1, z2), mean over the batch and the dimensions;
    variance   = mean_d relu(1 - sqrt(Var(z1_d) + 1e-4)) / 2 + the same for z2;
    covariance = sum_{i != j} Cov(z1)_ij^2 / dim + the same for z2;
    loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance.
  Var and Cov are unbiased (divide by global_batch - 1) over the global batch.

  Args:
    z1, z2: [local_batch, dim] expander outputs of the two views.
    axis_name: mesh axis over which the batch is split; None on a single device.

  Returns:
    The scalar loss of the global batch, identical on every device.
  """
  z1 = z1.astype(jnp.float32)
  z2 = z2.astype(jnp.float32)
  dim = z1.shape[1]
  invariance = parallel.global_mean(jnp.mean((z1 - z2) ** 2, axis=1), axis_name)

  def variance_and_covariance(z):
    # The official code gathers the embeddings of all devices (FullGatherLayer):
    # [global_batch, dim] is smaller than a [dim, dim] all-reduce when dim is large.
    z = parallel.all_gather(z, axis_name)
    n = z.shape[0]
    z = z - jnp.mean(z, axis=0)
    std = jnp.sqrt(jnp.sum(z ** 2, axis=0) / (n - 1) + 1e-4)
    cov = (z.T @ z) / (n - 1)
    terms = jnp.mean(jax.nn.relu(1.0 - std)), _off_diagonal_sum_of_squares(cov) / dim
    # Every device now holds the same values, but shard_map types a gather's output
    # as device-varying. The pmean is numerically the identity; it marks the terms
    # as replicated, and its transpose (1/devices per copy) together with the
    # gather's (a sum over devices) gives each device exactly its rows' gradient.
    return parallel.pmean(terms, axis_name)

  std1, cov1 = variance_and_covariance(z1)
  std2, cov2 = variance_and_covariance(z2)
  variance = std1 / 2 + std2 / 2
  covariance = cov1 + cov2
  return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance


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
  q = l2_normalize(q.astype(jnp.float32))
  k = jax.lax.stop_gradient(l2_normalize(k.astype(jnp.float32)))
  keys = parallel.all_gather(k, axis_name)  # [global_batch, dim]
  logits = q @ keys.T / temperature  # [local_batch, global_batch]
  own = jnp.arange(q.shape[0]) + parallel.global_offset(q.shape[0], axis_name)
  per_example = jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, own[:, None], axis=1)[:, 0]
  return 2.0 * temperature * parallel.global_mean(per_example, axis_name)


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


# ----------------------------------------------------------------------------
# Sequences and tokens: autoregressive and contrastive predictive coding (APC, CPC),
# masked-frame reconstruction (Mockingjay/TERA) and skip-gram negative sampling.
# Padded positions (mask False) are zeroed before any arithmetic, so whatever they
# hold (even inf or NaN) reaches neither the value nor the gradients.
# ----------------------------------------------------------------------------

def _global_ratio(total: jax.Array, count: jax.Array, axis_name: str | None) -> jax.Array:
  """psum(total) / psum(count) over the devices; 0 (not NaN) when nothing was counted."""
  total = parallel.psum(total, axis_name)
  count = parallel.psum(count, axis_name)
  return total / jnp.where(count > 0, count, 1.0)


def _zero_padding(x: jax.Array, keep: jax.Array) -> jax.Array:
  """x [B, T, ...] in float32 with the positions where keep [B, T] is False set to 0."""
  keep = keep.reshape(keep.shape + (1,) * (x.ndim - keep.ndim))
  # where, not a multiply: 0 * inf is NaN, and where's gradient is exactly 0 there.
  return jnp.where(keep, x.astype(jnp.float32), 0.0)


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
  pred = _zero_padding(pred[:, :pairs], valid)
  target = _zero_padding(frames[:, shift:], valid)
  total = jnp.sum(jnp.abs(pred - target))
  count = jnp.sum(valid, dtype=jnp.float32) * features
  return _global_ratio(total, count, axis_name)


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
  preds = _zero_padding(preds, mask)
  z = _zero_padding(z, mask)
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
  return _global_ratio(total, count, axis_name)


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
  error = jnp.abs(_zero_padding(recon, selected) - _zero_padding(frames, selected))
  count = jnp.sum(selected, dtype=jnp.float32) * features
  return _global_ratio(jnp.sum(error), count, axis_name)


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
  center = _zero_padding(center, live)
  context = _zero_padding(context, live)
  negatives = _zero_padding(negatives, live)
  positive = jnp.einsum("nd,nd->n", center, context)  # [N]
  negative = jnp.einsum("nd,nmd->nm", center, negatives)  # [N, M]
  # log_sigmoid(x) = -softplus(-x): no overflow for large |x| of either sign.
  per_pair = -jax.nn.log_sigmoid(positive) - jnp.sum(jax.nn.log_sigmoid(-negative), axis=1)
  return _global_ratio(jnp.sum(weights * per_pair), jnp.sum(weights), axis_name)
