"""Embedding maps (sslax/evaluate/embedding_map.py).

* map_and_cluster on arrays: a readable 800 x 800 PNG; NMI and ARI equal scikit-learn's
  metrics on the same clustering, which is the k-means a plain sklearn call finds on the
  l2-normalized features; known values: separated clusters score 1, labels unrelated to
  the features about 0.
* The CLI's work on a checkpoint: embeddings npz, picture and scores in WORKDIR.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from sslax import assemble
from sslax.evaluate import embedding_map


def blobs(n_per_class, num_classes, dim, spread, seed=0):
  rng = np.random.default_rng(seed)
  centres = 5 * rng.normal(size=(num_classes, dim))
  labels = np.repeat(np.arange(num_classes), n_per_class)
  return (centres[labels] + spread * rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def test_map_and_cluster_scores_and_picture(tmp_path):
  features, labels = blobs(40, 4, 8, spread=3.0)  # overlapping: scores strictly between 0 and 1
  names = ["cat", "dog", "bird", "fish"]
  result = embedding_map.map_and_cluster(features, labels, names, str(tmp_path / "map"), seed=3)
  unit = features / np.linalg.norm(features, axis=1, keepdims=True)
  clusters = KMeans(n_clusters=4, n_init=10, random_state=3).fit_predict(unit.astype(np.float64))
  np.testing.assert_array_equal(result["clusters"], clusters)
  assert result["nmi"] == pytest.approx(normalized_mutual_info_score(labels, clusters), abs=1e-12)
  assert result["ari"] == pytest.approx(adjusted_rand_score(labels, clusters), abs=1e-12)
  assert 0.1 < result["ari"] < 1.0
  with open(tmp_path / "map.json") as f:
    saved = json.load(f)
  assert saved["nmi"] == result["nmi"] and saved["ari"] == result["ari"]
  assert saved["k"] == 4 and saved["examples"] == 160 and saved["map"] == "tsne"
  with Image.open(tmp_path / "map.png") as png:
    png.load()
    assert png.format == "PNG" and png.size == (800, 800)
    # Not blank: the points and legend put many colours on the canvas.
    assert len(png.convert("RGB").getcolors(maxcolors=1 << 20)) > 50


def test_known_scores():
  features, labels = blobs(30, 3, 6, spread=0.01, seed=1)
  clusters = embedding_map.cluster(features, 3)
  scores = embedding_map.cluster_scores(labels, clusters)
  assert scores["nmi"] == pytest.approx(1.0) and scores["ari"] == pytest.approx(1.0)
  shuffled = np.random.default_rng(2).permutation(labels)
  scores = embedding_map.cluster_scores(shuffled, clusters)
  assert scores["nmi"] < 0.15 and abs(scores["ari"]) < 0.1


def test_embedding_map_of_a_checkpoint(tmp_path):
  from sslax import checkpoint
  from tests.helpers import tiny_config, write_tiny_fashion_mnist

  write_tiny_fashion_mnist(str(tmp_path / "idx"))
  with pytest.MonkeyPatch.context() as env:
    env.setenv("SSLAX_FASHION_MNIST_DIR", str(tmp_path / "idx"))
    config = tiny_config(str(tmp_path / "tfds"))
    workdir = str(tmp_path / "run")
    state = assemble.build(config, assemble.make_mesh(config)).state  # a step-0 checkpoint is enough
    saver = checkpoint.Checkpointer(workdir, async_save=False)
    saver.save(0, state)
    saver.close()
    result = embedding_map.embedding_map_run(config, workdir, split="test", max_examples=20)
  with np.load(os.path.join(workdir, "embeddings_test.npz")) as saved:
    assert saved["features"].shape == (20, 16) and saved["labels"].shape == (20,)
    assert list(saved["class_names"][:2]) == ["T-shirt/top", "Trouser"]  # TFDS's label names
  with open(os.path.join(workdir, "embedding_map_test.json")) as f:
    assert json.load(f) == result
  assert result["split"] == "test" and result["step"] == 0 and result["examples"] == 20
  assert 0.0 <= result["nmi"] <= 1.0
  with Image.open(os.path.join(workdir, "embedding_map_test.png")) as png:
    assert png.size == (800, 800)
