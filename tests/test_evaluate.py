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
* SGD probe: with weight decay it must end near scikit-learn's minimizer of the same
  objective (accuracy within 1.5 points, cross-entropy within 0.02).
* The frozen evaluation of a run (frozen.py): eval.json's schema with every protocol; the
  same features and accuracies on 1 and 8 devices; transfer to a mocked CIFAR-10 (RGB to
  luma checked against PIL); sequence and text features against one unsharded
  `encode(x, mask)` call; raw baselines against NumPy (mean frames) and scikit-learn's
  TfidfVectorizer on the ids written as words.

All datasets share a few shapes so the jit'ed fits compile only a few times.
"""

from __future__ import annotations

import json
import os
import re

import jax
import ml_collections
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

from sslax import assemble
from sslax.errors import ConfigError
from sslax.evaluate import fit_logistic_regression, knn_accuracy, knn_classify, linear_probe, stratified_split
from sslax.evaluate.sgd_probe import sgd_probe

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
    "k, temperature, chunk_size, train_chunk_size",
    # Bank chunks that do not divide the 400 rows, smaller and larger than k: each test row's
    # top k is merged across chunks.
    [(1, 0.07, 32, 65536), (20, 0.07, 7, 33), (200, 0.07, 50, 150), (50, 0.5, 103, 7),
     (20, 0.01, 64, 400), (400, 0.1, 1000, 128)],
)
def test_knn_matches_numpy_reference(knn_data, k, temperature, chunk_size, train_chunk_size):
  train_x, train_y, test_x, test_y = knn_data
  preds = knn_classify(train_x, train_y, test_x, 5, k=k, temperature=temperature, chunk_size=chunk_size,
                       train_chunk_size=train_chunk_size)
  expected = knn_reference(train_x, train_y, test_x, 5, k, temperature)
  assert preds.shape == (103,)
  np.testing.assert_array_equal(preds, expected)
  # Not vacuous: the clusters overlap, but kNN is far above the 20% chance.
  assert 0.5 < np.mean(expected == test_y) < 1.0


def test_knn_accuracy_and_chunking(knn_data):
  train_x, train_y, test_x, test_y = knn_data
  by_chunk = [knn_classify(train_x, train_y, test_x, 5, k=20, chunk_size=c, train_chunk_size=t)
              for c, t in ((1, 400), (10, 3), (103, 64), (4096, 1000))]
  for preds in by_chunk[1:]:
    np.testing.assert_array_equal(preds, by_chunk[0])
  acc = knn_accuracy(train_x, train_y, test_x, test_y, 5, k=20)
  assert acc == pytest.approx(np.mean(by_chunk[0] == test_y))
  # scikit-learn's neighbours (cosine distance, brute force) are the ones voting.
  index = NearestNeighbors(n_neighbors=20, metric="cosine", algorithm="brute").fit(train_x)
  _, idx = index.kneighbors(test_x)
  sims = np.sum(test_x[:, None] * train_x[idx], -1) / (
      np.linalg.norm(test_x, axis=1)[:, None] * np.linalg.norm(train_x[idx], axis=-1))
  scores = np.zeros((len(test_x), 5))
  np.add.at(scores, (np.arange(len(test_x))[:, None], train_y[idx]), np.exp(sims / 0.07))
  np.testing.assert_array_equal(by_chunk[1], np.argmax(scores, 1))


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


# ----------------------------------------------------------------------------
# SGD probe vs scikit-learn
# ----------------------------------------------------------------------------


def test_sgd_probe_reaches_sklearns_optimum():
  """With weight decay the objective is strictly convex: SGD with a cosine decay to 0 must
  end near sklearn's minimizer of the same objective (coupled L2 on W, none on b)."""
  x, y = clustered(600, 10, 3, spread=2.0, seed=7, raw_scale=True)
  train_x, train_y, test_x, test_y = x[:400], y[:400], x[400:], y[400:]
  weight_decay = 1e-2
  settings = dict(batch_size=50, epochs=60, base_lr=0.5, weight_decay=weight_decay)
  result = sgd_probe(train_x, train_y, test_x, test_y, 3, settings, seed=1)
  full_x, std_test_x = standardized(train_x, test_x)
  sk = sklearn_fit(full_x, train_y, weight_decay)
  assert abs(result["accuracy"] - sk.score(std_test_x, test_y)) <= ACCURACY_TOL
  # train_loss is the last epoch's mean cross-entropy (without the L2 term).
  ce = our_objective(sk.coef_, sk.intercept_, full_x, train_y, 0.0)
  assert result["train_loss"] == pytest.approx(ce, abs=0.02)
  assert result["settings"]["batch_size"] == 50 and result["settings"]["nesterov"] is True
  assert result["settings"]["momentum"] == 0.9 and result["steps"] == 60 * 8
  assert result["lr"] == pytest.approx(0.5 * 50 / 256)
  assert "Nesterov" in result["protocol"]
  # Same seed, same result; the batch order is the only randomness.
  again = sgd_probe(train_x, train_y, test_x, test_y, 3, settings, seed=1)
  assert again["train_loss"] == result["train_loss"]


# ----------------------------------------------------------------------------
# The frozen evaluation of a run (sslax/evaluate/frozen.py)
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """A tiny SimCLR network at its initialization (evaluation does not care whether it was
  trained) on 64 synthetic Fashion-MNIST-format images: (config, workdir, state, model, mesh)."""
  from tests.helpers import tiny_config, write_tiny_fashion_mnist

  root = tmp_path_factory.mktemp("fmnist")
  write_tiny_fashion_mnist(str(root / "idx"))
  with pytest.MonkeyPatch.context() as env:
    env.setenv("SSLAX_FASHION_MNIST_DIR", str(root / "idx"))
    config = tiny_config(str(root / "tfds"))
    config.num_devices = 1
    mesh = assemble.make_mesh(config)
    built = assemble.build(config, mesh)
    workdir = str(root / "run")
    os.makedirs(workdir)
    yield config, workdir, built.state, built.model, mesh


def test_evaluate_run_writes_every_protocol(tiny_run):
  from sslax.evaluate import frozen, protocols

  config, workdir, state, model, mesh = tiny_run
  config = config.copy_and_resolve_references()
  config.eval.protocols = ("linear_probe", "knn", "sgd_probe", "few_label", "diagnostics")
  config.eval.few_label_per_class = (1,)  # the k-per-class probe path: tests/test_few_label.py
  config.eval.few_label_draws = 2
  config.eval.sgd_probe.epochs = 3
  config.eval.sgd_probe.batch_size = 16
  config.eval.raw_pixel_baseline = False  # in the transfer test: its compiles cost ~15 s
  # What the trainer's online probe logs; the last row must be reported, on its own.
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    f.write(json.dumps({"step": 1, "online_probe/accuracy": 0.25}) + "\n")
    f.write(json.dumps({"step": 2, "loss": 1.0}) + "\n")
    f.write(json.dumps({"step": 2, "online_probe/accuracy": 0.125}) + "\n")
  results = frozen.evaluate_run(config, model, state, mesh, workdir)
  with open(os.path.join(workdir, "eval.json")) as f:
    saved = json.load(f)
  assert saved["step"] == 0 and saved["dataset"] == "fashion_mnist"
  assert (saved["train_split"], saved["test_split"]) == ("train", "test")
  assert "raw_pixels" not in saved and "raw_features" not in saved and "transfer" not in saved
  few_names = ["1%", "10%", "1 per class"]
  for encoder in ("pretrained", "random_init"):
    entry = saved[encoder]
    for protocol in ("linear_probe", "knn", "sgd_probe"):
      assert 0.0 <= entry[protocol]["accuracy"] <= 1.0 and entry[protocol]["protocol"]
      assert "settings" in entry[protocol]
    assert entry["linear_probe"]["protocol"] == protocols.LINEAR_PROBE_PROTOCOL
    assert list(entry["few_label"]) == few_names
    for name in few_names:
      few = entry["few_label"][name]
      assert few["draws"] == 2 and len(few["accuracies"]) == 2
      assert few["accuracy"] == pytest.approx(np.mean(few["accuracies"]))
      assert few["std"] == pytest.approx(np.std(few["accuracies"]))
      # The tiny split is not the 60000-example one the committed 1% list indexes.
      assert few["subsets"][0].startswith("drawn")
    assert entry["few_label"]["1 per class"]["examples"] == [10, 10]
    assert entry["diagnostics"]["examples"] == 32 and "rankme" in entry["diagnostics"]
    assert entry["feature_dim"] == config.model.widths[-1]
  assert saved["online_probe"] == {"accuracy": 0.125, "step": 2, "protocol": frozen.ONLINE_PROBE_PROTOCOL}
  assert results["pretrained"]["knn"]["accuracy"] == saved["pretrained"]["knn"]["accuracy"]

  table = frozen.format_table(saved).splitlines()
  assert table[1].split() == ["encoder", "linear", "probe", "kNN", "SGD", "probe", "few-label", "1%",
                              "few-label", "10%", "few-label", "1", "per", "class", "RankMe"]
  assert table[2].startswith("pretrained") and table[3].startswith("random init")
  pct = lambda e: f"{100 * e['accuracy']:.2f}±{100 * e['std']:.2f}%"  # noqa: E731
  assert pct(saved["random_init"]["few_label"]["10%"]) in table[3]
  assert f"{100 * saved['pretrained']['knn']['accuracy']:.2f}%" in table[2]
  assert "online probe at step 2: 12.50%" in table[-1] and "not comparable" in table[-1]


def test_features_and_accuracies_same_on_1_and_8_devices(tiny_run):
  from sslax import parallel
  from sslax.assemble import open_split
  from sslax.evaluate import features, frozen

  config, _, state, model, _ = tiny_run
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  sources = [open_split(config, s) for s in ("train", "test")]
  results = {}
  for devices in (1, 8):
    mesh = parallel.make_mesh(devices)
    train, test = (features.extract_features(model, variables, s, mesh, image_size=28,
                                             mean=(0.286,), std=(0.353,), batch_size=24)
                   for s in sources)
    results[devices] = train, test, frozen.run_protocols(
        f"{devices} devices", train, test, 10, config, ("linear_probe", "knn", "few_label"),
        dataset="fashion_mnist", train_split="train")
  (train1, test1, r1), (train8, test8, r8) = results[1], results[8]
  assert train1[0].shape == (64, 16) and test1[0].shape == (32, 16)  # 24 does not divide 64
  np.testing.assert_array_equal(train8[1], train1[1])
  np.testing.assert_allclose(train8[0], train1[0], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(test8[0], test1[0], rtol=1e-6, atol=1e-6)
  assert r8["linear_probe"]["accuracy"] == r1["linear_probe"]["accuracy"]
  assert r8["knn"]["accuracy"] == r1["knn"]["accuracy"]
  for name in r1["few_label"]:
    assert r8["few_label"][name]["accuracies"] == r1["few_label"][name]["accuracies"]


def test_transfer_to_mock_cifar10(tiny_run, tmp_path):
  """Pretrained on 28x28 grayscale, evaluated on (mocked) 32x32 RGB CIFAR-10: converted to
  the encoder's one channel and 28 pixels."""
  import tensorflow_datasets as tfds

  from sslax.evaluate import frozen

  config, _, state, model, mesh = tiny_run
  config = config.copy_and_resolve_references()
  config.eval.data.name = "cifar10"
  config.eval.data.download = True  # the mock never "prepares" data
  # kNN: the L-BFGS probe compiles for ~2.5 s per data shape, which the other test covers.
  config.eval.protocols = ("knn",)
  config.eval.random_init_baseline = False
  with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
    results = frozen.evaluate_run(config, model, state, mesh, str(tmp_path))
  assert results["transfer"] == {"pretrained_on": "fashion_mnist", "evaluated_on": "cifar10"}
  assert results["dataset"] == "cifar10" and results["test_split"] == "test"
  assert 0.0 <= results["pretrained"]["knn"]["accuracy"] <= 1.0
  raw = results["raw_features"]  # the evaluated dataset's own pixels, resized (no kNN on them)
  assert set(raw) == {"feature_dim", "seconds", "input"}
  assert raw["feature_dim"] == 28 * 28 * 3 and raw["input"] == "pixels / 255"
  assert frozen.format_table(results).startswith("cifar10 (pretrained on fashion_mnist) test")


def test_convert_channels_matches_pil():
  from PIL import Image

  from sslax.evaluate.features import convert_channels

  rgb = np.random.default_rng(0).integers(0, 256, size=(2, 5, 7, 3), dtype=np.uint8)
  gray = np.asarray(convert_channels(rgb.astype(np.float32) / 255.0, 1))
  pil = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in rgb])[..., None]
  np.testing.assert_allclose(gray * 255.0, pil, atol=0.51)  # PIL rounds to integers
  np.testing.assert_array_equal(np.asarray(convert_channels(gray, 3)), np.repeat(gray, 3, -1))


# ----------------------------------------------------------------------------
# Sequences and text: extract_features through `encode(x, mask)`, raw baselines
# ----------------------------------------------------------------------------


class FakeSequenceSource:
  """A source of padded frames [T, F] or token ids [T] with a mask [T], as the lead's
  sequence and text sources give them."""

  def __init__(self, n, input_key, seed=0):
    rng = np.random.default_rng(seed)
    self.input_key, self.modality, self.num_classes = input_key, "sequence", 3
    lengths = rng.integers(1, 9, size=n)
    self.mask = np.arange(8)[None, :] < lengths[:, None]
    self.labels = rng.integers(0, 3, size=n).astype(np.int32)
    if input_key == "frames":
      self.x = (rng.normal(size=(n, 8, 4)) * self.mask[..., None]).astype(np.float32)
    else:
      self.modality = "text"
      self.x = (rng.integers(1, 30, size=(n, 8)) * self.mask).astype(np.int32)
    self.input_shape = self.x.shape[1:]

  def __len__(self):
    return len(self.labels)

  def get(self, indices):
    return {self.input_key: self.x[indices], "mask": self.mask[indices], "label": self.labels[indices]}


def fake_sequence_model(tokens: bool):
  import flax.linen as nn
  import jax.numpy as jnp

  class Model(nn.Module):
    def setup(self):
      self.embed = nn.Embed(30, 6) if tokens else None
      self.dense = nn.Dense(5)

    def __call__(self, x, mask, train=True):
      return self.encode(x, mask, train)

    def encode(self, x, mask, train=False):
      x = self.embed(x) if tokens else x
      m = mask[..., None].astype(jnp.float32)
      return self.dense(jnp.tanh((x * m).sum(1) / jnp.maximum(m.sum(1), 1.0)))

  return Model()


@pytest.mark.parametrize("input_key", ["frames", "tokens"])
def test_sequence_features_through_encode_with_mask(input_key):
  import jax

  from sslax import parallel
  from sslax.evaluate.features import extract_features

  source = FakeSequenceSource(21, input_key)  # 21: a padded last batch on 8 devices
  model = fake_sequence_model(input_key == "tokens")
  variables = model.init(jax.random.key(0), source.x[:2], source.mask[:2])
  # Reference: one unsharded call on the whole split.
  expected = np.asarray(model.apply(variables, source.x, source.mask, method="encode"))
  for devices in (1, 8):
    features, labels = extract_features(
        model, variables, source, parallel.make_mesh(devices), image_size=0, mean=None, std=None,
        batch_size=16)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, source.labels)


def test_raw_sequence_and_text_baselines():
  from sklearn.feature_extraction.text import TfidfVectorizer

  from sslax.evaluate import baselines

  frames = FakeSequenceSource(30, "frames")
  x, y, description = baselines.raw_inputs(frames, limit=25)
  expected = np.stack([frames.x[i][frames.mask[i]].mean(0) for i in range(25)])
  np.testing.assert_allclose(x, expected, rtol=1e-6)
  np.testing.assert_array_equal(y, frames.labels[:25])
  assert description == "mean of the frames over real positions"

  train, test = FakeSequenceSource(40, "tokens", seed=1), FakeSequenceSource(10, "tokens", seed=2)
  config = ml_collections.ConfigDict(dict(raw_text_max_features=10_000))
  (train_x, _), (test_x, test_y), description = baselines.raw_features(train, test, None, config)
  assert description.startswith("TF-IDF of the token ids")
  # Reference: the ids as words "w<id>" of a text, padding dropped; columns in numeric id order.
  as_text = lambda s: [" ".join(f"w{i}" for i in ids[m]) for ids, m in zip(s.x, s.mask)]  # noqa: E731
  ref = TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True).fit(as_text(train))
  order = np.argsort([int(w[1:]) for w in ref.get_feature_names_out()])
  np.testing.assert_allclose(train_x, ref.transform(as_text(train)).toarray()[:, order], rtol=1e-5)
  np.testing.assert_allclose(test_x, ref.transform(as_text(test)).toarray()[:, order], rtol=1e-5)
  np.testing.assert_array_equal(test_y, test.labels)


# ----------------------------------------------------------------------------
# The protocol registry (sslax/evaluate/protocols.py) and the eval block's validation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, message", [
    ("protocols", ("linear_probe", "linear"), "unknown protocol(s) ['linear']"),
    ("few_label_fractions", (0.01, 1.5), "in (0, 1]"),
    ("few_label_per_class", (0,), "positive integers"),
    ("few_label_draws", 0, "positive integer"),
    ("knn_k", 0, "must be > 0"),
    ("sgd_probe.epochs", 0, "positive integer"),
    ("sgd_probe.momentum", 1.0, "in [0, 1)"),
])
@pytest.mark.parametrize("check", ["config", "evaluate"])
def test_eval_config_validation(key, value, message, check):
  """config.validate and the evaluate package's validate_eval reject the same values."""
  from sslax import config as config_lib
  from sslax.evaluate import validate_eval
  from tests.helpers import tiny_config

  validate = config_lib.validate if check == "config" else validate_eval
  config = tiny_config("")
  validate(config)
  block, _, leaf = f"eval.{key}".rpartition(".")
  parent = config
  for part in block.split("."):
    parent = parent[part]
  parent[leaf] = value
  with pytest.raises(ConfigError, match=f"config.eval.{key}: .*{re.escape(message)}"):
    validate(config)
  config = tiny_config("")
  config.eval.data.name = "cifar10"
  validate(config)
  config.eval.data.image_size = 32
  with pytest.raises(ConfigError, match="config.eval.data.image_size: the encoder takes"):
    validate(config)


def majority_protocol(calls: list):
  """A protocol as a user would add one: accuracy of predicting the most frequent training
  label, with what it was handed recorded in its result; its validate notes each call."""
  from sslax.evaluate.protocols import Protocol

  def run(config, train_x, train_y, test_x, test_y, context):
    guess = np.bincount(train_y, minlength=context.num_classes).argmax()
    return {"accuracy": float(np.mean(test_y == guess)), "protocol": "majority class",
            "shapes": [list(np.shape(train_x)), list(np.shape(test_x))],
            "num_classes": context.num_classes}

  return Protocol("majority", run, summarize=lambda r: f"majority {100 * r['accuracy']:.2f}%",
                  cells=lambda r: {"majority": f"{100 * r['accuracy']:.2f}%"},
                  validate=lambda config: calls.append("validate"), on_raw_inputs=True)


def test_registered_protocol_runs_for_every_encoder(tiny_run, monkeypatch):
  from sslax.assemble import open_split
  from sslax.evaluate import frozen, protocols, validate_eval

  config, workdir, state, model, mesh = tiny_run
  calls = []
  monkeypatch.setitem(protocols.PROTOCOLS, "majority", majority_protocol(calls))
  config = config.copy_and_resolve_references()
  config.eval.protocols = ("majority",)
  validate_eval(config)
  assert calls == ["validate"]
  results = frozen.evaluate_run(config, model, state, mesh, workdir)

  # Reference: the labels of the splits, read straight from the source.
  train_y = open_split(config, "train").get(np.arange(64))["label"]
  test_y = open_split(config, "test").get(np.arange(32))["label"]
  expected = float(np.mean(test_y == np.bincount(train_y, minlength=10).argmax()))
  dim = config.model.widths[-1]
  for encoder, shapes in (("pretrained", [[64, dim], [32, dim]]),
                          ("random_init", [[64, dim], [32, dim]]),
                          ("raw_features", [[64, 28 * 28], [32, 28 * 28]])):
    entry = results[encoder]
    assert set(entry) - {"input"} == {"majority", "feature_dim", "seconds"}
    assert entry["majority"] == {"accuracy": expected, "protocol": "majority class",
                                 "shapes": shapes, "num_classes": 10}
  table = frozen.format_table(results).splitlines()
  assert table[1].split() == ["encoder", "majority"]
  assert table[2].split() == ["pretrained", f"{100 * expected:.2f}%"]


def test_unknown_protocol_lists_the_registered_ones(monkeypatch):
  from sslax.evaluate import protocols, validate_eval
  from tests.helpers import tiny_config

  monkeypatch.setitem(protocols.PROTOCOLS, "majority", majority_protocol([]))
  config = tiny_config("")
  config.eval.protocols = ("knn", "majorty")
  registered = ["linear_probe", "knn", "sgd_probe", "few_label", "diagnostics", "majority"]
  with pytest.raises(ConfigError, match=re.escape(
      f"config.eval.protocols: unknown protocol(s) ['majorty']; choose from {registered}")):
    validate_eval(config)
  with pytest.raises(ValueError, match="already registered"):
    protocols.register(majority_protocol([]))


# ----------------------------------------------------------------------------
# config.eval.heads: the projector's (and predictor's) outputs, f versus g
# ----------------------------------------------------------------------------


def numpy_mlp(params: dict, stats: dict, x: np.ndarray) -> np.ndarray:
  """sslax.models.heads.MLP in inference mode, written out: Dense (-> BN with running
  statistics) -> ReLU per hidden layer, then Dense (-> BN without shift)."""
  hidden = sorted(k for k in params if k.startswith("dense") and k != "dense_out")
  x = np.asarray(x, np.float64)

  def bn(x, name):
    p, s = params[name], stats[name]
    x = (x - np.asarray(s["mean"])) / np.sqrt(np.asarray(s["var"]) + 1e-5) * np.asarray(p["scale"])
    return x + np.asarray(p["bias"]) if "bias" in p else x

  for i in range(1, len(hidden) + 1):
    x = x @ np.asarray(params[f"dense{i}"]["kernel"])
    x = bn(x, f"bn{i}") if f"bn{i}" in params else x + np.asarray(params[f"dense{i}"]["bias"])
    x = np.maximum(x, 0)
  x = x @ np.asarray(params["dense_out"]["kernel"])
  if "bias" in params["dense_out"]:
    x = x + np.asarray(params["dense_out"]["bias"])
  return bn(x, "bn_out") if "bn_out" in params else x


def with_random_running_stats(batch_stats, seed: int = 0):
  """batch_stats with random running means and variances: BN in inference mode then changes
  the features, where batch statistics would give others."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map_with_path(
      lambda path, a: (rng.uniform(0.5, 2.0, a.shape) if path[-1].key == "var"
                       else rng.normal(0, 0.5, a.shape)).astype(np.float32), batch_stats)


def test_projector_features_are_the_projector_on_backbone_features(tiny_run):
  """What the evaluation embeds with eval.heads=("projector",) is the projector MLP, written
  out in NumPy with its running BatchNorm statistics, on the backbone's features."""
  from sslax.evaluate import features, frozen

  config, _, state, model, mesh = tiny_run
  stats = with_random_running_stats(jax.device_get(state.batch_stats))
  variables = {"params": jax.device_get(state.params), "batch_stats": stats}
  source = assemble.open_split(config, "test")
  embed = lambda apply_method: features.extract_features(  # noqa: E731
      model, variables, source, mesh, image_size=28, mean=(0.286,), std=(0.353,), batch_size=16,
      apply_method=apply_method)
  backbone, labels = embed("encode")
  projected, projected_labels = embed(frozen.head_output("projector"))
  np.testing.assert_array_equal(projected_labels, labels)
  expected = numpy_mlp(variables["params"]["projector"], stats["projector"], backbone)
  assert projected.shape == (32, config.method.projector_dim)
  np.testing.assert_allclose(projected, expected, rtol=1e-4, atol=1e-4)


def test_predictor_head_is_the_predictor_on_the_projection():
  """BYOL's network: head "predictor" is q(g(f(x))) and head "projector" g(f(x)), in
  inference mode, against the MLPs written out in NumPy."""
  from sslax.config import base_config
  from sslax.methods import get_method

  method = get_method("byol")
  config = base_config()
  config.method = method.defaults()
  config.model = ml_collections.ConfigDict(dict(name="convnet", widths=(4, 8)))
  config.method.projector_hidden, config.method.projector_dim = (12,), 6
  config.method.predictor_hidden = (10,)
  model = method.build(config)
  x = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype(np.float32)
  variables = jax.device_get(model.init(jax.random.key(0), x, train=False))
  variables["batch_stats"] = with_random_running_stats(variables["batch_stats"])
  f = model.apply(variables, x, method="encode")
  g = numpy_mlp(variables["params"]["projector"], variables["batch_stats"]["projector"], f)
  q = numpy_mlp(variables["params"]["predictor"], variables["batch_stats"]["predictor"], g)
  for which, expected in (("projector", g), ("predictor", q)):
    out = model.apply(variables, x, which, method="head")
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_evaluate_run_writes_the_heads(tiny_run, tmp_path):
  from sslax.evaluate import frozen

  config, _, state, model, mesh = tiny_run
  config = config.copy_and_resolve_references()
  config.eval.protocols = ("linear_probe", "knn", "diagnostics")
  config.eval.heads = ("projector",)
  config.eval.random_init_baseline = config.eval.raw_pixel_baseline = False
  results = frozen.evaluate_run(config, model, state, mesh, str(tmp_path))
  with open(tmp_path / "eval.json") as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(results))
  assert list(saved["heads"]) == ["projector"]
  head = saved["heads"]["projector"]
  assert set(head) == {"linear_probe", "knn", "feature_dim", "seconds"}  # no diagnostics
  assert head["feature_dim"] == config.method.projector_dim
  for protocol in ("linear_probe", "knn"):
    assert set(head[protocol]) == set(saved["pretrained"][protocol])
    assert head[protocol]["settings"] == saved["pretrained"][protocol]["settings"]
  table = frozen.format_table(saved).splitlines()
  assert table[2].startswith("pretrained ") and table[3].startswith("pretrained projector output")


@pytest.mark.parametrize("method, heads, protocols, message", [
    ("simclr", ("projector", "predictor"), ("knn",),
     "method 'simclr' has no head ['predictor']; its heads: ['projector']"),
    ("byol", ("projector", "projector"), ("knn",), "names a head twice"),
    ("simclr", ("projector",), ("few_label",), "linear_probe', 'knn'] only"),
])
def test_eval_heads_validation(method, heads, protocols, message):
  from sslax import config as config_lib
  from sslax.methods import get_method
  from tests.helpers import tiny_config

  config = tiny_config("")
  config.method = get_method(method).defaults()
  config.eval.heads = ("projector",)
  config_lib.validate(config)
  config.eval.heads, config.eval.protocols = heads, protocols
  with pytest.raises(ConfigError, match=f"config.eval.heads: .*{re.escape(message)}"):
    config_lib.validate(config)


def test_every_declared_head_is_one_the_network_has():
  """Method.heads promises `head(x, which)` for each: the network has the submodule."""
  from sslax.config import base_config
  from sslax.methods import available_methods, get_method

  declared = {}
  for name in available_methods():
    method = get_method(name)
    if not method.heads:
      continue
    config = base_config()
    config.method = method.defaults()
    model = method.build(config)
    declared[name] = method.heads
    assert callable(getattr(model, "head", None)), name
    for which in method.heads:
      assert getattr(model, which, None) is not None, (name, which)
  assert declared["byol"] == declared["simsiam"] == ("projector", "predictor")
  assert declared["simclr"] == ("projector",)
