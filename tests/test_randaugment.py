"""RandAugment on the device (sslax/data/randaugment.py) against PIL, which timm's
RandAugment runs (timm/data/auto_augment.py): each op on an 8-bit image against the PIL
call timm makes, within 1 level (PIL truncates and rounds in its own fixed point); the
magnitude-to-argument map against timm's level_to_arg where timm is installed; the same key
gives the same images, and a batch is augmented image by image with its own key."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax.data import randaugment

Image = pytest.importorskip("PIL.Image", reason="Pillow, the reference for every op, comes with tensorflow-datasets; skipped only where it is absent")
from PIL import ImageEnhance, ImageOps  # noqa: E402

FILL = (124, 116, 104)


def make_image(channels=3, seed=0):
  """A 20x24 image with smooth gradients (for the resampling ops) and noise (for the
  histogram ops), values 0..255."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[0:20, 0:24]
  base = (rows[..., None] * np.array([9, 4, 2]) + cols[..., None] * np.array([2, 7, 5]))[..., :channels]
  return np.clip(base + rng.integers(-12, 13, base.shape) + 20, 0, 255).astype(np.uint8)


def pil_solarize_add(img, add, thresh=128):
  lut = [min(255, i + add) if i < thresh else i for i in range(256)]
  return img.point(lut * len(img.getbands()))


# (op, argument, the PIL call timm's op makes with that argument)
PIL_OPS = [
    ("AutoContrast", None, ImageOps.autocontrast),
    ("Equalize", None, ImageOps.equalize),
    ("Invert", None, ImageOps.invert),
    ("Rotate", 23.0, lambda im: im.rotate(23.0, resample=Image.BILINEAR, fillcolor=FILL[:len(im.getbands())])),
    ("Rotate", -14.0, lambda im: im.rotate(-14.0, resample=Image.BILINEAR, fillcolor=FILL[:len(im.getbands())])),
    ("PosterizeIncreasing", 1.0, lambda im: ImageOps.posterize(im, 1)),
    ("PosterizeIncreasing", 3.0, lambda im: ImageOps.posterize(im, 3)),
    # 0 bits (magnitude 10): the PIL of MAE's time masked every bit away; PIL >= 10 refuses.
    ("PosterizeIncreasing", 0.0, lambda im: im.point(lambda i: 0)),
    ("SolarizeIncreasing", 100.0, lambda im: ImageOps.solarize(im, 100)),
    ("SolarizeAdd", 99.0, lambda im: pil_solarize_add(im, 99)),
    ("ColorIncreasing", 1.81, lambda im: ImageEnhance.Color(im).enhance(1.81)),
    ("ColorIncreasing", 0.19, lambda im: ImageEnhance.Color(im).enhance(0.19)),
    ("ContrastIncreasing", 1.81, lambda im: ImageEnhance.Contrast(im).enhance(1.81)),
    ("ContrastIncreasing", 0.3, lambda im: ImageEnhance.Contrast(im).enhance(0.3)),
    ("BrightnessIncreasing", 1.7, lambda im: ImageEnhance.Brightness(im).enhance(1.7)),
    ("BrightnessIncreasing", 0.2, lambda im: ImageEnhance.Brightness(im).enhance(0.2)),
    ("SharpnessIncreasing", 1.81, lambda im: ImageEnhance.Sharpness(im).enhance(1.81)),
    ("SharpnessIncreasing", 0.19, lambda im: ImageEnhance.Sharpness(im).enhance(0.19)),
    ("ShearX", 0.27, lambda im: im.transform(im.size, Image.AFFINE, (1, 0.27, 0, 0, 1, 0),
                                             resample=Image.BILINEAR, fillcolor=FILL[:len(im.getbands())])),
    ("ShearY", -0.27, lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, -0.27, 1, 0),
                                              resample=Image.BILINEAR, fillcolor=FILL[:len(im.getbands())])),
    ("TranslateXRel", 0.405, lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0.405 * 24, 0, 1, 0),
                                                     resample=Image.BILINEAR, fillcolor=FILL[:len(im.getbands())])),
    ("TranslateYRel", -0.405, lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, -0.405 * 20),
                                                      resample=Image.BILINEAR, fillcolor=FILL[:len(im.getbands())])),
]


def test_every_op_of_timms_increasing_list_is_checked():
  assert {name for name, _, _ in PIL_OPS} == set(randaugment.OPS)
  assert len(randaugment.OPS) == 15


# Grayscale images (Fashion-MNIST) for the ops that read the channels together.
CASES = [(*op, 3) for op in PIL_OPS] + [(*op, 1) for op in PIL_OPS if op[0] in (
    "AutoContrast", "Equalize", "Rotate", "ColorIncreasing", "ContrastIncreasing")]


@pytest.mark.parametrize("name,argument,pil_op,channels", CASES,
                         ids=[f"{n}({a})-{c}" for n, a, _, c in CASES])
def test_op_matches_pil(name, argument, pil_op, channels):
  image = make_image(channels)
  pil_image = Image.fromarray(image[..., 0] if channels == 1 else image)
  expected = np.asarray(pil_op(pil_image), np.float32).reshape(image.shape)
  fill = jnp.asarray(FILL[:channels], jnp.float32)
  arg = None if argument is None else jnp.float32(argument)
  got = np.asarray(jax.jit(lambda x: randaugment.apply_op(name, x, arg, fill))(jnp.asarray(image, jnp.float32)))
  assert got.shape == image.shape
  np.testing.assert_array_equal(got, np.round(got))  # 8-bit values, as a PIL image holds
  np.testing.assert_allclose(got, expected, atol=1.0, err_msg=name)
  # The op does something on this image, so the comparison can fail (Color of a grayscale
  # image is the identity in PIL too).
  if not (name == "ColorIncreasing" and channels == 1):
    assert np.abs(got - image).max() > 0


def test_op_arguments_are_timms_level_to_arg():
  timm_aa = pytest.importorskip("timm.data.auto_augment", reason="timm (the reference implementation compared with) is the optional interop extra; CI does not install it")
  import random
  magnitudes = np.array([0.0, 3.3, 8.7, 9.0, 10.0], np.float32)
  for name in randaugment.OPS:
    level_fn = timm_aa.LEVEL_TO_ARG[name]
    if level_fn is None:
      assert randaugment.op_argument(name, magnitudes, False) is None
      continue
    for negate in (False, True):
      got_all = np.asarray(randaugment.op_argument(name, magnitudes, negate))
      for magnitude, got in zip(magnitudes.tolist(), got_all):
        # timm negates when random.random() > 0.5: pin the draw.
        original = random.random
        random.random = (lambda: 0.9) if negate else (lambda: 0.1)
        try:
          (expected,) = level_fn(magnitude, {"translate_pct": 0.45})
        finally:
          random.random = original
        assert float(got) == pytest.approx(expected, abs=1e-5), (name, magnitude, negate)


def test_rand_augment_is_a_function_of_its_keys():
  images = jnp.asarray(np.stack([make_image(seed=s) for s in range(4)]), jnp.float32)
  keys = jax.random.split(jax.random.key(3), 4)

  @jax.jit
  def augment(keys, images, prob):
    return randaugment.rand_augment_batch(keys, images, fill=FILL, prob=prob)
  first, again = np.asarray(augment(keys, images, 0.5)), np.asarray(augment(keys, images, 0.5))
  np.testing.assert_array_equal(first, again)
  other = np.asarray(augment(jax.random.split(jax.random.key(4), 4), images, 0.5))
  assert np.any(first != other)
  # Image by image: each image follows its own key wherever it sits in the batch.
  np.testing.assert_array_equal(np.asarray(augment(keys[::-1], images[::-1], 0.5)), first[::-1])
  assert first.min() >= 0 and first.max() <= 255 and np.all(first == np.round(first))
  # With probability 0 nothing changes but the rounding to 8 bits.
  np.testing.assert_array_equal(np.asarray(augment(keys, images, 0.0)), np.asarray(images))
