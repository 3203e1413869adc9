"""Export of the evaluated encoder (sslax/export.py): after a 2-step tiny training, the
exported encoder, loaded with nothing but the export directory, gives the features of the
training run's own `model.encode` on the run's variables."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from sslax import assemble, export, train
from sslax import config as config_lib
from sslax import step as step_lib
from sslax.data import augment
from tests.helpers import tiny_config, write_tiny_fashion_mnist


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  root = tmp_path_factory.mktemp("export")
  write_tiny_fashion_mnist(str(root / "idx"))
  with pytest.MonkeyPatch.context() as env:
    env.setenv("SSLAX_FASHION_MNIST_DIR", str(root / "idx"))
    config = tiny_config(str(root / "tfds"))
    config.total_steps = 2
    workdir = str(root / "run")
    state, model, _ = train.train(config, workdir)
    meta = export.export_encoder(config, workdir, str(root / "export"))
    images = assemble.open_split(config, "test").get(np.arange(12))["image"]
    yield config, workdir, state, model, meta, str(root / "export"), images


def test_export_json(exported):
  config, workdir, _, _, meta, out, _ = exported
  with open(os.path.join(out, "export.json")) as f:
    assert json.load(f) == meta
  assert meta["method"] == "simclr" and meta["model"]["name"] == "convnet"
  assert meta["model"]["widths"] == [8, 16]
  assert meta["input_shape"] == [28, 28, 1] and meta["feature_dim"] == 16
  assert meta["normalization"]["mean"] == pytest.approx([0.2860]) and meta["normalization"]["std"] == pytest.approx([0.3530])
  assert meta["source"] == {"workdir": os.path.abspath(workdir), "step": 2, "dataset": "fashion_mnist"}
  assert meta["variables"] == "encoder subtree"


def test_loaded_encoder_gives_the_runs_features(exported):
  _, _, state, model, meta, out, images = exported
  module, variables = export.load_encoder(out)
  # Only the encoder: no projector, no optimizer state.
  assert set(variables["params"]) == {"encoder"} and set(variables["batch_stats"]) <= {"encoder"}
  norm = meta["normalization"]
  x = augment.normalize(augment.center_view(images, meta["input_shape"][0]), norm["mean"], norm["std"])
  features = np.asarray(module.apply(variables, x, train=False))
  # Reference: the training run's whole network and variables, through its own encode.
  run_vars = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  expected = np.asarray(model.apply(run_vars, x, train=False, method="encode"))
  assert features.shape == (12, meta["feature_dim"])
  np.testing.assert_allclose(features, expected, rtol=1e-6, atol=1e-6)
  # The run trained: its encoder is not the random initialization's.
  initial = step_lib.init_variables(model, config_lib.with_precision(exported[0]), 1)
  assert not np.allclose(np.asarray(model.apply(initial, x, train=False, method="encode")), expected)


def test_encoder_variables_without_an_encoder_subtree():
  params = {"dense": {"kernel": np.ones((2, 3))}}
  assert export.encoder_variables({"params": params}) == {"params": params, "batch_stats": {}}
  full = {"params": {"encoder": {"k": 1}, "projector": {"k": 2}},
          "batch_stats": {"encoder": {"m": 3}, "projector": {"m": 4}}}
  assert export.encoder_variables(full) == {"params": {"encoder": {"k": 1}},
                                            "batch_stats": {"encoder": {"m": 3}}}
