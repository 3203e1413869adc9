"""Representation diagnostics: pure functions of embeddings (NumPy or JAX arrays in, floats out).

They need no labels, so they can run on any batch during pretraining (the trainer logs
them) and on the frozen test-split features after it (sslax/evaluate/protocols.py).

  * `rankme(z)`: effective rank of the embedding matrix (Garrido et al. 2023, "RankMe").
    exp of the entropy of the normalized singular values; D for isotropic embeddings,
    1 when every embedding is a multiple of one vector (dimensional collapse shows as a
    value far below D).
  * `alignment(z1, z2)`, `uniformity(z)`: Wang & Isola 2020, on l2-normalized embeddings.
    Alignment is small when positive pairs land close; uniformity is low (more negative)
    when embeddings spread over the sphere; both are 0 for a complete collapse.
  * `normalized_std(z)`: the mean over dimensions of the std of l2-normalized embeddings
    (SimSiam, Chen & He 2021, fig. 2): about 1/sqrt(D) when the embeddings spread over the
    sphere, 0 when they all point the same way (complete collapse).
  * `summary(z, z2)` gathers them with a "collapsed" flag; `collapse_warning` words it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

RANKME_EPS = 1e-7  # Garrido et al. 2023, eq. 1
# Collapsed when normalized_std < COLLAPSE_THRESHOLD / sqrt(D). Post-ReLU backbone features
# are all non-negative, so even useful ones sit well below 1/sqrt(D) (they share a mean
# direction): a random-init ConvNet measured 0.16 / sqrt(D) on Fashion-MNIST at 256 wide and
# 0.04 at 16 wide, with linear probes far above chance; a collapsed network sits orders of
# magnitude lower (SimSiam fig. 2: ~0).
COLLAPSE_THRESHOLD = 0.01


def _array(z: Any) -> np.ndarray:
  z = np.asarray(z, np.float64)
  if z.ndim != 2:
    raise ValueError(f"embeddings must be [N, D], got shape {z.shape}")
  return z


def _l2_normalize(z: np.ndarray) -> np.ndarray:
  return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def rankme(z: Any, eps: float = RANKME_EPS) -> float:
  """RankMe: z [N, D] -> exp(-sum_k p_k log p_k), p_k = sigma_k / sum(sigma) + eps, in [1, min(N, D)]."""
  sigma = np.linalg.svd(_array(z), compute_uv=False)
  p = sigma / max(sigma.sum(), 1e-300) + eps
  return float(np.exp(-np.sum(p * np.log(p))))


def alignment(z1: Any, z2: Any, alpha: float = 2.0) -> float:
  """z1, z2 [N, D] (row i of each: a positive pair) -> mean ||f1_i - f2_i||^alpha, f = z / ||z||."""
  f1, f2 = _l2_normalize(_array(z1)), _l2_normalize(_array(z2))
  if f1.shape != f2.shape:
    raise ValueError(f"positive pairs need equal shapes, got {f1.shape} and {f2.shape}")
  return float(np.mean(np.linalg.norm(f1 - f2, axis=1) ** alpha))


def uniformity(z: Any, t: float = 2.0, chunk_size: int = 1024) -> float:
  """z [N, D] -> log mean_{i<j} exp(-t ||f_i - f_j||^2), f = z / ||z||; in [-4t, 0].

  All N(N-1)/2 pairs, `chunk_size` rows at a time so memory stays O(chunk_size * N); the
  mean of exponentials is accumulated as a log-sum-exp, as exp(-4t) underflows nothing
  but sums of many small terms lose precision otherwise.
  """
  f = _l2_normalize(_array(z))
  n = f.shape[0]
  if n < 2:
    raise ValueError(f"uniformity needs at least 2 embeddings, got {n}")
  log_sums = []
  for start in range(0, n - 1, chunk_size):
    rows = f[start:start + chunk_size]
    # ||f_i - f_j||^2 = 2 - 2 f_i.f_j for unit vectors; only the pairs j > i.
    sq = np.maximum(2.0 - 2.0 * rows @ f.T, 0.0)
    i = np.arange(start, start + rows.shape[0])[:, None]
    upper = np.arange(n)[None, :] > i
    exponents = -t * sq[upper]
    if exponents.size:
      top = exponents.max()
      log_sums.append(top + np.log(np.sum(np.exp(exponents - top))))
  log_sums = np.asarray(log_sums)
  top = log_sums.max()
  return float(top + np.log(np.sum(np.exp(log_sums - top))) - np.log(n * (n - 1) / 2))


def normalized_std(z: Any) -> float:
  """z [N, D] -> mean over the D dimensions of the (population) std of z / ||z|| over the N rows."""
  return float(np.mean(np.std(_l2_normalize(_array(z)), axis=0)))


def summary(z: Any, z2: Any = None, *, collapse_threshold: float = COLLAPSE_THRESHOLD,
            max_examples: int | None = 10_000) -> dict[str, Any]:
  """Every diagnostic of z [N, D] (and alignment with z2 [N, D], its positive pairs, if given).

  Returns {"rankme", "rankme_max": min(N, D), "uniformity", "normalized_std",
  "normalized_std_spread": 1/sqrt(D), "collapse_threshold", "collapsed": bool, "dim", "examples"}
  (+ "alignment" with z2). Collapsed: normalized_std < collapse_threshold / sqrt(D).
  max_examples: only the first rows enter (uniformity is quadratic in N); None: all.
  """
  z = _array(z)
  if max_examples is not None:
    z = z[:max_examples]
    z2 = None if z2 is None else _array(z2)[:max_examples]
  n, dim = z.shape
  std = normalized_std(z)
  result = {
      "rankme": rankme(z), "rankme_max": int(min(n, dim)),
      "uniformity": uniformity(z), "normalized_std": std,
      "normalized_std_spread": 1.0 / math.sqrt(dim),
      "collapse_threshold": float(collapse_threshold),
      "collapsed": bool(std < collapse_threshold / math.sqrt(dim)),
      "dim": int(dim), "examples": int(n)}
  if z2 is not None:
    result["alignment"] = alignment(z, z2)
  return result


def collapse_warning(result: dict[str, Any]) -> str | None:
  """A message explaining a collapse flagged by `summary`, or None when not collapsed."""
  if not result.get("collapsed"):
    return None
  dim, std = result["dim"], result["normalized_std"]
  return (
      f"the embeddings look collapsed: the std of l2-normalized embeddings is {std:.2e}, "
      f"{std * math.sqrt(dim):.3f} x the 1/sqrt(D) = {1 / math.sqrt(dim):.3f} of embeddings "
      f"spread over the sphere (D = {dim}; flagged below {result['collapse_threshold']} x). "
      "Every input maps to nearly the same direction: the network has (almost) stopped "
      "depending on its input (complete collapse, SimSiam, Chen & He 2021, fig. 2), and what "
      "still tells inputs apart is a tiny fraction of each embedding. Effective rank "
      f"(RankMe): {result['rankme']:.1f} of {result['rankme_max']}. "
      "Check the loss for a trivial minimum (a missing stop-gradient, predictor or "
      "variance term, too high a learning rate or EMA that is too fast).")
