"""Frozen-feature evaluation against independent references.

* kNN: a plain NumPy float64 transcription of the Wu et al. 2018 vote, which must
  give exactly the same predictions.
* Linear probe: scikit-learn's LogisticRegression (lbfgs, multinomial, L2) on
  the same standardized features, with C = 1 / (weight_decay * N) (the mapping
  derived in sslax/evaluate/linear_probe.py). Stated tolerances: test accuracy
  within 1.5 points; objective value within 1e-4 (absolute; the objective is a
  mean cross-entropy of order 0.1-1).
* Sanity checks that can fail: linearly separable data -> >= 99% test accuracy;
  random labels -> chance.

All datasets share a few shapes so the jit'ed fits compile only a few times.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sslax.evaluate import fit_logistic_regression, knn_accuracy, knn_classify, linear_probe, stratified_split

ACCURACY_TOL = 0.015  # 1.5 points of top-1.
OBJECTIVE_TOL = 1e-4


def clustered(n: int, dim: int, num_classes: int, *, spread: float, seed: int, raw_scale: bool = False):
  """Gaussian class clusters: returns x float32 [n, dim], y int [n].

  Cluster centres are unit-variance Gaussian vectors; `spread` is the noise
  standard deviation, so it sets how much the classes overlap. `raw_scale`
  gives every feature its own scale (0.1 to 10) and offset (std 10), so that
  skipping or misapplying standardization changes the results.
  """
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim))
  y = rng.integers(0, num_classes, size=n)
  x = centres[y] + spread * rng.normal(size=(n, dim))
  if raw_scale:
    x = x * np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=dim)) + 10.0 * rng.normal(size=dim)
  return x.astype(np.float32), y


# ----------------------------------------------------------------------------
# kNN
# ----------------------------------------------------------------------------


def knn_reference(train_x, train_y, test_x, num_classes, k, temperature):
  """The formula, one test point at a time, in float64."""
  train = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
  test = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
  preds = []
  for query in test.astype(np.float64):
    sims = train.astype(np.float64) @ query
    neighbours = np.argsort(-sims, kind="stable")[:k]
    scores = np.zeros(num_classes)
    for j in neighbours:
      scores[train_y[j]] += np.exp(sims[j] / temperature)
    preds.append(np.argmax(scores))
  return np.array(preds)


@pytest.fixture(scope="module")
def knn_data():
  x, y = clustered(503, 16, 5, spread=1.2, seed=1)
  return x[:400], y[:400], x[400:], y[400:]  # 103 test rows: no chunk size below divides it.


@pytest.mark.parametrize(
    "k, temperature, chunk_size",
    [(1, 0.07, 32), (20, 0.07, 7), (200, 0.07, 50), (50, 0.5, 103), (20, 0.01, 64), (400, 0.1, 1000)],
)
def test_knn_matches_numpy_reference(knn_data, k, temperature, chunk_size):
  train_x, train_y, test_x, test_y = knn_data
  preds = knn_classify(train_x, train_y, test_x, 5, k=k, temperature=temperature, chunk_size=chunk_size)
  expected = knn_reference(train_x, train_y, test_x, 5, k, temperature)
  assert preds.shape == (103,)
  np.testing.assert_array_equal(preds, expected)
  # Not vacuous: the clusters overlap, but kNN is far above the 20% chance.
  assert 0.5 < np.mean(expected == test_y) < 1.0


def test_knn_accuracy_and_chunking(knn_data):
  train_x, train_y, test_x, test_y = knn_data
  by_chunk = [knn_classify(train_x, train_y, test_x, 5, k=20, chunk_size=c) for c in (1, 10, 103, 4096)]
  for preds in by_chunk[1:]:
    np.testing.assert_array_equal(preds, by_chunk[0])
  acc = knn_accuracy(train_x, train_y, test_x, test_y, 5, k=20)
  assert acc == pytest.approx(np.mean(by_chunk[0] == test_y))


# ----------------------------------------------------------------------------
# Stratified split
# ----------------------------------------------------------------------------


def test_stratified_split_is_balanced_and_seeded():
  labels = np.repeat([0, 1, 2, 3], [100, 50, 30, 7])
  labels = np.random.default_rng(0).permutation(labels)
  fit_idx, val_idx = stratified_split(labels, 0.1, seed=3)
  # A partition of range(N).
  np.testing.assert_array_equal(np.sort(np.concatenate([fit_idx, val_idx])), np.arange(labels.size))
  # round(0.1 * n_c) of every class held out; the 7-example class still gets 1.
  np.testing.assert_array_equal(np.bincount(labels[val_idx], minlength=4), [10, 5, 3, 1])
  # Same seed, same split; another seed, another split.
  again = stratified_split(labels, 0.1, seed=3)
  np.testing.assert_array_equal(again[1], val_idx)
  assert not np.array_equal(stratified_split(labels, 0.1, seed=4)[1], val_idx)


# ----------------------------------------------------------------------------
# Logistic regression and the linear probe vs scikit-learn
# ----------------------------------------------------------------------------


def standardized(train_x, test_x):
  mean, std = train_x.mean(0), train_x.std(0)  # Population std, as the probe uses.
  return (train_x - mean) / std, (test_x - mean) / std


def our_objective(coef, intercept, x, y, weight_decay):
  """mean CE + weight_decay / 2 ||coef||^2 in float64; coef [K, D], intercept [K]."""
  logits = x.astype(np.float64) @ coef.T + intercept
  logits -= logits.max(1, keepdims=True)
  log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  return -log_probs[np.arange(len(y)), y].mean() + 0.5 * weight_decay * np.sum(coef**2)


def sklearn_fit(x, y, weight_decay):
  """sklearn's minimizer of C sum CE + 1/2 ||coef||^2 with C = 1 / (weight_decay N)."""
  c = np.inf if weight_decay == 0 else 1.0 / (weight_decay * len(y))
  return LogisticRegression(C=c, tol=1e-8, max_iter=5000).fit(x.astype(np.float64), y)


@pytest.mark.parametrize("weight_decay", [1e-3, 1e-1])
def test_logistic_regression_matches_sklearn(weight_decay):
  x, y = clustered(1000, 20, 4, spread=2.5, seed=2, raw_scale=True)
  train_x, test_x = standardized(x[:600], x[600:])
  train_y, test_y = y[:600], y[600:]
  params, diag = fit_logistic_regression(train_x, train_y, 4, weight_decay, max_iters=500, tol=1e-6)
  sk = sklearn_fit(train_x, train_y, weight_decay)

  sk_objective = our_objective(sk.coef_, sk.intercept_, train_x, train_y, weight_decay)
  ours = our_objective(np.asarray(params["w"]), np.asarray(params["b"]), train_x, train_y, weight_decay)
  assert ours == pytest.approx(sk_objective, abs=OBJECTIVE_TOL)
  assert diag["loss"] == pytest.approx(ours, abs=OBJECTIVE_TOL)  # The reported loss is the objective.
  # A strictly convex problem: the minimizers agree too.
  np.testing.assert_allclose(np.asarray(params["w"]), sk.coef_, atol=2e-2)

  our_acc = np.mean(np.argmax(test_x @ np.asarray(params["w"]).T + np.asarray(params["b"]), 1) == test_y)
  assert abs(our_acc - sk.score(test_x, test_y)) <= ACCURACY_TOL
  assert 0.5 < our_acc < 1.0  # Overlapping classes: neither trivial nor chance.


def test_linear_probe_matches_sklearn_protocol():
  """The whole protocol redone with sklearn: same split, its own standardization and fits."""
  x, y = clustered(1000, 20, 4, spread=2.5, seed=2, raw_scale=True)
  train_x, train_y, test_x, test_y = x[:600], y[:600], x[600:], y[600:]
  # On these noisy clusters shrinkage helps up to a point and 10.0 is far too
  # strong (held-out accuracy ~0.63 vs ~0.78), so a wrong choice shows.
  weight_decays = (0.0, 1e-2, 1e-1, 1.0, 10.0)
  result = linear_probe(train_x, train_y, test_x, test_y, 4, weight_decays=weight_decays)

  # Selection with sklearn on the same held-out split.
  fit_idx, val_idx = stratified_split(train_y, 0.1, seed=0)
  fit_x, val_x = standardized(train_x[fit_idx], train_x[val_idx])
  val_accs = [sklearn_fit(fit_x, train_y[fit_idx], wd).score(val_x, train_y[val_idx]) for wd in weight_decays]
  for wd, acc in zip(weight_decays, val_accs):
    assert result["val_accuracies"][wd] == pytest.approx(acc, abs=ACCURACY_TOL)
  sk_best = weight_decays[int(np.argmax(val_accs))]
  # We chose a maximizer of our held-out accuracies, which is (near-)best for sklearn too.
  assert result["val_accuracy"] == max(result["val_accuracies"].values())
  assert val_accs[weight_decays.index(result["weight_decay"])] >= max(val_accs) - ACCURACY_TOL

  # Final model with sklearn, on the full standardized training set.
  full_x, std_test_x = standardized(train_x, test_x)
  sk = sklearn_fit(full_x, train_y, sk_best)
  assert abs(result["accuracy"] - sk.score(std_test_x, test_y)) <= ACCURACY_TOL
  # Our final fit's objective vs sklearn's at our chosen strength.
  sk_ours = sklearn_fit(full_x, train_y, result["weight_decay"])
  sk_objective = our_objective(sk_ours.coef_, sk_ours.intercept_, full_x, train_y, result["weight_decay"])
  assert result["train_loss"] == pytest.approx(sk_objective, abs=OBJECTIVE_TOL)
  assert result["protocol"] == (
      "linear probe: standardized features, L-BFGS logistic regression, L2 chosen on 10% stratified held-out train")
  assert result["weight_decay"] in weight_decays
  assert result["val_accuracy"] == result["val_accuracies"][result["weight_decay"]]


def test_linear_probe_separable_and_random_labels():
  # Well-separated clusters are linearly separable: near-perfect test accuracy.
  x, y = clustered(1000, 20, 4, spread=0.1, seed=5, raw_scale=True)
  result = linear_probe(x[:600], y[:600], x[600:], y[600:], 4)
  assert result["accuracy"] >= 0.99
  assert result["train_accuracy"] >= 0.99
  # The test set is standardized with the *training* statistics: a test set
  # shifted by 3 training standard deviations per feature is no longer
  # classified well (it would be if it were standardized with its own).
  shifted = x[600:] + 3.0 * x[:600].std(0)
  assert linear_probe(x[:600], y[:600], shifted, y[600:], 4)["accuracy"] < 0.9

  # Random labels carry no signal: test accuracy is chance (0.25, binomial std
  # ~0.02 on 400 points; the bound is ~4 std).
  rng = np.random.default_rng(6)
  x = rng.normal(size=(1000, 20)).astype(np.float32)
  x[:, 0] = 5.0  # A constant feature (std 0) must not produce NaNs.
  y = rng.integers(0, 4, size=1000)
  result = linear_probe(x[:600], y[:600], x[600:], y[600:], 4)
  assert abs(result["accuracy"] - 0.25) < 0.09


def test_out_of_range_labels_are_rejected():
  x = np.ones((8, 3), np.float32)
  with pytest.raises(ValueError, match="train_y"):
    knn_classify(x, np.arange(8) % 4, x, 3)
  with pytest.raises(ValueError, match="test_y"):
    linear_probe(x, np.arange(8) % 2, x, np.full(8, 2), 2)
