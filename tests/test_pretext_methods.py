"""The classic pretext tasks (sslax/methods/rotation.py, jigsaw.py, relative_patch.py)
against independent references: rotation labels against np.rot90 and the explicit
index map, the jigsaw permutation set against itertools / pairwise NumPy Hamming
distances, tiles and patches against NumPy slicing at the sampled offsets, the labels
against the neighbour positions; per-key determinism; and, through the trainer on tiny
data, the same losses on 1 and 8 devices, the permutation set in the checkpoint and the
frozen evaluation (linear probe and kNN) of each encoder."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import checkpoint as checkpoint_lib
from sslax import main, parallel, train
from sslax import step as step_lib
from sslax.errors import ConfigError
from sslax.methods import jigsaw, relative_patch, rotation
from sslax.methods.base import StepInputs
from tests.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHOD_NAMES = ("rotation", "jigsaw", "relative_patch")
# The greedy maximin set's minimum pairwise Hamming distance, as jigsaw.py states it.
MIN_HAMMING = {100: 6, 30: 7}


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def full_config(name: str):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "configs", f"{name}_fashion_mnist.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def method_config(name: str, data_dir: str, num_devices: int = 1):
  """tiny_config with the method, view and optimizer of configs/<name>_fashion_mnist.py,
  a tiny encoder and classifier."""
  full = full_config(name)
  config = tiny_config(data_dir)
  config.num_devices = num_devices
  config.method = full.method
  config.method.classifier_hidden = (16,) if name != "rotation" else ()
  config.views = full.views
  config.optimizer = full.optimizer
  config.optimizer.warmup_steps = 1
  config.eval.random_init_baseline = False
  config.eval.raw_pixel_baseline = False
  return config


def keys(n: int, seed: int = 0) -> jax.Array:
  return jax.random.split(jax.random.key(seed), n)


# ----------------------------------------------------------------------------
# Rotation
# ----------------------------------------------------------------------------

def test_rotation_labels_match_the_rotations():
  rng = np.random.default_rng(0)
  images = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
  images[:, 0, 5, :] = 10.0  # a marker in the top-right corner: no image is rotation-symmetric
  rotated, labels = map(np.asarray, rotation.rotate_all(jnp.asarray(images)))
  assert rotated.shape == (12, 6, 6, 2) and labels.dtype == np.int32
  for k in range(4):
    for b in range(3):
      assert labels[k * 3 + b] == k
      np.testing.assert_array_equal(rotated[k * 3 + b], np.rot90(images[b], k))
  # Independently of np.rot90: label 1 is a quarter turn counterclockwise,
  # out[i, j] = in[j, S - 1 - i]; the top-right marker moves to the top-left.
  i, j = np.mgrid[:6, :6]
  np.testing.assert_array_equal(rotated[3:6], images[:, j, 5 - i])
  np.testing.assert_array_equal(rotated[6:9], images[:, 5 - i, 5 - j])
  assert np.all(rotated[3:6, 0, 0] == 10.0) and np.all(rotated[6:9, 5, 0] == 10.0)
  assert np.all(rotated[9:12, 5, 5] == 10.0)


def numpy_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
  logits = logits.astype(np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return float(np.mean(-logp[np.arange(len(labels)), labels]))


def test_rotation_loss_is_cross_entropy_with_the_rotation_labels(data_dir):
  """The loss is NumPy's cross-entropy of the classifier's outputs on the np.rot90 copies
  (rotation k of every image labelled k), all 4B images in one BatchNorm batch."""
  config = method_config("rotation", data_dir)
  model = rotation.build(config)
  variables = step_lib.init_variables(model, config, 1)
  kernel = variables["params"]["classifier"]["dense_out"]["kernel"]
  variables["params"]["classifier"]["dense_out"]["kernel"] = kernel * 30.0  # spread the logits
  images = np.random.default_rng(1).normal(size=(4, 28, 28, 1)).astype(np.float32)
  images[:, :4, :4] += 3.0
  stacked = np.concatenate([np.rot90(images, k, axes=(1, 2)) for k in range(4)])
  labels = np.repeat(np.arange(4), 4)

  def per_device(view):
    inputs = StepInputs(views=[view], labels=jnp.zeros(4, jnp.int32), step=jnp.zeros((), jnp.int32),
                        state={})
    value, aux = rotation.loss(model, variables, inputs, config, parallel.DATA_AXIS)
    logits, _ = model.apply(variables, jnp.asarray(stacked), train=True, mutable=["batch_stats"],
                            method="classify")
    return value, aux.metrics["accuracy"], logits

  value, accuracy, logits = jax.vmap(per_device, axis_name=parallel.DATA_AXIS)(jnp.asarray(images)[None])
  logits = np.asarray(logits[0])
  np.testing.assert_allclose(float(value[0]), numpy_cross_entropy(logits, labels), rtol=1e-5)
  np.testing.assert_allclose(float(accuracy[0]), np.mean(logits.argmax(1) == labels), atol=1e-6)
  assert abs(float(value[0]) - numpy_cross_entropy(logits, np.roll(labels, 4))) > 1e-3


# ----------------------------------------------------------------------------
# Jigsaw: the permutation set
# ----------------------------------------------------------------------------

def pairwise_hamming_min(perms: np.ndarray) -> int:
  return min(sum(a != b for a, b in zip(p, q)) for p, q in itertools.combinations(map(tuple, perms), 2))


@pytest.mark.parametrize("size", [100, 30])
def test_permutation_set_size_uniqueness_and_min_hamming_distance(size):
  perms = jigsaw.permutation_set(size, seed=0)
  assert perms.shape == (size, 9)
  valid = set(itertools.permutations(range(9)))
  assert all(tuple(p) in valid for p in perms)           # each row a permutation of 0..8
  assert len({tuple(p) for p in perms}) == size           # no duplicates
  assert pairwise_hamming_min(perms) == MIN_HAMMING[size]
  # Deterministic: the same (size, seed) gives the same set, another seed another one.
  np.testing.assert_array_equal(jigsaw.permutation_set(size, seed=0), perms)
  assert not np.array_equal(jigsaw.permutation_set(size, seed=1), perms)
  assert pairwise_hamming_min(jigsaw.permutation_set(size, seed=1)) >= MIN_HAMMING[size] - 1


def test_permutation_set_is_greedy_maximin():
  """Each added permutation has the largest minimum distance to those before it, among
  all 9! (checked on a short set against a brute-force argmax over all permutations)."""
  perms = jigsaw.permutation_set(6, seed=3)
  every = np.array(list(itertools.permutations(range(9))))
  for n in range(1, 6):
    best = (every[:, None, :] != perms[None, :n, :]).sum(-1).min(axis=1).max()
    assert (perms[n] != perms[:n]).sum(-1).min() == best


def test_permutation_set_lives_in_the_method_state(data_dir):
  config = method_config("jigsaw", data_dir)
  config.method.num_permutations = 30
  state = jigsaw.init_state(config, {}, None)
  np.testing.assert_array_equal(np.asarray(state["permutations"]), jigsaw.permutation_set(30, 0))


# ----------------------------------------------------------------------------
# Jigsaw: tiles
# ----------------------------------------------------------------------------

def numpy_tile(image, origin, shift, tile):
  """Channel c of a tile: image[y:y+t, x:x+t, c] at clip(origin + shift[c], 0, S - t)."""
  size = image.shape[0]
  out = np.empty((tile, tile, image.shape[-1]), image.dtype)
  for c in range(image.shape[-1]):
    y, x = np.clip(np.asarray(origin) + shift[c], 0, size - tile)
    out[..., c] = image[y:y + tile, x:x + tile, c]
  return out


@pytest.mark.parametrize("channels,channel_jitter", [(1, 2), (3, 0), (3, 2)])
def test_jigsaw_tiles_stay_in_their_cells_and_labels_index_the_permutation(channels, channel_jitter):
  size, tile, n = 30, 8, 64
  perms = jigsaw.permutation_set(30, 0)
  images = np.random.default_rng(2).normal(size=(n, size, size, channels)).astype(np.float32)
  fn = jax.jit(jax.vmap(lambda k, im: jigsaw.jigsaw_puzzle(k, im, jnp.asarray(perms), tile, channel_jitter)))
  tiles, labels, origins, shifts = map(np.asarray, fn(keys(n), jnp.asarray(images)))
  assert tiles.shape == (n, 9, tile, tile, channels)
  assert labels.min() >= 0 and labels.max() < 30 and len(set(labels)) > 10
  cell = size // 3
  for b in range(n):
    for g in range(9):
      r, c = divmod(g, 3)
      y, x = origins[b, g]
      assert r * cell <= y and y + tile <= (r + 1) * cell, (b, g, y)
      assert c * cell <= x and x + tile <= (c + 1) * cell, (b, g, x)
    if channels == 1 or channel_jitter == 0:
      assert not shifts[b].any()
    else:
      assert np.abs(shifts[b]).max() <= channel_jitter
    for i, g in enumerate(perms[labels[b]]):  # slot i holds the tile of grid cell p[i]
      np.testing.assert_array_equal(tiles[b, i], numpy_tile(images[b], origins[b, g], shifts[b, g], tile))
  offsets = origins - np.array([(r * cell, c * cell) for r in range(3) for c in range(3)])
  assert set(np.unique(offsets)) == {0, 1, 2}  # every offset inside the cell is drawn
  if channels == 3 and channel_jitter:
    assert set(np.unique(shifts)) == set(range(-channel_jitter, channel_jitter + 1))


def test_jigsaw_tile_standardization():
  x = np.random.default_rng(3).normal(2.0, 3.0, size=(2, 9, 8, 8, 3)).astype(np.float32)
  x[0, 0] = 5.0  # a blank tile becomes 0
  out = np.asarray(jigsaw.standardize(jnp.asarray(x), 1e-2))
  np.testing.assert_allclose(out.mean(axis=(2, 3)), 0.0, atol=1e-5)
  want = (x - x.mean(axis=(2, 3), keepdims=True)) / np.sqrt(x.var(axis=(2, 3), keepdims=True) + 1e-2)
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
  assert not out[0, 0].any()


# ----------------------------------------------------------------------------
# Relative patch position
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("size,patch,gap,jitter", [(32, 8, 2, 1), (20, 4, 2, 2), (30, 8, 3, 0)])
def test_patches_stay_inside_and_labels_match_the_neighbour(size, patch, gap, jitter):
  n = 512
  images = np.random.default_rng(4).normal(size=(n, size, size, 1)).astype(np.float32)
  fn = jax.jit(jax.vmap(lambda k, im: relative_patch.sample_pair(k, im, patch, gap, jitter)))
  patches, labels, origins = map(np.asarray, fn(keys(n, 1), jnp.asarray(images)))
  assert patches.shape == (n, 2, patch, patch, 1)
  assert origins.min() >= 0 and origins.max() + patch <= size
  assert set(labels) == set(range(8))
  # The 8 neighbours, row-major around the centre (Doersch et al. fig. 2), independently:
  directions = {0: (-1, -1), 1: (-1, 0), 2: (-1, 1), 3: (0, -1), 4: (0, 1), 5: (1, -1), 6: (1, 0),
                7: (1, 1)}
  for b in range(n):
    for p in range(2):
      y, x = origins[b, p]
      np.testing.assert_array_equal(patches[b, p], images[b, y:y + patch, x:x + patch])
    step = np.asarray(directions[int(labels[b])]) * (patch + gap)
    delta = origins[b, 1] - origins[b, 0] - step
    assert np.abs(delta).max() <= 2 * jitter, (b, labels[b], origins[b])
  # The centre patch is the grid's middle cell: its corner minus the cell offset lies in
  # [jitter - jitter, S - span - jitter + jitter] = [0, S - span].
  span = 3 * patch + 2 * gap
  corner = origins[:, 0] - (patch + gap)
  assert corner.min() >= 0 and corner.max() <= size - span
  if jitter:
    assert len(np.unique(origins[:, 1] - origins[:, 0] - np.array(
        [np.asarray(directions[int(l)]) * (patch + gap) for l in labels]))) == 4 * jitter + 1


def test_patch_geometry_must_fit_the_view(data_dir):
  config = method_config("relative_patch", data_dir)
  config.method.patch_gap = 4  # 3 * 8 + 2 * 4 + 2 = 34 > 32
  with pytest.raises(ConfigError, match="patch_size"):
    relative_patch.validate(config)
  config = method_config("jigsaw", data_dir)
  config.method.tile_size = 11  # cells of 30 // 3 = 10
  with pytest.raises(ConfigError, match="tile_size"):
    jigsaw.validate(config)


def test_chroma_guard():
  rng = np.random.default_rng(5)
  rgb = jnp.asarray(rng.normal(size=(8, 8, 3)).astype(np.float32))
  gray = jnp.asarray(rng.normal(size=(8, 8, 1)).astype(np.float32))
  for mode in relative_patch.CHROMA_GUARDS:  # one channel: no chromatic aberration, identity
    np.testing.assert_array_equal(relative_patch.chroma_guard(jax.random.key(0), gray, mode), gray)
  np.testing.assert_array_equal(relative_patch.chroma_guard(jax.random.key(0), rgb, "none"), rgb)
  # Projection: I - a a^T / a^T a with a = (-1, 2, -1): nothing left along a, the rest kept.
  a = np.array([-1.0, 2.0, -1.0])
  projected = np.asarray(relative_patch.chroma_guard(jax.random.key(0), rgb, "project"))
  np.testing.assert_allclose(projected @ a, 0.0, atol=1e-5)
  np.testing.assert_allclose(projected, np.asarray(rgb) @ (np.eye(3) - np.outer(a, a) / 6.0), atol=1e-5)
  # Dropping: one channel kept as is, the two others small noise; which one depends on the key.
  kept = set()
  for seed in range(12):
    out = np.asarray(relative_patch.chroma_guard(jax.random.key(seed), rgb, "drop"))
    same = [c for c in range(3) if np.array_equal(out[..., c], np.asarray(rgb)[..., c])]
    assert len(same) == 1
    kept.add(same[0])
    for c in set(range(3)) - set(same):
      assert 0 < out[..., c].std() < 0.02 * np.asarray(rgb)[..., same[0]].std()
  assert kept == {0, 1, 2}


# ----------------------------------------------------------------------------
# Per-key determinism
# ----------------------------------------------------------------------------

def sample(name: str, key, image):
  if name == "jigsaw":
    perms = jnp.asarray(jigsaw.permutation_set(30, 0))
    return jigsaw.jigsaw_puzzle(key, image, perms, 8, channel_jitter=2)
  cfg = relative_patch.defaults()
  cfg.patch_size, cfg.patch_gap, cfg.patch_jitter = 8, 2, 1
  return relative_patch.example_parts(key, image, cfg)


@pytest.mark.parametrize("name", ["jigsaw", "relative_patch"])
def test_parts_are_a_function_of_the_example_key_alone(name):
  """Same key: the same tiles / patches and label, alone or inside any batch (as on any
  device); other keys: other draws."""
  images = jnp.asarray(np.random.default_rng(6).normal(size=(6, 32, 32, 3)).astype(np.float32))
  ks = keys(6, 7)
  batched = jax.jit(jax.vmap(lambda k, im: sample(name, k, im)))
  whole = jax.tree.map(np.asarray, batched(ks, images))
  again = jax.tree.map(np.asarray, batched(ks, images))
  jax.tree.map(np.testing.assert_array_equal, whole, again)
  half = jax.tree.map(np.asarray, batched(ks[3:], images[3:]))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[3:], b), whole, half)
  single = jax.tree.map(np.asarray, sample(name, ks[4], images[4]))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a[4], b, rtol=1e-6, atol=1e-6), whole, single)
  # The same image under different keys: different labels or positions.
  same_image = jnp.broadcast_to(images[0], images.shape)
  other = jax.tree.map(np.asarray, batched(keys(6, 8), same_image))
  labels, positions = other[1], other[2]
  assert len({(int(l), tuple(p.ravel())) for l, p in zip(labels, positions)}) == 6


# ----------------------------------------------------------------------------
# Through the trainer: 1 device = 8 devices, the checkpointed set, frozen evaluation
# ----------------------------------------------------------------------------

def read_metrics(workdir) -> dict[int, dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r for r in map(json.loads, f)}


def host(tree):
  return jax.tree.map(np.asarray, jax.device_get(tree))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_same_losses_on_1_and_8_devices_and_frozen_evaluation(name, data_dir, tmp_path):
  runs = {}
  for devices in (1, 8):
    config = method_config(name, data_dir, devices)
    workdir = str(tmp_path / f"d{devices}")
    if devices == 1:  # pretrain, then the frozen evaluation every method goes through
      results = main.train_and_evaluate(config, workdir)
      with open(os.path.join(workdir, "eval.json")) as f:
        saved = json.load(f)
      assert saved["step"] == 4
      assert 0.0 <= saved["pretrained"]["linear_probe"]["accuracy"] <= 1.0
      assert 0.0 <= saved["pretrained"]["knn"]["accuracy"] <= 1.0
      assert results["pretrained"]["feature_dim"] == config.model.widths[-1]
      state = None
    else:
      state, _, _ = train.train(config, workdir)
    runs[devices] = read_metrics(workdir), state
  (one, _), (eight, state8) = runs[1], runs[8]
  assert sorted(one) == [1, 2, 3, 4]
  for key in ("loss", "accuracy", "grad_norm"):
    np.testing.assert_allclose([eight[s][key] for s in range(1, 5)], [one[s][key] for s in range(1, 5)],
                               rtol=2e-5, atol=1e-6, err_msg=key)
  losses = [one[s]["loss"] for s in range(1, 5)]
  assert all(np.isfinite(losses)) and losses[3] != losses[0]
  chance = {"rotation": np.log(4), "jigsaw": np.log(100), "relative_patch": np.log(8)}[name]
  assert 0.5 * chance < losses[0] < 2.0 * chance, losses

  if name == "jigsaw":  # the set is in the checkpoint: restored into a zeroed template
    template = host(state8)
    template = template.replace(method_state={"permutations": np.zeros_like(
        template.method_state["permutations"])})
    checkpointer = checkpoint_lib.Checkpointer(str(tmp_path / "d1"), async_save=False)
    restored, step = checkpointer.restore_latest(template)
    checkpointer.close()
    assert step == 4
    np.testing.assert_array_equal(np.asarray(restored.method_state["permutations"]),
                                  jigsaw.permutation_set(100, 0))
