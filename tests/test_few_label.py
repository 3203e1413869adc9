"""Few-label subsets and their probe.

* Balance: per-class counts against the formula written out here (round(f * n_c), at
  least 1; min(k, n_c)), on deliberately unbalanced labels.
* Determinism: the same subset on every call, another one for another seed.
* Saved lists: written, read back, preferred over a fresh draw, and refused (with a
  message saying what to do) when applied to other labels.
* The committed Fashion-MNIST lists: 60 / 600 per class of the real labels (skipped
  when the prepared dataset is absent).
* The probe on a subset against scikit-learn's LogisticRegression on the same examples.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sslax.evaluate import few_label
from sslax.evaluate.few_label import SubsetMismatchError, SubsetSpec


def unbalanced_labels(seed=0):
  counts = [500, 120, 37, 6, 1]
  return np.random.default_rng(seed).permutation(np.repeat(np.arange(5), counts)), counts


@pytest.mark.parametrize("spec, expected", [
    (SubsetSpec(fraction=0.01), lambda n: max(1, int(np.floor(0.01 * n + 0.5)))),
    (SubsetSpec(fraction=0.1), lambda n: max(1, int(np.floor(0.1 * n + 0.5)))),
    (SubsetSpec(per_class=1), lambda n: min(1, n)),
    (SubsetSpec(per_class=3), lambda n: min(3, n)),
])
def test_subset_is_class_balanced(spec, expected):
  labels, counts = unbalanced_labels()
  indices = few_label.balanced_subset(labels, spec, seed=0)
  assert np.all(np.diff(indices) > 0)  # sorted, no duplicates
  np.testing.assert_array_equal(np.bincount(labels[indices], minlength=5), [expected(n) for n in counts])


def test_subset_is_seeded():
  labels, _ = unbalanced_labels()
  spec = SubsetSpec(fraction=0.1)
  first = few_label.balanced_subset(labels, spec, seed=7)
  np.testing.assert_array_equal(few_label.balanced_subset(labels.copy(), spec, seed=7), first)
  assert not np.array_equal(few_label.balanced_subset(labels, spec, seed=8), first)


def test_spec_names():
  assert [s.name for s in (SubsetSpec(fraction=0.01), SubsetSpec(fraction=0.1),
                           SubsetSpec(per_class=3))] == ["1%", "10%", "3 per class"]
  assert SubsetSpec(fraction=0.005).slug == "0.5pct"
  for name in ("1%", "10%", "1 per class", "3 per class"):
    assert SubsetSpec.parse(name).name == name
  with pytest.raises(ValueError):
    SubsetSpec(fraction=0.1, per_class=3)


def test_saved_list_round_trip_and_checks(tmp_path):
  labels, _ = unbalanced_labels()
  spec = SubsetSpec(fraction=0.1)
  # Plant the seed-5 draw under the seed-0 name: get_subset must return the file's indices.
  planted = few_label.balanced_subset(labels, spec, seed=5)
  path = few_label.subset_path("toy", "train", spec, 0, str(tmp_path))
  few_label.save_subset(path, planted, labels, dataset="toy", split="train", spec=spec, seed=0)
  indices, header = few_label.load_subset(path)
  np.testing.assert_array_equal(indices, planted)
  assert header["dataset"] == "toy" and header["split"] == "train" and header["spec"] == "10%"
  assert header["seed"] == "0" and int(header["N"]) == planted.size
  with open(path) as f:
    lines = f.read().splitlines()
  assert all(line.startswith("#") for line in lines[:8])
  assert [int(line) for line in lines[8:]] == planted.tolist()  # one index per line

  got, where = few_label.get_subset(labels, spec, 0, dataset="toy", split="train",
                                    directory=str(tmp_path))
  np.testing.assert_array_equal(got, planted)
  assert where.startswith("saved list")
  drawn, where = few_label.get_subset(labels, spec, 0, dataset="toy", split="train",
                                      saved=False, directory=str(tmp_path))
  assert where.startswith("drawn") and not np.array_equal(drawn, planted)

  # The same labels in another order: the indices would pick other examples.
  with pytest.raises(SubsetMismatchError, match="checksum"):
    few_label.get_subset(labels[::-1], spec, 0, dataset="toy", split="train", directory=str(tmp_path))
  with pytest.raises(SubsetMismatchError, match="few_label_saved_subsets=False"):
    few_label.get_subset(np.roll(labels, 1), spec, 0, dataset="toy", split="train", directory=str(tmp_path))
  # Labels of another size are another split: drawn from them, and said so.
  got, where = few_label.get_subset(labels[:100], spec, 0, dataset="toy", split="train",
                                    directory=str(tmp_path))
  np.testing.assert_array_equal(got, few_label.balanced_subset(labels[:100], spec, 0))
  assert "indexes a split of 664 examples, not these 100" in where
  # A list whose balance is not its spec's.
  few_label.save_subset(path, planted[:-3], labels, dataset="toy", split="train", spec=spec, seed=0)
  with pytest.raises(SubsetMismatchError, match="per class"):
    few_label.get_subset(labels, spec, 0, dataset="toy", split="train", directory=str(tmp_path))


def test_committed_fashion_mnist_lists():
  expected = {"1%": 60, "10%": 600}
  for name, per_class in expected.items():
    path = few_label.subset_path("fashion_mnist", "train", SubsetSpec.parse(name), 0)
    indices, header = few_label.load_subset(path)
    assert header["split_size"] == "60000" and indices.size == 10 * per_class
    assert np.all(np.diff(indices) > 0) and 0 <= indices.min() and indices.max() < 60000
  from sslax.data import pipeline

  try:
    source = pipeline.open_source("fashion_mnist", "train", image_size=28)
  except pipeline.DatasetNotFoundError:
    # The lists' own header, size and range checks above ran; matching them against the real
    # labels needs the prepared TFDS dataset, which `scripts/setup.sh` builds only when run
    # without SSLAX_SKIP_DATA=1 (the test command and CI skip the data on purpose).
    pytest.skip("Fashion-MNIST's TFDS dataset is not prepared here (scripts/test.sh sets "
                "SSLAX_SKIP_DATA=1); the committed lists were checked against the files only")
  for name, per_class in expected.items():
    spec = SubsetSpec.parse(name)
    indices, where = few_label.get_subset(source.labels, spec, 0, dataset="fashion_mnist", split="train")
    assert where == f"saved list sslax/evaluate/subsets/fashion_mnist_train_{spec.slug}_seed0.txt"
    np.testing.assert_array_equal(np.bincount(source.labels[indices]), [per_class] * 10)
    # Computed from these labels: the same as a fresh draw.
    np.testing.assert_array_equal(indices, few_label.balanced_subset(source.labels, spec, 0))


def clustered(n, dim, num_classes, seed):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim))
  y = np.arange(n) % num_classes
  return (centres[y] + 1.5 * rng.normal(size=(n, dim))).astype(np.float32), y


def sklearn_accuracy(train_x, train_y, test_x, test_y, weight_decay, stats_from=None):
  """scikit-learn's fit at C = 1 / (weight_decay n) on features standardized with the
  statistics of `stats_from` (default: the fitted examples)."""
  stats_from = train_x if stats_from is None else stats_from
  mean, std = stats_from.mean(0), stats_from.std(0)
  std = np.where(std > 1e-6, std, 1.0)
  c = 1.0 / (weight_decay * len(train_y)) if weight_decay else np.inf
  model = LogisticRegression(C=c, tol=1e-8, max_iter=5000).fit((train_x - mean) / std, train_y)
  return model.score((test_x - mean) / std, test_y)


@pytest.mark.parametrize("spec", [SubsetSpec(per_class=1), SubsetSpec(fraction=0.2)])
def test_few_label_probe_matches_sklearn(spec, tmp_path):
  x, y = clustered(600, 12, 4, seed=1)
  train_x, train_y, test_x, test_y = x[:400], y[:400], x[400:], y[400:]
  result = few_label.few_label_probe(
      train_x, train_y, test_x, test_y, 4, spec=spec, draws=3, seed=10, dataset="toy",
      split="train", weight_decays=(1e-3, 1e-1), directory=str(tmp_path))
  assert result["draws"] == 3 and result["seeds"] == [10, 11, 12]
  assert result["accuracy"] == pytest.approx(np.mean(result["accuracies"]))
  assert result["std"] == pytest.approx(np.std(result["accuracies"]))
  for seed, accuracy, wd in zip(result["seeds"], result["accuracies"], result["weight_decays"]):
    idx = few_label.balanced_subset(train_y, spec, seed)
    assert len(idx) == (4 if spec.per_class else 80)
    if spec.per_class:  # k per class: scikit-learn's default C = 1, whole-split statistics
      assert wd == pytest.approx(1.0 / len(idx))
      reference = sklearn_accuracy(train_x[idx], train_y[idx], test_x, test_y, wd, stats_from=train_x)
    else:
      reference = sklearn_accuracy(train_x[idx], train_y[idx], test_x, test_y, wd)
    assert abs(accuracy - reference) <= 0.015
  assert 0.3 < result["accuracy"] < 1.0  # better than the 25% chance, not trivially perfect
  assert ("fixed L2" in result["protocol"]) == (spec.per_class is not None)
  assert all(where.startswith("drawn") for where in result["subsets"])


# ----------------------------------------------------------------------------
# config.data.train_subset: pretraining on the few-label evaluation's subset
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["10%", "3 per class"])
def test_pretraining_reads_only_the_few_label_subset(tiny_fashion_mnist, tmp_path, monkeypatch,
                                                      caplog, spec):
  """The trainer's source is the subset the few-label protocol takes for the same spec and
  seed (get_subset as protocols.run_few_label calls it; here drawn, as the tiny split is not
  the one the saved lists index), and every batch it draws holds only those examples."""
  import logging

  from sslax import assemble, train
  from sslax.data import pipeline
  from tests.helpers import tiny_config

  config = tiny_config(tiny_fashion_mnist)
  config.num_devices = 1
  config.total_steps = 1
  config.data.train_subset = spec
  config.eval.few_label_seed = 3
  full = assemble.open_split(config, "train")
  expected, where = few_label.get_subset(full.labels, SubsetSpec.parse(spec), 3,
                                         dataset="fashion_mnist", split="train")
  assert where.startswith("drawn")
  np.testing.assert_array_equal(expected, few_label.balanced_subset(full.labels, SubsetSpec.parse(spec), 3))
  assert not np.array_equal(expected, few_label.balanced_subset(full.labels, SubsetSpec.parse(spec), 0))

  class Opened(Exception):  # stops the trainer once it opens its batches: no step compiled
    pass

  def opened(source, **kwargs):
    raise Opened(source)

  monkeypatch.setattr(pipeline, "host_batches", opened)
  with caplog.at_level(logging.INFO, logger="sslax.assemble"), pytest.raises(Opened) as stop:
    train.train(config, str(tmp_path / "run"))
  monkeypatch.undo()
  assert f"pretraining on data.train_subset {spec!r}: {expected.size} of the 64 examples" in caplog.text
  source = stop.value.args[0]
  assert len(source) == expected.size < 64
  batches = pipeline.host_batches(source, global_batch=16, seed=config.seed)
  try:
    drawn = [next(batches) for _ in range(4)]
  finally:
    batches.close()
  subset_images = {full.images[i].tobytes(): full.labels[i] for i in expected}
  seen = set()
  for batch in drawn:
    for image, label in zip(batch["image"], batch["label"]):
      assert subset_images[image.tobytes()] == label  # a KeyError: an example not in the subset
      seen.add(image.tobytes())
  assert seen == set(subset_images)  # 64 draws cover the whole subset


@pytest.mark.parametrize("value", ["1", "0%", "abc", "1.5 per class"])
def test_train_subset_validation(value):
  from sslax import config as config_lib
  from sslax.errors import ConfigError
  from tests.helpers import tiny_config

  config = tiny_config("")
  config.data.train_subset = "1%"
  config_lib.validate(config)
  config.data.train_subset = value
  with pytest.raises(ConfigError, match=r"config.data.train_subset: .*'1%' or '10%'.*'5 per class'"):
    config_lib.validate(config)


def test_train_subset_restricts_pretraining_only():
  """Fine-tuning and the papers' linear evaluation train on the whole train split."""
  from sslax.evaluate.finetune import finetune_config
  from sslax.evaluate.linear_eval import linear_eval_config
  from tests.helpers import tiny_config

  config = tiny_config("")
  config.data.train_subset = "1%"
  assert finetune_config(config).data.train_subset == ""
  config.linear_eval.recipe = "simclr"
  assert linear_eval_config(config, 640).data.train_subset == ""
  assert config.data.train_subset == "1%"
