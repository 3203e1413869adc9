"""Weights to PyTorch and back (sslax/models/pretrained.py, python -m sslax.export --format=...).

Without torch (CI): every exported key and shape equals tests/data/interop_manifest.json, which
scripts/make_interop_manifest.py read from torchvision and timm themselves; detectron2's names
follow its ResNet's layout; every refusal names its reason. With torch (the interop extra): the
torchvision / timm module loaded with the export computes sslax's features to 1e-4 in float32,
for random weights (benchmarks/interop_equality.py, also the README's table) and a trained run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from sslax import export, train
from sslax.errors import ConfigError
from sslax.models import build_encoder, encoder_config, load_pretrained, pretrained, validate_encoder
from sslax.presets import fashion_mnist_vit
from tests.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(REPO, "tests", "data", "interop_manifest.json")) as f:
  MANIFEST = json.load(f)["models"]


def model_config(entry: dict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({k: tuple(v) if isinstance(v, list) else v
                                    for k, v in entry["config_model"].items()})


def init_variables(model_cfg, input_shape, seed: int = 0) -> dict:
  """Random N(0, 1) arrays of the encoder's variable shapes (nothing compiled)."""
  shapes = jax.eval_shape(lambda: build_encoder(model_cfg).init(
      jax.random.key(0), np.zeros((1, *input_shape), np.float32), train=False))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32),
                      {"params": shapes["params"], "batch_stats": shapes.get("batch_stats", {})})


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_exported_keys_and_shapes_are_torchvisions_and_timms(name):
  entry = MANIFEST[name]
  shapes = pretrained.torch_shapes(model_config(entry), entry["input_shape"])
  expected = {key: tuple(shape) for key, shape in entry["state_dict"].items()}
  assert list(shapes) == list(expected)  # the same keys, in the module's own order
  assert shapes == expected


def test_every_sslax_variable_has_exactly_one_torch_key():
  for model_cfg, shape in ((encoder_config("resnet50"), (32, 32, 3)),
                           (encoder_config("vit", patch_size=4, hidden_dim=16, depth=2, num_heads=2,
                                           posemb="learned"), (8, 8, 1))):
    variables = jax.eval_shape(lambda: build_encoder(model_cfg).init(
        jax.random.key(0), np.zeros((1, *shape), np.float32), train=False))
    variables.setdefault("batch_stats", {})
    leaves = {(c, *(k.key for k in path)) for c in ("params", "batch_stats")
              for path, _ in jax.tree_util.tree_flatten_with_path(variables[c])[0]}
    rows = [(c, *p) for _, c, p, _ in pretrained.table(model_cfg) if c is not None]
    assert sorted(rows) == sorted(leaves) and len(set(rows)) == len(rows)


@pytest.mark.parametrize("model_cfg,shape", [
    (encoder_config("resnet18"), (32, 32, 1)),
    (fashion_mnist_vit(), (28, 28, 1)),
    (encoder_config("vit", patch_size=4, hidden_dim=16, depth=1, num_heads=2, posemb="learned",
                    pool="avg"), (8, 12, 3))])
def test_round_trip_returns_every_array(model_cfg, shape):
  variables = init_variables(model_cfg, shape)
  state_dict, _ = pretrained.to_torch(model_cfg, variables, shape)
  assert all(v.dtype == (np.int64 if k.endswith("num_batches_tracked") else np.float32)
             for k, v in state_dict.items())
  # C order: safetensors.numpy writes an array's memory as it lies.
  assert all(v.flags["C_CONTIGUOUS"] for v in state_dict.values())
  back = pretrained.from_torch(state_dict, model_cfg, shape)
  assert jax.tree.structure(back) == jax.tree.structure(variables)
  jax.tree.map(np.testing.assert_array_equal, back, variables)


def test_a_cls_slot_in_timms_pos_embed_goes_into_the_cls_token():
  cfg = encoder_config("vit", patch_size=4, hidden_dim=8, depth=1, num_heads=2, posemb="learned")
  state_dict, _ = pretrained.to_torch(cfg, init_variables(cfg, (8, 8, 1)), (8, 8, 1))
  state_dict["pos_embed"][0, 0] = 0.5
  back = pretrained.from_torch(state_dict, cfg, (8, 8, 1))
  np.testing.assert_allclose(back["params"]["cls"], state_dict["cls_token"] + 0.5)


def test_the_detectron2_names_are_detectron2s_resnet50():
  state_dict, _ = pretrained.to_torch(encoder_config("resnet50"),
                                      init_variables(encoder_config("resnet50"), (32, 32, 3)), (32, 32, 3))
  checkpoint = export.detectron2_checkpoint(state_dict)
  # detectron2/modeling/backbone/resnet.py: stem.conv1 (+ .norm); resN.i.conv1..3 (+ .norm) and
  # resN.0.shortcut (+ .norm); every norm a (Frozen)BatchNorm with weight, bias and running stats.
  norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
  expected = {"stem.conv1.weight", *(f"stem.conv1.norm.{n}" for n in norm)}
  for stage, blocks in zip(range(2, 6), (3, 4, 6, 3)):
    for i in range(blocks):
      for conv in ("conv1", "conv2", "conv3") + (("shortcut",) if i == 0 else ()):
        expected |= {f"res{stage}.{i}.{conv}.weight", *(f"res{stage}.{i}.{conv}.norm.{n}" for n in norm)}
  assert set(checkpoint["model"]) == expected
  assert checkpoint["matching_heuristics"] is True
  np.testing.assert_array_equal(checkpoint["model"]["res3.0.shortcut.weight"],
                                state_dict["layer2.0.downsample.0.weight"])


@pytest.mark.parametrize("overrides,fmt,names", [
    (dict(name="convnet"), "torchvision", ["'convnet' has no PyTorch twin", "--format=orbax"]),
    (dict(name="resnet18", stem="cifar"), "torchvision", ["stem='cifar'", "ImageNet stem"]),
    (dict(name="resnet50", width_multiplier=2.0), "detectron2", ["width_multiplier=2.0"]),
    (dict(name="vit_small"), "torchvision", ["timm", "--format=timm"]),
    (dict(name="resnet18"), "timm", ["ResNet", "--format=torchvision"]),
    (dict(name="resnet18"), "onnx", ["--format='onnx'", "orbax"]),
])
def test_export_refuses_what_its_twin_would_compute_differently(overrides, fmt, names):
  cfg = encoder_config(overrides.pop("name"), **overrides)
  with pytest.raises(ConfigError) as error:
    export.check_format(cfg, fmt)
  for name in names:
    assert name in str(error.value)


def test_load_pretrained_reports_missing_mismatched_and_extra_keys(tmp_path):
  from safetensors.numpy import save_file

  r18, r50 = encoder_config("resnet18"), encoder_config("resnet50")
  state_dict, _ = pretrained.to_torch(r18, init_variables(r18, (32, 32, 3)), (32, 32, 3))
  with pytest.raises(ConfigError, match=r"lacks \d+ parameter\(s\).*layer1.0.conv3.weight"):
    load_pretrained(state_dict, r50)  # a ResNet-18 checkpoint for a ResNet-50
  r50_dict, _ = pretrained.to_torch(r50, init_variables(r50, (32, 32, 3)), (32, 32, 3))
  with pytest.raises(ConfigError, match=r"layer1.0.conv1.weight has shape \(64, 64, 1, 1\).*\(64, 64, 3, 3\)"):
    load_pretrained(r50_dict, r18)
  with pytest.raises(ConfigError, match=r"conv1.weight has shape \(64, 3, 7, 7\).*\(64, 1, 7, 7\)"):
    load_pretrained(state_dict, r18, (28, 28, 1))  # RGB weights for grayscale images
  logged = []
  extra = dict(state_dict, **{"fc.weight": np.zeros((10, 512), np.float32)})
  variables = load_pretrained(extra, r18, log=logged.append)
  assert "fc.weight" in logged[0] and "ignored" in logged[0]
  np.testing.assert_array_equal(variables["params"]["stem_conv"]["kernel"],
                                state_dict["conv1.weight"].transpose(2, 3, 1, 0))

  path = str(tmp_path / "r18.safetensors")
  save_file(state_dict, path)
  assert load_pretrained(path, r18)["batch_stats"]["stem_bn"]["var"].shape == (64,)
  with open(path, "rb") as f:
    head = f.read(os.path.getsize(path) // 2)
  with open(path, "wb") as f:
    f.write(head)
  with pytest.raises(ConfigError, match="not a readable safetensors file.*truncated"):
    load_pretrained(path, r18)
  (tmp_path / "weights.npz").write_bytes(b"")
  with pytest.raises(ConfigError, match="expected a .safetensors file"):
    load_pretrained(str(tmp_path / "weights.npz"), r18)


def test_fixed_sincos_positions_refuse_learned_ones():
  learned = encoder_config("vit", patch_size=4, hidden_dim=8, depth=1, num_heads=2, posemb="learned")
  state_dict, _ = pretrained.to_torch(learned, init_variables(learned, (8, 8, 1)), (8, 8, 1))
  fixed = encoder_config("vit", patch_size=4, hidden_dim=8, depth=1, num_heads=2)
  with pytest.raises(ConfigError, match="posemb=learned"):
    pretrained.from_torch(state_dict, fixed, (8, 8, 1))


def test_init_from_is_validated(tmp_path):
  with pytest.raises(ConfigError, match="no file"):
    validate_encoder(encoder_config("resnet18", init_from=str(tmp_path / "missing.safetensors")))
  (tmp_path / "w.safetensors").write_bytes(b"")
  with pytest.raises(ConfigError, match="'convnet' cannot read"):
    validate_encoder(encoder_config("convnet", init_from=str(tmp_path / "w.safetensors")))
  validate_encoder(encoder_config("resnet18", init_from=str(tmp_path / "w.safetensors")))


@pytest.fixture(scope="module")
def resnet_run(tiny_fashion_mnist, tmp_path_factory):
  """A 1-step ResNet-18 (ImageNet stem) SimCLR run on tiny Fashion-MNIST, exported as
  torchvision and detectron2 weights."""
  root = tmp_path_factory.mktemp("interop")
  config = tiny_config(tiny_fashion_mnist)
  config.model = encoder_config("resnet18")
  config.total_steps = config.checkpoint_every_steps = 1
  config.batch_size = 8
  config.eval.enabled = False
  workdir = str(root / "run")
  state, model, _ = train.train(config, workdir)
  meta = export.export_encoder(config, workdir, str(root / "torchvision"), "torchvision")
  export.export_encoder(config, workdir, str(root / "detectron2"), "detectron2")
  return config, state, model, meta, root


def test_export_of_a_trained_resnet18(resnet_run):
  from safetensors.numpy import load_file

  config, state, _, meta, root = resnet_run
  out = root / "torchvision"
  assert sorted(os.listdir(out)) == ["config.json", "export.json", "model.safetensors"]  # no temporaries
  state_dict = load_file(str(out / "model.safetensors"))
  entry = MANIFEST["resnet18_fashion_mnist"]
  assert {k: list(v.shape) for k, v in state_dict.items()} == entry["state_dict"]
  assert meta["weights"]["twin"]["constructor"] == "torchvision.models.resnet18"
  assert any("Conv2d(1, 64, 7, 2, 3" in note for note in meta["weights"]["notes"])
  # Read back, the run's own encoder: the pretraining's trained weights, bit for bit.
  variables = load_pretrained(str(out / "model.safetensors"), config)
  encoder = jax.device_get({"params": state.params["encoder"], "batch_stats": state.batch_stats["encoder"]})
  jax.tree.map(np.testing.assert_array_equal, variables, encoder)
  with open(root / "detectron2" / "model.pkl", "rb") as f:
    checkpoint = pickle.load(f)
  np.testing.assert_array_equal(checkpoint["model"]["res5.1.conv2.norm.running_var"],
                                state_dict["layer4.1.bn2.running_var"])
  with pytest.raises(ValueError, match="load_pretrained"):
    export.load_encoder(str(out))


def test_init_from_starts_a_run_from_exported_weights(resnet_run):
  from sslax import assemble

  config, state, _, _, root = resnet_run
  config = config.copy_and_resolve_references()
  config.model.init_from = str(root / "torchvision" / "model.safetensors")
  config.seed = 1  # another random init, which init_from must replace
  run = assemble.build(config, assemble.make_mesh(config))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(run.state.params["encoder"]),
               jax.device_get(state.params["encoder"]))


def test_timm_weights_of_the_cpu_vit(tmp_path):
  from safetensors import safe_open

  entry = MANIFEST["vit_fashion_mnist"]
  cfg, shape = model_config(entry), tuple(entry["input_shape"])
  variables = init_variables(cfg, shape)
  weights = export.write_torch_weights("timm", {c: {"encoder": t} for c, t in variables.items()}, cfg,
                                       shape, {"mean": [0.286], "std": [0.353]}, str(tmp_path))
  assert os.listdir(tmp_path) == ["model.safetensors"] and weights["file"] == "model.safetensors"
  assert weights["twin"]["kwargs"]["in_chans"] == 1 and weights["twin"]["model_name"] is None
  with safe_open(str(tmp_path / "model.safetensors"), "numpy") as f:
    assert {k: list(f.get_slice(k).get_shape()) for k in f.keys()} == entry["state_dict"]
    assert json.loads(f.metadata()["sslax_twin"])["library"] == "timm"
  back = load_pretrained(str(tmp_path / "model.safetensors"), cfg, shape)
  jax.tree.map(np.testing.assert_array_equal, back, {"params": variables["params"], "batch_stats": {}})


def test_a_convnet_run_is_refused_before_its_checkpoint_is_read(tmp_path):
  config = tiny_config(str(tmp_path / "tfds"))
  with pytest.raises(ConfigError, match="'convnet' has no PyTorch twin"):
    export.export_encoder(config, str(tmp_path / "no_run"), str(tmp_path / "out"), "torchvision")
  assert not os.path.exists(tmp_path / "out")


# ---- with torch: the same function ----
# torchvision and timm crash when imported after TensorFlow (which this process has loaded):
# the PyTorch side runs in a subprocess, benchmarks/interop_equality.py (the README's table).

def needs_torch():
  for package in ("torch", "torchvision", "timm"):
    if importlib.util.find_spec(package) is None:
      pytest.skip(f"{package} is not installed (pip install -e '.[interop]')")


def equality_rows(tmp_path, *args) -> list:
  out = str(tmp_path / "rows.json")
  done = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "interop_equality.py"),
                         *args, f"--json={out}"], capture_output=True, text=True, cwd=REPO,
                        env=dict(os.environ, XLA_FLAGS="", PYTHONPATH=REPO))
  assert os.path.exists(out), done.stdout + done.stderr
  with open(out) as f:
    return json.load(f)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vit_small", "vit_base", "vit_fashion_mnist"])
def test_torch_computes_sslax_features(name, tmp_path):
  needs_torch()
  rows = equality_rows(tmp_path, f"--models={name}")
  assert [r[2] for r in rows] == ["sslax -> torch", "sslax -> torch -> sslax", "torch -> sslax"]
  for _, _, direction, diff, scale in rows:
    assert diff <= 1e-4, (direction, diff)
    assert scale > 0.1  # features that are not all near zero


def test_torchvision_computes_the_trained_runs_features(resnet_run, tmp_path):
  needs_torch()
  from sslax.data import augment

  config, state, model, meta, root = resnet_run
  images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32)
  norm = meta["normalization"]
  x = np.asarray(augment.normalize(images, norm["mean"], norm["std"]))
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  features = np.asarray(model.apply(variables, x, train=False, method="encode"))
  np.savez(tmp_path / "features.npz", images=x, features=features)
  [row] = equality_rows(tmp_path, "--models=", f"--export={root / 'torchvision'}",
                        f"--features={tmp_path / 'features.npz'}")
  assert row[2] == "sslax -> torch" and row[3] <= 1e-4, row
