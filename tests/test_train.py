"""The training loop end to end on tiny local data: device-count independence,
resume, checkpoint fallback, bad inputs, evaluation output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import jax
import ml_collections
import numpy as np
import pytest

from sslax import assemble, main, train
from sslax import config as config_lib
from sslax import step as step_lib
from sslax.errors import ConfigError
from tests.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def read_losses(workdir) -> dict[int, float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["loss"] for r in map(json.loads, f)}


def params_of(state):
  return jax.tree.map(np.asarray, jax.device_get(state.params))


@pytest.mark.parametrize("optimizer", ["adamw", "lars"])
def test_same_losses_on_1_and_8_devices(data_dir, tmp_path, optimizer):
  runs = {}
  for devices in (1, 8):
    config = tiny_config(data_dir)
    config.num_devices = devices
    config.optimizer.name = optimizer
    workdir = str(tmp_path / f"d{devices}")
    state, _, _ = train.train(config, workdir)
    runs[devices] = (read_losses(workdir), params_of(state))
  losses1, params1 = runs[1]
  losses8, params8 = runs[8]
  assert sorted(losses1) == [1, 2, 3, 4]
  np.testing.assert_allclose([losses8[s] for s in range(1, 5)], [losses1[s] for s in range(1, 5)], rtol=2e-5)
  # The loss moved, so the comparison is not between two untrained states.
  assert losses1[4] != losses1[1]
  # Summation order differs (8 partial sums + all-reduce vs one sum): ~1e-7 relative per
  # step, amplified over 4 steps by Adam's 1/sqrt(v) and LARS's ||w||/||g|| on small leaves.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4), params8, params1)


def test_resume_equals_uninterrupted_run(data_dir, tmp_path):
  config = tiny_config(data_dir)
  straight = str(tmp_path / "straight")
  train.train(config, straight)

  resumed = str(tmp_path / "resumed")
  first = tiny_config(data_dir)
  first.total_steps = 2  # stops after the checkpoint at step 2 (as a preempted run would)
  train.train(first, resumed)
  state, _, _ = train.train(config, resumed)  # picks up at step 2

  want, got = read_losses(straight), read_losses(resumed)
  np.testing.assert_allclose([got[s] for s in (3, 4)], [want[s] for s in (3, 4)], rtol=1e-6)
  assert int(jax.device_get(state.step)) == 4


def test_resume_after_crash_logs_each_step_once(data_dir, tmp_path):
  """A run killed after logging step 3 (checkpoint at 2) resumes at 2; step 3 is not doubled."""
  config = tiny_config(data_dir)
  workdir = str(tmp_path / "run")
  first = tiny_config(data_dir)
  first.total_steps = 3
  first.checkpoint_every_steps = 2
  train.train(first, workdir)
  # Simulate the crash: the checkpoint written at the end (step 3) never happened.
  import shutil
  shutil.rmtree(os.path.join(workdir, "checkpoints", "3"))
  train.train(config, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == [1, 2, 3, 4]


def test_corrupt_latest_checkpoint_falls_back_to_previous(data_dir, tmp_path, caplog):
  config = tiny_config(data_dir)
  workdir = str(tmp_path / "run")
  train.train(config, workdir)
  user_file = os.path.join(workdir, "notes.txt")
  with open(user_file, "w") as f:
    f.write("mine")
  # Truncate every file of the newest checkpoint, as a write cut off mid-way would.
  latest = os.path.join(workdir, "checkpoints", "4")
  for root, _, files in os.walk(latest):
    for name in files:
      open(os.path.join(root, name), "w").close()

  config.total_steps = 6
  with caplog.at_level("WARNING"):
    state, _, _ = train.train(config, workdir)
  assert "could not be restored" in caplog.text
  assert int(jax.device_get(state.step)) == 6
  assert os.path.isdir(os.path.join(workdir, "checkpoints_corrupt", "4")), "set aside, not deleted"
  assert open(user_file).read() == "mine"
  losses = read_losses(workdir)
  assert {5, 6} <= set(losses)


def test_batch_not_divisible_by_devices(data_dir, tmp_path):
  config = tiny_config(data_dir)
  config.batch_size = 12
  with pytest.raises(ValueError, match=r"batch_size \(global\) = 12 is not divisible by the number of devices = 8"):
    train.train(config, str(tmp_path / "run"))


@pytest.mark.parametrize("key, value, expected", [
    ("optimizer.name", "adam", "config.optimizer.name: 'adam' is not one of ['adamw', 'lars', 'sgd']"),
    ("model.name", "vgg", "config.model.name: 'vgg' is not one of"),
    ("model.widths", ("abc",), "config.model.widths: ('abc',) is not a tuple of numbers"),
    ("method.name", "simclr2", "config.method.name: 'simclr2' is not one of"),
    ("batch_size", 0, "config.batch_size: must be a positive integer"),
])
def test_invalid_values_name_key_and_choices(data_dir, key, value, expected):
  config = tiny_config(data_dir)
  section, _, leaf = key.rpartition(".")
  (config[section] if section else config)[leaf] = value
  with pytest.raises(ConfigError) as error:
    config_lib.validate(config)
  assert expected in str(error.value)


def _cli(*args, env=None):
  return subprocess.run([sys.executable, "-m", "sslax.main", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=300, env={**os.environ, **(env or {})})


def test_cli_rejects_unknown_key_and_bad_choice_before_compiling(tmp_path):
  result = _cli("--config=configs/simclr_fashion_mnist.py", f"--workdir={tmp_path}", "--config.batch_sise=64")
  assert result.returncode != 0
  assert "unknown config key 'config.batch_sise'" in result.stderr
  assert "Did you mean config.batch_size?" in result.stderr
  assert "Traceback" not in result.stderr
  result = _cli("--config=configs/simclr_fashion_mnist.py", f"--workdir={tmp_path}", "--config.model.pol=flatten")
  assert "valid keys of config.model: ['blocks_per_stage'" in result.stderr
  result = _cli("--config=configs/simclr_fashion_mnist.py", f"--workdir={tmp_path}", "--config.optimizer.name=adam")
  assert result.returncode != 0
  assert "config.optimizer.name: 'adam' is not one of ['adamw', 'lars', 'sgd']" in result.stderr
  assert not os.path.exists(tmp_path / "checkpoints")


def test_missing_dataset_says_how_to_get_it(tmp_path):
  result = _cli("--config=configs/simclr_fashion_mnist.py", f"--workdir={tmp_path / 'run'}",
                f"--config.data.data_dir={tmp_path / 'empty'}",
                env={"SSLAX_FASHION_MNIST_DIR": str(tmp_path / "nowhere")})
  assert result.returncode != 0
  assert "apt-get install dataset-fashion-mnist" in result.stderr


def test_train_and_evaluate_writes_eval_json(data_dir, tmp_path):
  config = tiny_config(data_dir)
  config.total_steps = 2
  workdir = str(tmp_path / "run")
  results = main.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, "eval.json")) as f:
    saved = json.load(f)
  assert saved["step"] == 2
  for row in ("pretrained", "random_init", "raw_features"):
    accuracy = saved[row]["linear_probe"]["accuracy"]
    assert 0.0 <= accuracy <= 1.0
  assert 0.0 <= saved["pretrained"]["knn"]["accuracy"] <= 1.0
  assert results["pretrained"]["feature_dim"] == saved["pretrained"]["feature_dim"]
  assert os.path.exists(os.path.join(workdir, "metrics.jsonl"))
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir))

  # --mode=evaluate: the newest checkpoint, without training further.
  os.remove(os.path.join(workdir, "eval.json"))
  again = main.evaluate_latest(config, workdir)
  assert again["step"] == 2
  np.testing.assert_allclose(again["pretrained"]["linear_probe"]["accuracy"],
                             saved["pretrained"]["linear_probe"]["accuracy"])


# Frames per example of the sequence datasets, for tracing their configs without the data.
SEQUENCE_FEATURES = {"japanese_vowels": 12, "fashion_mnist_rows": 28, "speech_commands": 40}


def write_tiny_fortunes(folder) -> str:
  """Two topic files of '%'-separated texts, the fortunes package's format."""
  os.makedirs(folder, exist_ok=True)
  for topic, words in (("science", "atoms energy light matter"), ("songs", "love song night heart")):
    texts = [" ".join(np.random.default_rng(i).permutation(words.split())) for i in range(6)]
    with open(os.path.join(folder, topic), "w") as f:
      f.write("\n%\n".join(texts) + "\n%\n")
  return str(folder)


@pytest.mark.parametrize("name", sorted(
    f[:-3] for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith(".py")))
def test_every_config_file_validates_and_builds(name, tmp_path):
  """Each experiment config passes validation and its networks and views trace, without data
  (a text config reads its vocabulary from a tiny stand-in corpus)."""
  import importlib.util
  import types

  import jax.numpy as jnp

  from sslax.data import sequences, text
  from sslax.methods import get_method

  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config_lib.validate(config)
  if config.data.name in sequences.DATASETS + text.DATASETS:
    tokens = config.data.name in text.DATASETS
    if tokens:
      with config.unlocked():
        config.data.path = write_tiny_fortunes(tmp_path / "fortunes")
    length = config.data.max_length
    source = types.SimpleNamespace(
        input_key="tokens" if tokens else "frames", dtype=np.int32 if tokens else np.float32,
        input_shape=(length,) if tokens else (length, SEQUENCE_FEATURES[config.data.name]))
    model = get_method(config.method.name).build(config)
    shapes = jax.eval_shape(lambda: step_lib.init_variables(model, config, source))
    assert shapes["params"] and not config.views and "view" not in config.finetune  # no image fields
    return
  channels = 1 if config.data.name == "fashion_mnist" else 3
  size = config.data.image_size
  model = get_method(config.method.name).build(config)
  shapes = jax.eval_shape(lambda: step_lib.init_variables(model, config, channels))
  assert shapes["params"]
  views = jax.eval_shape(
      step_lib.make_views_fn(config, types.SimpleNamespace(
          input_key="image", full_resolution=False, pixel_mean=(0.5,) * channels,
          pixel_std=(0.25,) * channels)),
      jax.ShapeDtypeStruct((2, size, size, channels), jnp.uint8), jax.ShapeDtypeStruct((2,), jnp.int32))
  from sslax.data.augment import view_size
  assert [v.shape for v in views] == [(2, view_size(v, size), view_size(v, size), channels)
                                      for v in config.views.values()]


def test_dataset_facts_fill_what_zero_leaves_to_the_data_and_refuse_a_wrong_value():
  config = ml_collections.ConfigDict({"data": {"name": "fortunes", "num_classes": 0},
                                      "model": {"name": "sequence_transformer", "vocab_size": 0}})
  source = types.SimpleNamespace(num_classes=43, vocab=["w"] * 5000)
  filled = assemble.with_dataset_facts(config, source)
  assert (filled.data.num_classes, filled.model.vocab_size) == (43, 5000)
  assert config.model.vocab_size == 0  # a copy
  config.model.vocab_size = 4000
  with pytest.raises(ConfigError, match=r"config.model.vocab_size: 4000, but fortunes has 5000"):
    assemble.with_dataset_facts(config, source)
  images = types.SimpleNamespace(num_classes=10)  # no vocabulary: the model is left alone
  assert assemble.with_dataset_facts(ml_collections.ConfigDict(
      {"data": {"name": "fashion_mnist", "num_classes": 0}, "model": {"name": "convnet"}}),
      images).data.num_classes == 10
