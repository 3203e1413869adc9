"""The reconstruction methods (sslax/methods/denoising_ae.py, inpainting.py, colorization.py)
and their decoder (sslax/models/decoder.py) against independent references: corruptions and
blocks against NumPy (counts, values, positions, per-key draws), the losses against NumPy
formulas on the network's own outputs, CIELAB against published values and its inverse, the
decoder's shapes for every image size, the config files' networks; and, through the trainer,
the same losses on 1 and 8 devices and a falling loss (colorization on mocked CIFAR-10)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from sslax import config as config_lib
from sslax import losses, parallel, train
from sslax import step as step_lib
from sslax.errors import ConfigError
from sslax.methods import colorization, denoising_ae, get_method, inpainting
from sslax.methods.base import StepInputs
from sslax.models import encoder_config
from sslax.models.decoder import ConvDecoder, depth_to_space, upsampling_plan
from tests.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = (0.2860,), (0.3530,)  # Fashion-MNIST's normalization
RGB_MEAN, RGB_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def keys(n: int, seed: int = 0) -> jax.Array:
  return jax.random.split(jax.random.key(seed), n)


def normal_images(shape, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def per_device(fn, *args):
  """fn(*args) as the one device of a mesh axis named DATA_AXIS (BatchNorm and pmean need it):
  a vmap over a leading axis of size 1."""
  return jax.tree.map(lambda a: a[0], jax.vmap(fn, axis_name=parallel.DATA_AXIS)(
      *jax.tree.map(lambda a: a[None], args)))


# ----------------------------------------------------------------------------
# Decoder
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("size,plan", [(28, (7, 2)), (32, (4, 3)), (96, (6, 4)), (224, (7, 5)),
                                       (30, (4, 3)), (7, (7, 0))])
def test_upsampling_plan(size, plan):
  side, n = upsampling_plan(size)
  assert (side, n) == plan
  assert side <= 7 and side * 2 ** n >= size and (n == 0 or side * 2 ** (n - 1) < size)


@pytest.mark.parametrize("shape,out_channels", [((28, 28, 1), 0), ((32, 32, 3), 0), ((32, 32, 3), 2),
                                                ((96, 96, 3), 0), ((224, 224, 3), 0), ((30, 30, 2), 0)])
def test_decoder_output_shape(shape, out_channels):
  decoder = ConvDecoder(width=64, min_width=16, out_channels=out_channels)
  z = jax.ShapeDtypeStruct((2, 48), jnp.float32)
  out, _ = jax.eval_shape(lambda z: decoder.init_with_output(jax.random.key(0), z, shape), z)
  assert out.shape == (2, *shape[:2], out_channels or shape[2])


def test_depth_to_space_is_the_pixel_shuffle():
  x = normal_images((2, 3, 4, 4 * 5))
  out = np.asarray(depth_to_space(jnp.asarray(x)))
  assert out.shape == (2, 6, 8, 5)
  for h in range(3):
    for w in range(4):
      for i in range(2):
        for j in range(2):
          np.testing.assert_array_equal(out[:, 2 * h + i, 2 * w + j], x[:, h, w, (2 * i + j) * 5:(2 * i + j + 1) * 5])


# ----------------------------------------------------------------------------
# Denoising autoencoder: corruptions
# ----------------------------------------------------------------------------

def dae_cfg(**overrides) -> ml_collections.ConfigDict:
  cfg = denoising_ae.defaults()
  cfg.update(overrides)
  return cfg


@pytest.mark.parametrize("corruption", ["masking", "salt_and_pepper"])
@pytest.mark.parametrize("shape,mean,std", [((28, 28, 1), MEAN, STD), ((16, 16, 3), RGB_MEAN, RGB_STD)])
def test_masking_and_salt_and_pepper_corrupt_the_configured_share(corruption, shape, mean, std):
  n, fraction = 64, 0.25
  x = normal_images((n, *shape))
  cfg = dae_cfg(corruption=corruption, fraction=fraction)
  out, mask = map(np.asarray, jax.jit(lambda k, x: denoising_ae.corrupt(k, x, cfg, mean, std))(
      keys(n), jnp.asarray(x)))
  h, w, c = shape
  black = (0.0 - np.asarray(mean)) / np.asarray(std)
  white = (1.0 - np.asarray(mean)) / np.asarray(std)
  assert mask.shape == (n, h, w, 1)
  # Exactly round(fraction * H * W) pixels per image (the paper's fixed number), each with all
  # its channels; the others untouched.
  np.testing.assert_array_equal(mask.sum(axis=(1, 2, 3)), round(fraction * h * w))
  changed = (out != x).any(axis=-1)
  np.testing.assert_array_equal(changed, mask[..., 0] > 0)
  np.testing.assert_array_equal(out[mask[..., 0] == 0], x[mask[..., 0] == 0])
  corrupted = out[mask[..., 0] > 0]  # [pixels, C]
  is_black = np.isclose(corrupted, black, atol=1e-6).all(axis=-1)
  is_white = np.isclose(corrupted, white, atol=1e-6).all(axis=-1)
  if corruption == "masking":
    assert is_black.all()
  else:  # a fair coin: about half salt, half pepper
    assert (is_black | is_white).all()
    assert abs(is_white.mean() - 0.5) < 5 * 0.5 / np.sqrt(len(corrupted))


def test_masked_pixels_are_uniform_over_the_image():
  """Over many keys, every pixel is masked at about the configured rate."""
  n, fraction = 2000, 0.25
  cfg = dae_cfg(corruption="masking", fraction=fraction)
  _, mask = jax.jit(lambda k, x: denoising_ae.corrupt(k, x, cfg, MEAN, STD))(
      keys(n, 3), jnp.zeros((n, 12, 12, 1)))
  rate = np.asarray(mask)[..., 0].mean(axis=0)
  assert np.abs(rate - fraction).max() < 5 * np.sqrt(fraction * (1 - fraction) / n)


def test_gaussian_noise_has_the_configured_std_in_pixel_units():
  n = 64
  x = normal_images((n, 16, 16, 3))
  cfg = dae_cfg(corruption="gaussian", noise_std=0.3)
  out, mask = map(np.asarray, denoising_ae.corrupt(keys(n), jnp.asarray(x), cfg, RGB_MEAN, RGB_STD))
  noise_in_pixels = (out - x) * np.asarray(RGB_STD)
  np.testing.assert_allclose(noise_in_pixels.std(axis=(0, 1, 2)), 0.3, atol=0.01)  # per channel
  np.testing.assert_allclose(noise_in_pixels.mean(axis=(0, 1, 2)), 0.0, atol=0.01)
  assert np.all(mask == 1.0)


@pytest.mark.parametrize("corruption", ["masking", "salt_and_pepper", "gaussian"])
def test_corruption_is_a_function_of_the_example_key(corruption):
  """Same key: the same corruption, in any batch (as on any device); other keys: others."""
  cfg = dae_cfg(corruption=corruption)
  x = jnp.asarray(normal_images((6, 14, 14, 1)))
  fn = jax.jit(lambda k, x: denoising_ae.corrupt(k, x, cfg, MEAN, STD))
  ks = keys(6, 1)
  whole = np.asarray(fn(ks, x)[0])
  np.testing.assert_array_equal(whole, np.asarray(fn(ks, x)[0]))
  np.testing.assert_array_equal(whole[3:], np.asarray(fn(ks[3:], x[3:])[0]))
  same_image = jnp.broadcast_to(x[0], x.shape)
  draws = np.asarray(fn(keys(6, 2), same_image)[0])
  assert len({d.tobytes() for d in draws}) == 6


def test_bad_denoising_config_is_refused_by_validate():
  for key, value in (("corruption", "blur"), ("loss_on", "some"), ("fraction", 0.0), ("fraction", 1e-4),
                     ("decoder_norm", "layer")):
    config = ml_collections.ConfigDict({"method": dae_cfg(**{key: value}), "model": encoder_config("convnet"),
                                        "data": {"name": "fashion_mnist", "image_size": 28}})
    with pytest.raises(ConfigError, match=key):
      denoising_ae.validate(config)


# ----------------------------------------------------------------------------
# The losses, against NumPy on the network's own outputs
# ----------------------------------------------------------------------------

def test_weighted_mse_is_the_global_batch_ratio():
  """8 simulated devices (a vmap over the axis) give sum(w e^2) / sum(w) over all of them."""
  rng = np.random.default_rng(0)
  p, t = rng.normal(size=(2, 8, 3, 5, 5, 2)).astype(np.float32)
  w = (rng.uniform(size=(8, 3, 5, 5, 1)) < 0.3).astype(np.float32) * rng.uniform(1, 3, size=(8, 3, 5, 5, 1))
  got = jax.vmap(lambda *a: losses.weighted_mse(*a, axis_name="d"), axis_name="d")(p, t, w)
  want = np.sum(np.broadcast_to(w, p.shape) * (p - t) ** 2) / np.sum(np.broadcast_to(w, p.shape))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
  np.testing.assert_allclose(float(losses.weighted_mse(p[0], t[0], np.ones_like(w[0]))),
                             np.mean((p[0] - t[0]) ** 2), rtol=1e-5)


def tiny_model_config(name: str, data_name: str = "fashion_mnist", size: int = 28) -> ml_collections.ConfigDict:
  method = {"denoising_ae": denoising_ae, "inpainting": inpainting, "colorization": colorization}[name]
  cfg = method.defaults()
  cfg.decoder_width, cfg.decoder_min_width = 16, 8
  return ml_collections.ConfigDict({"method": cfg, "model": encoder_config("convnet", widths=(8, 16)),
                                    "data": {"name": data_name, "image_size": size}, "seed": 0})


@functools.cache
def network(name: str, data_name: str = "fashion_mnist", size: int = 28):
  """(model, variables) of `name` with a tiny encoder and decoder, built and initialized once
  for all the tests that use it (the loss variants do not change the network)."""
  method = {"denoising_ae": denoising_ae, "inpainting": inpainting, "colorization": colorization}[name]
  config = tiny_model_config(name, data_name, size)
  model = method.build(config)
  return model, step_lib.init_variables(model, config, 3 if name == "colorization" else 1)


def loss_and_output(method, config, views, ks, mean=MEAN, std=STD, network_input=None):
  """(method.loss, the network's train-mode output on network_input(views)) as one device."""
  model, variables = network(method.defaults().name, config.data.name, config.data.image_size)

  def fn(views, ks):
    inputs = StepInputs(views=[views], labels=jnp.zeros(len(views), jnp.int32), step=jnp.zeros((), jnp.int32),
                        state={}, keys=ks, pixel_mean=mean, pixel_std=std)
    value, _ = method.loss(model, variables, inputs, config, parallel.DATA_AXIS)
    out, _ = model.apply(variables, network_input(views, ks), train=True, mutable=["batch_stats"])
    return value, out
  return jax.tree.map(np.asarray, jax.jit(lambda v, k: per_device(fn, v, k))(jnp.asarray(views), ks))


@pytest.mark.parametrize("loss_on", ["all", "corrupted"])
def test_denoising_loss_against_numpy(loss_on):
  config = tiny_model_config("denoising_ae")
  config.method.loss_on = loss_on
  x = normal_images((4, 28, 28, 1), 1)
  ks = keys(4, 6)
  _, mask = map(np.asarray, denoising_ae.corrupt(ks, jnp.asarray(x), config.method, MEAN, STD))
  value, out = loss_and_output(denoising_ae, config, x, ks,
                               network_input=lambda v, k: denoising_ae.corrupt(k, v, config.method, MEAN, STD)[0])
  err = (out - x) ** 2
  want = err.mean() if loss_on == "all" else err[mask[..., 0] > 0].mean()
  np.testing.assert_allclose(value, want, rtol=1e-5)
  # On these images the two variants differ, so the check above tells them apart.
  assert abs(err.mean() - err[mask[..., 0] > 0].mean()) > 0.05 * want


def test_inpainting_blocks_against_numpy():
  cfg = inpainting.defaults()
  x = normal_images((3, 28, 28, 1))
  masked, weights, hidden = map(np.asarray, inpainting.mask_blocks(keys(3), jnp.asarray(x), cfg))
  want_hidden = np.zeros((28, 28), bool)
  want_hidden[7:21, 7:21] = True  # the central 14 x 14 (64 of 128 in the paper)
  for b in range(3):
    np.testing.assert_array_equal(hidden[b, ..., 0] > 0, want_hidden)
    np.testing.assert_array_equal(masked[b][want_hidden], 0.0)  # the dataset mean, normalized
    np.testing.assert_array_equal(masked[b][~want_hidden], x[b][~want_hidden])
    np.testing.assert_array_equal(weights[b, ..., 0], want_hidden.astype(np.float32))
  # With an overlap margin: the 14 px block, its 2 px ring seen and weighted 10, its 10 px
  # interior hidden and weighted 1.
  cfg.overlap = 2
  masked, weights, hidden = map(np.asarray, inpainting.mask_blocks(keys(3), jnp.asarray(x), cfg))
  interior = np.zeros((28, 28), bool)
  interior[9:19, 9:19] = True
  want_weights = np.where(interior, 1.0, np.where(want_hidden, 10.0, 0.0))
  np.testing.assert_array_equal(weights[0, ..., 0], want_weights)
  np.testing.assert_array_equal(hidden[0, ..., 0] > 0, interior)
  np.testing.assert_array_equal(masked[0][~interior], x[0][~interior])


def test_random_blocks_fit_vary_and_follow_the_key():
  cfg = inpainting.defaults()
  cfg.block = "random"
  n, size, side = 3000, 12, 6
  fn = jax.jit(lambda k, x: inpainting.mask_blocks(k, x, cfg))
  _, _, hidden = fn(keys(n, 4), jnp.zeros((n, size, size, 1)))
  hidden = np.asarray(hidden)[..., 0] > 0
  origins = set()
  for b in range(n):
    rows, cols = np.nonzero(hidden[b])
    top, left = rows.min(), cols.min()
    want = np.zeros((size, size), bool)
    want[top:top + side, left:left + side] = True  # one whole side x side square inside the image
    np.testing.assert_array_equal(hidden[b], want)
    origins.add((top, left))
  assert origins == {(i, j) for i in range(size - side + 1) for j in range(size - side + 1)}
  x = jnp.asarray(normal_images((6, size, size, 1)))
  ks = keys(6, 9)
  np.testing.assert_array_equal(np.asarray(fn(ks, x)[0])[2:], np.asarray(fn(ks[2:], x[2:])[0]))


def test_inpainting_loss_reads_only_the_block():
  """The loss is NumPy's mean squared error over the hidden block of the network's output on
  the masked image; the same weights make the loss blind to the output outside the block."""
  config = tiny_model_config("inpainting")
  x = normal_images((4, 28, 28, 1), 2)
  ks = keys(4)
  value, out = loss_and_output(inpainting, config, x, ks,
                               network_input=lambda v, k: inpainting.mask_blocks(k, v, config.method)[0])
  block = np.zeros((28, 28), bool)
  block[7:21, 7:21] = True
  np.testing.assert_allclose(value, np.mean((out - x)[:, block] ** 2), rtol=1e-5)
  assert abs(value - np.mean((out - x) ** 2)) > 1e-3 * value
  _, weights, _ = inpainting.mask_blocks(ks, jnp.asarray(x), config.method)
  outside = out + 5.0 * (~block)[None, :, :, None]
  inside = out + 5.0 * block[None, :, :, None]
  np.testing.assert_allclose(float(losses.weighted_mse(outside, x, weights)), value, rtol=1e-5)
  assert float(losses.weighted_mse(inside, x, weights)) > value + 1.0


def test_bad_inpainting_config_is_refused_by_validate():
  config = tiny_model_config("inpainting")
  config.method.overlap = 7  # 2 x 7 >= the 14 px block
  with pytest.raises(ConfigError, match="overlap"):
    inpainting.validate(config)
  config = tiny_model_config("inpainting")
  config.method.block = "corner"
  with pytest.raises(ConfigError, match="block"):
    inpainting.validate(config)


# ----------------------------------------------------------------------------
# Colorization: CIELAB, the task, the colour check
# ----------------------------------------------------------------------------

def test_lab_of_known_colours():
  """Published sRGB (D65) -> CIELAB values (e.g. Lindbloom's calculator, colormine)."""
  rgb = jnp.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                   [0.5, 0.5, 0.5]])
  lab = np.asarray(colorization.rgb_to_lab(rgb))
  np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=1e-3)
  np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-3)
  np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.01)
  np.testing.assert_allclose(lab[3], [87.73, -86.18, 83.18], atol=0.01)
  np.testing.assert_allclose(lab[4], [53.39, 0.0, 0.0], atol=0.01)  # sRGB 128 grey: L 53.39


def test_lab_round_trip():
  rgb = np.random.default_rng(0).uniform(size=(4096, 3)).astype(np.float32)
  rgb[:8] = [[0, 0, 0], [1, 1, 1], [0.01, 0.0, 0.02], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.03, 0.03, 0.03],
             [0.999, 0.5, 0.001]]
  back = np.asarray(colorization.lab_to_rgb(colorization.rgb_to_lab(jnp.asarray(rgb))))
  np.testing.assert_allclose(back, rgb, atol=2e-5)
  # The inverse alone, against the forward on Lab values: L 0..100, a, b within +-60.
  rng = np.random.default_rng(1)
  lab = np.stack([rng.uniform(20, 90, 500), rng.uniform(-20, 20, 500), rng.uniform(-20, 20, 500)], -1)
  rgb = np.asarray(colorization.lab_to_rgb(jnp.asarray(lab, jnp.float32)))
  inside = ((rgb > 0) & (rgb < 1)).all(-1)
  assert inside.mean() > 0.5
  np.testing.assert_allclose(np.asarray(colorization.rgb_to_lab(jnp.asarray(rgb[inside]))), lab[inside],
                             atol=2e-3)


def test_grey_input_keeps_lightness_and_drops_chroma():
  rgb = np.random.default_rng(2).uniform(size=(2, 5, 5, 3)).astype(np.float32)
  views = (rgb - np.asarray(RGB_MEAN)) / np.asarray(RGB_STD)
  grey, target, lightness = map(np.asarray, colorization.grey_and_ab(jnp.asarray(views), RGB_MEAN, RGB_STD, 110.0))
  grey_pixels = grey * np.asarray(RGB_STD) + np.asarray(RGB_MEAN)
  np.testing.assert_allclose(grey_pixels[..., 0], grey_pixels[..., 1], atol=1e-5)  # R = G = B
  np.testing.assert_allclose(grey_pixels[..., 0], grey_pixels[..., 2], atol=1e-5)
  lab = np.asarray(colorization.rgb_to_lab(jnp.asarray(rgb)))
  np.testing.assert_allclose(np.asarray(colorization.rgb_to_lab(jnp.asarray(grey_pixels))),
                             np.concatenate([lab[..., :1], np.zeros_like(lab[..., 1:])], -1), atol=2e-3)
  np.testing.assert_allclose(target, lab[..., 1:] / 110.0, atol=1e-5)
  np.testing.assert_allclose(lightness, lab[..., :1], atol=1e-4)


@pytest.mark.parametrize("kind", ["l2", "smooth_l1"])
def test_colorization_loss_against_numpy(kind):
  config = tiny_model_config("colorization", "cifar10", 16)
  config.method.loss = kind
  rgb = np.random.default_rng(3).uniform(size=(4, 16, 16, 3)).astype(np.float32)
  views = (rgb - np.asarray(RGB_MEAN)) / np.asarray(RGB_STD)
  value, out = loss_and_output(
      colorization, config, views, keys(4), RGB_MEAN, RGB_STD,
      network_input=lambda v, k: colorization.grey_and_ab(v, RGB_MEAN, RGB_STD, 110.0)[0])
  assert out.shape == (4, 16, 16, 2)
  err = out - np.asarray(colorization.rgb_to_lab(jnp.asarray(rgb)))[..., 1:] / 110.0
  beta = config.method.smooth_l1_beta
  want = np.mean(err ** 2) if kind == "l2" else np.mean(
      np.where(np.abs(err) < beta, 0.5 * err ** 2 / beta, np.abs(err) - 0.5 * beta))
  np.testing.assert_allclose(value, want, rtol=1e-5)


def test_colorization_refuses_one_channel_data():
  config = tiny_model_config("colorization", "fashion_mnist")
  with pytest.raises(ConfigError, match=r"'fashion_mnist' has 1 channel.*cifar10.*imagenet2012.*stl10"):
    colorization.validate(config)
  # A dataset validate cannot tell: refused when the loss sees the 1-channel views.
  config = tiny_model_config("colorization", "my_grey_scans")
  model = colorization.build(config)
  inputs = StepInputs(views=[jnp.zeros((2, 28, 28, 1))], labels=jnp.zeros(2, jnp.int32),
                      step=jnp.zeros((), jnp.int32), state={}, keys=keys(2))
  with pytest.raises(ConfigError, match="1 channel"):
    colorization.loss(model, {}, inputs, config, None)


# ----------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------

def test_reconstruct_pictures():
  """The pictures against the network called directly: the DAE's output on the training
  corruption (by the same keys), the inpainting context with the predicted block pasted in,
  the colour image of the input's L and the predicted ab."""
  x = jnp.asarray(normal_images((3, 28, 28, 1)))
  ks = keys(3)
  block = np.zeros((28, 28), bool)
  block[7:21, 7:21] = True
  for method in (denoising_ae, inpainting):
    config = tiny_model_config(method.defaults().name)
    model, variables = network(method.defaults().name)
    corrupt = (lambda k, x: denoising_ae.corrupt(k, x, config.method, MEAN, STD)[0]) if method is denoising_ae \
        else (lambda k, x: inpainting.mask_blocks(k, x, config.method)[0])

    def both(v, x, k):  # one compile: the pictures and the reference
      corrupted = corrupt(k, x)
      return method.reconstruct(model, v, x, k, config), corrupted, model.apply(v, corrupted, train=False)
    pictures, corrupted, output = jax.tree.map(np.asarray, jax.jit(both)(variables, x, ks))
    assert {k: v.shape for k, v in pictures.items()} == {k: x.shape for k in ("input", "corrupted", "reconstruction")}
    np.testing.assert_array_equal(pictures["input"], x)
    np.testing.assert_array_equal(pictures["corrupted"], corrupted)
    if method is denoising_ae:  # corrupted with the model's (Fashion-MNIST) normalization
      np.testing.assert_allclose(pictures["reconstruction"], output, rtol=1e-5, atol=1e-5)
    else:  # the context kept, the block predicted
      np.testing.assert_array_equal(pictures["reconstruction"][:, ~block], np.asarray(x)[:, ~block])
      np.testing.assert_allclose(pictures["reconstruction"][:, block], output[:, block], rtol=1e-5, atol=1e-5)

  config = tiny_model_config("colorization", "cifar10", 16)
  model, variables = network("colorization", "cifar10", 16)
  rgb = np.random.default_rng(4).uniform(0.2, 0.8, size=(2, 16, 16, 3)).astype(np.float32)
  views = jnp.asarray((rgb - np.asarray(RGB_MEAN)) / np.asarray(RGB_STD))

  def both(v, x, k):
    pictures = colorization.reconstruct(model, v, x, k, config)
    return pictures, model.apply(v, pictures["corrupted"], train=False)
  pictures, ab = jax.tree.map(np.asarray, jax.jit(both)(variables, views, keys(2)))
  colour = pictures["reconstruction"] * np.asarray(RGB_STD) + np.asarray(RGB_MEAN)
  inside = ((colour > 1e-4) & (colour < 1 - 1e-4)).all(-1)  # not clipped: L is the input's
  assert inside.mean() > 0.5
  lab_in = np.asarray(colorization.rgb_to_lab(jnp.asarray(rgb)))
  lab_out = np.asarray(colorization.rgb_to_lab(jnp.asarray(colour)))
  np.testing.assert_allclose(lab_out[inside][:, 0], lab_in[inside][:, 0], atol=2e-3)
  np.testing.assert_allclose(lab_out[inside][:, 1:], 110.0 * ab[inside], atol=2e-2)


# ----------------------------------------------------------------------------
# Through the trainer: 1 device = 8 devices, the loss goes down
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def config_file(name: str):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def trainer_config(name: str, data_dir: str, num_devices: int):
  """tiny_config with the method, view and optimizer of configs/<name>.py, a tiny encoder
  and decoder, 6 steps."""
  full = config_file(name)
  config = tiny_config(data_dir)
  config.num_devices = num_devices
  config.method = full.method
  config.method.decoder_width, config.method.decoder_min_width = 16, 8
  config.views = full.views
  config.optimizer = full.optimizer
  config.optimizer.warmup_steps = 1
  config.total_steps = 6
  config.checkpoint_every_steps = 6
  if full.data.name != "fashion_mnist":  # mocked by tfds.testing.mock_data
    config.data.name, config.data.image_size, config.data.download = full.data.name, full.data.image_size, True
    config.model = encoder_config("convnet", widths=(8, 16))
  if name.startswith("inpainting"):
    config.method.block = "random"  # per-example blocks from the keys: the same on any device count
  if name.startswith("colorization"):
    # The mock's pixels are uniform noise: only the mean colour is predictable, and 6 steps at
    # the config's 2e-4 barely move towards it.
    config.optimizer.base_lr = 1e-2
  return config


def read_metrics(workdir) -> dict[int, dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r for r in map(json.loads, f)}


@pytest.mark.parametrize("name", ["denoising_ae_fashion_mnist", "inpainting_fashion_mnist",
                                  "colorization_cifar10"])
def test_same_losses_on_1_and_8_devices_and_the_loss_goes_down(name, data_dir, tmp_path):
  runs = {}
  mocked = name.endswith("fashion_mnist") is False  # the colour dataset is TFDS's mock; Fashion-MNIST is local
  with tfds.testing.mock_data(num_examples=48, policy=tfds.testing.MockPolicy.USE_CODE) if mocked \
      else contextlib.nullcontext():
    for devices in (1, 8):
      workdir = str(tmp_path / f"d{devices}")
      train.train(trainer_config(name, data_dir, devices), workdir)
      runs[devices] = read_metrics(workdir)
  steps = range(1, 7)
  assert sorted(runs[1]) == list(steps)
  for key in ("loss", "grad_norm"):
    np.testing.assert_allclose([runs[8][s][key] for s in steps], [runs[1][s][key] for s in steps],
                               rtol=2e-5, atol=1e-6, err_msg=key)
  losses_1 = [runs[1][s]["loss"] for s in steps]
  assert np.all(np.isfinite(losses_1)) and losses_1[-1] < losses_1[0], losses_1


@pytest.mark.parametrize("name,shape", [("denoising_ae_fashion_mnist", (28, 28, 1)),
                                        ("inpainting_fashion_mnist", (28, 28, 1)),
                                        ("colorization_cifar10", (32, 32, 3)),
                                        ("colorization_imagenet", (224, 224, 3))])
def test_config_files_validate_and_build(name, shape):
  """Each config passes validation and builds a network whose reconstruction has the image's
  shape (colorization: its 2 ab channels) and whose code is the encoder's pooled features."""
  config = config_file(name)
  config_lib.validate(config)
  assert config.data.image_size == shape[0]
  model = get_method(config.method.name).build(config)
  x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  code = jax.eval_shape(lambda v, x: model.apply(v, x, method="encode"), variables, x)
  channels = 2 if name.startswith("colorization") else shape[-1]
  assert out.shape == (2, *shape[:2], channels)
  assert code.shape == (2, {"convnet": 256, "resnet18": 512, "resnet50": 2048}[config.model.name])
