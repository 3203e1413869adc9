"""Representation diagnostics against formulas written out independently in NumPy/SciPy.

* RankMe from the eigenvalues of Z^T Z (sigma_k = sqrt(lambda_k)) instead of an SVD.
* Uniformity from scipy's pdist over every pair, alignment and normalized std with
  explicit loops.
* Known values: isotropic Gaussian embeddings have RankMe close to D; a rank-one matrix
  has RankMe 1; a collapsed embedding (every row nearly the same) is flagged, a Gaussian
  one is not.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from sslax.evaluate import diagnostics


def gaussian(n, d, seed=0):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def collapsed(n, d, seed=0):
  """Every row the same vector plus noise 1e-4 of its norm."""
  rng = np.random.default_rng(seed)
  v = rng.normal(size=d)
  return (v + 1e-4 * np.linalg.norm(v) * rng.normal(size=(n, d)) / math.sqrt(d)).astype(np.float32)


def unit(z):
  z = np.asarray(z, np.float64)
  return z / np.sqrt(np.sum(z * z, axis=1, keepdims=True))


def rankme_reference(z, eps=1e-7):
  z = np.asarray(z, np.float64)
  eig = np.clip(np.linalg.eigvalsh(z.T @ z), 0, None)[::-1][:min(z.shape)]
  sigma = np.sqrt(eig)
  p = sigma / sigma.sum() + eps
  return math.exp(-sum(pk * math.log(pk) for pk in p))


@pytest.mark.parametrize("shape", [(300, 16), (40, 64)])
def test_rankme_matches_eigenvalue_formula(shape):
  rng = np.random.default_rng(1)
  # Anisotropic: scales spread over two decades, so RankMe is well below min(N, D).
  z = rng.normal(size=shape) * np.logspace(0, -2, shape[1])
  assert diagnostics.rankme(z) == pytest.approx(rankme_reference(z), rel=1e-6)
  assert 1 < diagnostics.rankme(z) < min(shape)


def test_rankme_known_values():
  # 2000 isotropic samples in 8 dimensions: singular values nearly equal, RankMe ~ 8.
  assert diagnostics.rankme(gaussian(2000, 8)) == pytest.approx(8, rel=0.01)
  # Rank one: one non-zero singular value; the eps terms add ~D * eps * log(1/eps).
  rank_one = np.outer(np.arange(1, 51), np.ones(8))
  assert diagnostics.rankme(rank_one) == pytest.approx(1.0, abs=1e-4)


def test_alignment_and_uniformity_match_reference():
  z1 = gaussian(120, 5, seed=2)
  z2 = z1 + 0.3 * gaussian(120, 5, seed=3)
  f1, f2 = unit(z1), unit(z2)
  for alpha in (1.0, 2.0):
    expected = np.mean([np.sum((a - b) ** 2) ** (alpha / 2) for a, b in zip(f1, f2)])
    assert diagnostics.alignment(z1, z2, alpha=alpha) == pytest.approx(expected, rel=1e-9)
  for t in (1.0, 2.0):
    expected = math.log(np.mean(np.exp(-t * pdist(f1, "sqeuclidean"))))
    # chunk_size 7 does not divide 120: the last chunk is partial.
    assert diagnostics.uniformity(z1, t=t, chunk_size=7) == pytest.approx(expected, rel=1e-9)
    assert diagnostics.uniformity(jnp.asarray(z1), t=t) == pytest.approx(expected, rel=1e-6)
  # Identical pairs align perfectly; a collapse is perfectly "non-uniform" (log 1 = 0).
  assert diagnostics.alignment(z1, 3 * z1) == pytest.approx(0.0, abs=1e-12)
  assert diagnostics.uniformity(collapsed(50, 5)) == pytest.approx(0.0, abs=1e-6)


def test_normalized_std_matches_reference():
  z = gaussian(500, 32, seed=4) + 0.5
  f = unit(z)
  per_dim = [math.sqrt(sum((f[i, d] - f[:, d].mean()) ** 2 for i in range(len(f))) / len(f))
             for d in range(f.shape[1])]
  assert diagnostics.normalized_std(z) == pytest.approx(np.mean(per_dim), rel=1e-9)
  # Spread over the sphere: ~1/sqrt(D) (SimSiam fig. 2).
  assert diagnostics.normalized_std(gaussian(4000, 32)) == pytest.approx(1 / math.sqrt(32), rel=0.03)


def test_summary_flags_collapse_and_not_gaussian():
  spread = diagnostics.summary(gaussian(500, 64, seed=5), gaussian(500, 64, seed=6))
  assert not spread["collapsed"]
  assert diagnostics.collapse_warning(spread) is None
  assert spread["dim"] == 64 and spread["examples"] == 500 and spread["rankme_max"] == 64
  assert spread["normalized_std_spread"] == pytest.approx(1 / 8)
  assert spread["alignment"] == pytest.approx(2.0, abs=0.1)  # independent: E||f1-f2||^2 = 2

  flat = diagnostics.summary(jnp.asarray(collapsed(500, 64)))
  assert flat["collapsed"]
  assert "alignment" not in flat
  assert flat["normalized_std"] < 1e-3 / math.sqrt(64)
  message = diagnostics.collapse_warning(flat)
  assert "collapsed" in message and "1/sqrt(D)" in message
  # The threshold is a fraction of 1/sqrt(D): at 1.1 even Gaussian data counts as collapsed.
  assert diagnostics.summary(gaussian(500, 64), collapse_threshold=1.1)["collapsed"]
  # max_examples keeps the first rows.
  assert diagnostics.summary(gaussian(500, 8), max_examples=100)["examples"] == 100


def test_bad_shapes_are_rejected():
  with pytest.raises(ValueError, match=r"\[N, D\]"):
    diagnostics.rankme(np.ones(5))
  with pytest.raises(ValueError, match="equal shapes"):
    diagnostics.alignment(np.ones((4, 3)), np.ones((5, 3)))
