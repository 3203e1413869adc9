"""Joint-embedding losses without negatives: prediction of a stopped-gradient target (BYOL,
SimSiam) and redundancy reduction on the global batch's statistics (Barlow Twins, VICReg)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sslax import parallel
from sslax.losses.common import cosine, off_diagonal_sum_of_squares


def byol_loss(p: jax.Array, z: jax.Array, axis_name: str | None = None, *,
              stop_gradient: bool = True) -> jax.Array:
  """BYOL regression loss (Grill et al. 2020, eq. 2).

  Args:
    p: [local_batch, dim] online predictions q_theta(z_theta).
    z: [local_batch, dim] target projections z'_xi of the other view; the
      gradient is stopped here (the target network is not trained by the loss).
    axis_name: mesh axis for the global-batch mean; None on a single device.
    stop_gradient: False lets the gradient flow into z too (an ablation; meaningful only
      when z comes from the online network itself, BYOL's tau = 0).

  Returns:
    Mean over the global batch of ||p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z). The
    paper symmetrizes by swapping the views; that is the caller's sum of two calls.
  """
  p = p.astype(jnp.float32)
  z = z.astype(jnp.float32)
  if stop_gradient:
    z = jax.lax.stop_gradient(z)
  return parallel.global_mean(2.0 - 2.0 * cosine(p, z), axis_name)


def simsiam_loss(p: jax.Array, z: jax.Array, axis_name: str | None = None, *,
                 stop_gradient: bool = True) -> jax.Array:
  """SimSiam negative cosine similarity D(p, stopgrad(z)) (Chen & He 2021, eqs. 1 and 3).

  Args:
    p: [local_batch, dim] predictor outputs of one view.
    z: [local_batch, dim] projector outputs of the other view (gradient stopped:
      the stop-gradient is what prevents collapse in SimSiam).
    axis_name: mesh axis for the global-batch mean; None on a single device.
    stop_gradient: False lets the gradient flow into z too (the paper's figure 2
      "w/o stop-grad" ablation, which collapses).

  Returns:
    -mean over the global batch of cos(p, z). The symmetrized loss of the paper
    is 0.5 * (simsiam_loss(p1, z2) + simsiam_loss(p2, z1)).
  """
  p = p.astype(jnp.float32)
  z = z.astype(jnp.float32)
  if stop_gradient:
    z = jax.lax.stop_gradient(z)
  return parallel.global_mean(-cosine(p, z), axis_name)


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
  return on_diagonal + lambd * off_diagonal_sum_of_squares(c)


def vicreg_loss(z1: jax.Array, z2: jax.Array, sim_coeff: float = 25.0,
                std_coeff: float = 25.0, cov_coeff: float = 1.0,
                axis_name: str | None = None, halve_variance: bool = True) -> jax.Array:
  """VICReg: variance-invariance-covariance regularization (Bardes et al. 2022, eqs. 1-6).

  Follows the official code (facebookresearch/vicreg, main_vicreg.py):
    invariance = MSE(z1, z2), mean over the batch and the dimensions;
    variance   = mean_d relu(1 - sqrt(Var(z1_d) + 1e-4)) / 2 + the same for z2
                 (halve_variance=False: without the / 2, as solo-learn's solo/losses/vicreg.py);
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
    terms = jnp.mean(jax.nn.relu(1.0 - std)), off_diagonal_sum_of_squares(cov) / dim
    # Every device now holds the same values, but shard_map types a gather's output
    # as device-varying. The pmean is numerically the identity; it marks the terms
    # as replicated, and its transpose (1/devices per copy) together with the
    # gather's (a sum over devices) gives each device exactly its rows' gradient.
    return parallel.pmean(terms, axis_name)

  std1, cov1 = variance_and_covariance(z1)
  std2, cov2 = variance_and_covariance(z2)
  variance = (std1 + std2) / 2 if halve_variance else std1 + std2
  covariance = cov1 + cov2
  return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
