"""Reconstruction pictures (sslax/reconstruct.py) against independent references:

* the grid writer's PNG, read back by PIL, has the size and pixel values a hand-computed
  layout gives for synthetic rows (grayscale and RGB; values outside [0, 1] clipped);
* end to end on a tiny pretrained run, with a test-only reconstruction registered in place
  of SimCLR's missing one (corrupt: the top half set to a per-image random value; rebuild:
  the mirror image): the PNG's input row holds test images' bytes read from the idx file,
  the corrupted row their bottom half and one value per image, distinct between images
  (one key each), the reconstruction row their mirror images;
* the real MAE through `python -m sslax.reconstruct` on a 2-step tiny ViT run: the PNG's
  size, its input row against the idx file, exactly the kept share of patches visible in
  the corrupted row (the rest the dataset mean), and the reconstruction equal to the input
  on those patches and not on all hidden ones;
* the command line refuses a method that reconstructs nothing, naming the ones that do; a
  workdir without checkpoint is refused with the fix.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from sslax import methods, reconstruct, train
from sslax.errors import ConfigError
from tests.helpers import read_idx, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_grid_png_reads_back_with_the_hand_computed_layout(tmp_path):
  rng = np.random.default_rng(0)
  rows = [rng.uniform(-0.2, 1.2, size=(2, 3, 4, 1)) for _ in range(3)]  # 3 kinds, 2 images, 3x4
  path = str(tmp_path / "grid.png")
  reconstruct.write_png(path, reconstruct.picture_grid(rows, scale=2, gap=1))
  image = Image.open(path)
  assert image.mode == "L"
  pixels = np.asarray(image)
  # Rows: 1 + 3 x (3*2 + 1) = 22; columns: 1 + 2 x (4*2 + 1) = 19.
  assert pixels.shape == (22, 19)
  for r in range(3):
    for n in range(2):
      for i, j in ((0, 0), (2, 3), (1, 2)):
        expected = round(255 * min(max(rows[r][n, i, j, 0], 0.0), 1.0))
        top, left = 1 + r * 7 + 2 * i, 1 + n * 9 + 2 * j
        assert np.all(pixels[top:top + 2, left:left + 2] == expected), (r, n, i, j)
  assert np.all(pixels[0] == 255) and np.all(pixels[:, 9] == 255) and np.all(pixels[7] == 255)

  rgb = [np.zeros((1, 2, 2, 3)), np.ones((1, 2, 2, 3)), np.full((1, 2, 2, 3), [0.2, 0.4, 0.6])]
  reconstruct.write_png(path, reconstruct.picture_grid(rgb, scale=3, gap=2))
  image = Image.open(path)
  assert image.mode == "RGB" and image.size == (2 + 6 + 2, 2 + 3 * (6 + 2))  # (width, height)
  assert np.asarray(image)[2 + 2 * 8, 2].tolist() == [51, 102, 153]


# ----------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------

def fake_reconstruct(model, variables, views, keys, config):
  """A stand-in self-prediction: corrupted = the top half set to one random value per
  image (from its key), reconstruction = the mirror image (plus 0 x the encoder's
  features, so the restored variables must run)."""
  assert keys.shape == (views.shape[0],)
  features = model.apply(variables, views, train=False, method="encode")
  value = jax.vmap(lambda k: jax.random.uniform(k, minval=-1.0, maxval=1.0))(keys)
  corrupted = views.at[:, :views.shape[1] // 2].set(value[:, None, None, None])
  reconstruction = jnp.flip(views, axis=2) + 0.0 * jnp.sum(features)
  return {"input": views, "corrupted": corrupted, "reconstruction": reconstruction}


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return os.path.dirname(tiny_fashion_mnist)  # the tiny data's root folder


@pytest.fixture
def fake_simclr(monkeypatch):
  real = methods.get_method
  monkeypatch.setattr(methods, "get_method", lambda name: dataclasses.replace(
      real(name), reconstruct=fake_reconstruct) if name == "simclr" else real(name))


def test_pictures_of_a_pretrained_run(data_dir, fake_simclr, tmp_path):
  config = tiny_config(os.path.join(data_dir, "tfds"))
  config.total_steps = 1
  train.train(config, str(tmp_path))
  rows = reconstruct.reconstruction_rows(config, str(tmp_path), num_images=4)
  out = str(tmp_path / "pictures.png")
  reconstruct.write_png(out, reconstruct.picture_grid([rows[k] for k in reconstruct.ROWS], scale=4))

  pixels = np.asarray(Image.open(out)).astype(int)
  cell = 28 * 4 + 2
  assert pixels.shape == (2 + 3 * cell, 2 + 4 * cell)
  # Each picture, back to 28x28 by taking one pixel of every 4x4 block.
  pictures = [[pixels[2 + r * cell:2 + r * cell + 112:4, 2 + n * cell:2 + n * cell + 112:4]
               for n in range(4)] for r in range(3)]
  # TFDS shuffles a split when it prepares it: the first 4 of the split are 4 of the file.
  test_images = read_idx(os.path.join(data_dir, "idx", "t10k-images-idx3-ubyte.gz")).astype(int)
  constants = []
  for n in range(4):
    inp, corrupted, rebuilt = pictures[0][n], pictures[1][n], pictures[2][n]
    image = test_images[np.argmin(np.abs(test_images - inp).max(axis=(1, 2)))]
    assert np.abs(inp - image).max() <= 1  # un-normalized, up to rounding
    assert np.abs(corrupted[14:] - image[14:]).max() <= 1
    assert np.unique(corrupted[:14]).size == 1
    constants.append(corrupted[0, 0])
    assert np.abs(rebuilt - image[:, ::-1]).max() <= 1
  assert len(set(constants)) == 4, constants  # one key per image


def test_no_checkpoint_says_pretrain_first(data_dir, fake_simclr, tmp_path):
  config = tiny_config(os.path.join(data_dir, "tfds"))
  with pytest.raises(FileNotFoundError, match="no checkpoint.*pretrain first"):
    reconstruct.reconstruction_rows(config, str(tmp_path))


def test_command_line_refuses_a_method_without_reconstruction(tmp_path):
  able = [name for name in methods.available_methods() if methods.get_method(name).reconstruct is not None]
  result = subprocess.run(
      [sys.executable, "-m", "sslax.reconstruct", "--config=configs/simclr_fashion_mnist.py",
       f"--workdir={tmp_path}", f"--out={tmp_path / 'x.png'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-2000:]
  message = result.stderr.strip().splitlines()[-1]
  assert message.startswith("error: config.method.name: 'simclr' reconstructs nothing"), message
  assert message.endswith(", ".join(able) if able else "none is registered yet"), message
  assert "Traceback" not in result.stderr
  with pytest.raises(ConfigError, match="reconstructs nothing"):
    reconstruct.reconstruction_rows(tiny_config(str(tmp_path)), str(tmp_path))


# ----------------------------------------------------------------------------
# The real MAE through the command line
# ----------------------------------------------------------------------------

# A tiny ViT MAE: 7x7 patches (16 per image, 4 left visible at mask ratio 0.75), 16 wide.
MAE_OVERRIDES = {"model.patch_size": 7, "model.hidden_dim": 16, "model.depth": 1, "model.num_heads": 2,
                 "method.decoder_dim": 16, "method.decoder_depth": 1, "method.decoder_heads": 2,
                 # off in this process (conftest), so off in the command's too: the same state
                 "online_probe.enabled": False, "diagnostics.enabled": False}


def test_real_mae_pictures_keep_the_visible_patches(data_dir, tmp_path):
  """2 MAE steps, then `python -m sslax.reconstruct`: the PNG has the grid's size; its input
  row holds test images from the idx file; in the corrupted row exactly int(16 x 0.25) = 4
  patches per image are the input's and the others the dataset mean (0.2860 -> 73); the
  reconstruction row equals the input on those visible patches and differs on a hidden one."""
  import importlib.util

  spec = importlib.util.spec_from_file_location("mae_fashion_mnist", os.path.join(REPO, "configs", "mae_fashion_mnist.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  overrides = {**MAE_OVERRIDES, "data.data_dir": os.path.join(data_dir, "tfds")}
  for key, value in overrides.items():
    parent, leaf = key.split(".")
    config[parent][leaf] = value
  config.batch_size, config.total_steps, config.checkpoint_every_steps = 16, 2, 2
  config.async_checkpoints = False
  config.optimizer.warmup_steps = 1
  workdir = str(tmp_path / "run")
  train.train(config, workdir)

  out = str(tmp_path / "mae.png")
  result = subprocess.run(
      [sys.executable, "-m", "sslax.reconstruct", "--config=configs/mae_fashion_mnist.py", f"--workdir={workdir}",
       f"--out={out}", "--num_images=3", "--scale=2"] + [f"--config.{k}={v}" for k, v in overrides.items()],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"wrote {out}" in result.stdout

  pixels = np.asarray(Image.open(out)).astype(int)
  cell = 28 * 2 + 2
  assert pixels.shape == (2 + 3 * cell, 2 + 3 * cell)
  test_images = read_idx(os.path.join(data_dir, "idx", "t10k-images-idx3-ubyte.gz")).astype(int)
  hidden_differs = 0
  for n in range(3):
    inp, corrupted, rebuilt = (pixels[2 + r * cell:2 + r * cell + 56:2, 2 + n * cell:2 + n * cell + 56:2]
                               for r in range(3))
    image = test_images[np.argmin(np.abs(test_images - inp).max(axis=(1, 2)))]
    assert np.abs(inp - image).max() <= 1  # un-normalized, up to rounding
    patches = [(slice(7 * i, 7 * i + 7), slice(7 * j, 7 * j + 7)) for i in range(4) for j in range(4)]
    visible = [p for p in patches if np.array_equal(corrupted[p], inp[p])]
    assert len(visible) == 4, n
    for p in patches:
      if p in visible:
        assert np.array_equal(rebuilt[p], inp[p]), (n, p)
      else:
        assert np.all(corrupted[p] == round(255 * 0.2860)), (n, p)
        hidden_differs += not np.array_equal(rebuilt[p], inp[p])
  assert hidden_differs > 0  # the hidden patches are the network's, not the input's
