"""Tests of sslax.data.augment against independent NumPy references.

The references below re-derive each op from its torchvision definition in
float64 NumPy (colorsys for hue, explicit loops for bilinear / antialiased
resizing), rather than calling the code under test. Compiles dominate the
run time on CPU, so jitted view functions are cached and shared by tests.
"""

import colorsys
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax.data import augment as A

LUMA = np.array([0.2989, 0.587, 0.114])  # torchvision rgb_to_grayscale


# -----------------------------------------------------------------------------
# NumPy references (torchvision definitions)
# -----------------------------------------------------------------------------


def np_gray(x):
  """[H, W, C] -> [H, W, 1]."""
  return x if x.shape[-1] == 1 else (x @ LUMA)[..., None]


def np_brightness(x, f):
  return np.clip(f * x, 0, 1)


def np_contrast(x, f):
  return np.clip(f * x + (1 - f) * np_gray(x).mean(), 0, 1)


def np_saturation(x, f):
  return np.clip(f * x + (1 - f) * np_gray(x), 0, 1)


def np_hue(x, delta):
  out = np.empty_like(x)
  for i in range(x.shape[0]):
    for j in range(x.shape[1]):
      h, s, v = colorsys.rgb_to_hsv(*x[i, j])
      out[i, j] = colorsys.hsv_to_rgb((h + delta) % 1.0, s, v)
  return out


def np_solarize(x, threshold):
  return np.where(x >= threshold, 1 - x, x)


def np_blur(x, sigma, radius):
  """Separable Gaussian, reflect padding, as torchvision's gaussian_blur."""
  d = np.arange(-radius, radius + 1)
  taps = np.exp(-(d**2) / (2 * sigma**2))
  taps /= taps.sum()
  h, w, _ = x.shape
  xp = np.pad(x, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
  x = sum(taps[k] * xp[k : k + h] for k in range(len(taps)))
  xp = np.pad(x, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
  return sum(taps[k] * xp[:, k : k + w] for k in range(len(taps)))


def np_resize_matrix(n_in, n_out):
  """[n_out, n_in] 1-D resize: torch bilinear (align_corners=False) when
  upsampling, PIL / torchvision antialiased bilinear when downsampling."""
  m = np.zeros((n_out, n_in))
  scale = n_in / n_out
  for i in range(n_out):
    if scale <= 1:
      s = max((i + 0.5) * scale - 0.5, 0.0)
      i0 = min(int(np.floor(s)), n_in - 1)
      i1 = min(i0 + 1, n_in - 1)
      lam = s - i0
      m[i, i0] += 1 - lam
      m[i, i1] += lam
    else:
      center = (i + 0.5) * scale
      lo = max(int(center - scale + 0.5), 0)
      hi = min(int(center + scale + 0.5), n_in)
      ws = np.array([max(0.0, 1 - abs((j - center + 0.5) / scale)) for j in range(lo, hi)])
      m[i, lo:hi] = ws / ws.sum()
  return m


def np_crop_resize(x, box, out, flip=False):
  y0, x0, h, w = (int(v) for v in box)
  crop = x[y0 : y0 + h, x0 : x0 + w]
  res = np.einsum("oh,hwc,pw->opc", np_resize_matrix(h, out), crop, np_resize_matrix(w, out))
  return res[:, ::-1] if flip else res


def np_view(key, image, cfg, out):
  """The whole view in NumPy, from the same random draws as augment_image.

  Also returns the pre-solarization image, to skip pixels at the threshold.
  """
  crop_key, key = jax.random.split(key)
  u = np.asarray(jax.random.uniform(key, (A._NUM_DRAWS,)), np.float64)
  h, w, c = image.shape
  box = A.sample_crop_box(crop_key, h, w, cfg.crop_scale, cfg.crop_ratio)
  x = np_crop_resize(image / 255.0, box, out, flip=u[A._FLIP] < cfg.flip_p)

  if u[A._J_APPLY] < cfg.jitter_p:
    ops = [np_brightness, np_contrast] + ([np_saturation] if c == 3 else [])
    strengths = [cfg.brightness, cfg.contrast, cfg.saturation][: len(ops)]
    factors = [
        max(0, 1 - s) + (1 + s - max(0, 1 - s)) * u[A._J_FACTOR + i]
        for i, s in enumerate(strengths)
    ]
    live = [i for i, s in enumerate(strengths) if s > 0]
    order = [live[i] for i in np.argsort(u[A._J_ORDER : A._J_ORDER + len(live)])]
    steps = [functools.partial(ops[i], f=factors[i]) for i in order]
    if c == 3 and cfg.hue > 0:  # hue goes into a uniform slot among the others
      slot = int(np.floor(u[A._J_HUE_SLOT] * (len(live) + 1)))
      delta = cfg.hue * (2 * u[A._J_HUE] - 1)
      steps.insert(slot, functools.partial(np_hue, delta=delta))
    for step in steps:
      x = step(x)

  if c == 3 and u[A._GRAY] < cfg.gray_p:
    x = np.repeat(np_gray(x), 3, axis=-1)
  radius = int(cfg.blur_kernel_frac * out) // 2
  if u[A._BLUR] < cfg.blur_p and radius > 0:
    lo, hi = cfg.blur_sigma
    x = np_blur(x, lo + (hi - lo) * u[A._BLUR_SIGMA], radius)
  pre_solarize = x
  if u[A._SOLARIZE] < cfg.solarize_p:
    x = np_solarize(x, cfg.solarize_threshold)
  return x, pre_solarize


# -----------------------------------------------------------------------------
# Shared jitted functions and data
# -----------------------------------------------------------------------------

# Every op with a probability strictly between 0 and 1, so both sides run.
EVERYTHING = dict(gray_p=0.5, solarize_p=0.5, jitter_p=0.7)
OFF = dict(
    crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
    gray_p=0.0, blur_p=0.0, solarize_p=0.0,
)
CONFIGS = {"all": EVERYTHING, "off": OFF, "flip": {**OFF, "flip_p": 1.0}}


@functools.lru_cache(maxsize=None)
def batch_fn(config_name, out):
  cfg = A.default_view_config(**CONFIGS[config_name])
  return jax.jit(lambda k, x, p: A.augment_batch(k, x, p, cfg, out))


@functools.lru_cache(maxsize=None)
def image_fn(config_name, out):
  cfg = A.default_view_config(**CONFIGS[config_name])
  return jax.jit(lambda k, x: A.augment_image(k, x, cfg, out))


def random_images(b, h, w, c, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (b, h, w, c), dtype=np.uint8)


# Input side, output side per channel count: C=1 downsizes, C=3 upsizes.
SHAPES = {1: (28, 20), 3: (24, 32)}
B = 8


# -----------------------------------------------------------------------------
# Pipeline-level tests
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_dtype_range_and_reference(channels):
  """Jitted, vmapped views equal the NumPy pipeline run on the same draws."""
  side, out = SHAPES[channels]
  images = random_images(B, side, side, channels)
  positions = np.arange(100, 100 + B)
  key = jax.random.key(3)
  views = np.asarray(batch_fn("all", out)(key, images, positions))
  assert views.shape == (B, out, out, channels) and views.dtype == np.float32
  assert views.min() >= 0.0 and views.max() <= 1.0

  cfg = A.default_view_config(**EVERYTHING)
  for b in range(B):
    ref, pre = np_view(jax.random.fold_in(key, positions[b]), images[b], cfg, out)
    away = np.abs(pre - cfg.solarize_threshold) > 1e-4  # solarize is discontinuous
    np.testing.assert_allclose(views[b][away], ref[away], atol=2e-5)


def test_determinism_and_batch_independence():
  side, out = SHAPES[3]
  images = random_images(B, side, side, 3, seed=1)
  positions = np.arange(1000, 1000 + B)
  key = jax.random.key(7)
  views = np.asarray(batch_fn("all", out)(key, images, positions))

  # Same key -> bit-identical; another key -> different.
  np.testing.assert_array_equal(views, np.asarray(batch_fn("all", out)(key, images, positions)))
  other = np.asarray(batch_fn("all", out)(jax.random.key(8), images, positions))
  assert not np.allclose(views, other)

  # Example b is augment_image with fold_in(key, position b).
  single = image_fn("all", out)
  for b in range(B):
    one = np.asarray(single(jax.random.fold_in(key, positions[b]), images[b]))
    np.testing.assert_allclose(views[b], one, atol=1e-6)

  # Permuted batch, and the batch split in two halves (two "devices").
  perm = np.random.default_rng(0).permutation(B)
  permuted = np.asarray(batch_fn("all", out)(key, images[perm], positions[perm]))
  np.testing.assert_allclose(permuted, views[perm], atol=1e-6)
  halves = [
      np.asarray(batch_fn("all", out)(key, images[s], positions[s]))
      for s in (slice(0, B // 2), slice(B // 2, B))
  ]
  np.testing.assert_allclose(np.concatenate(halves), views, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_all_off_is_identity_and_flip(channels):
  side = 16
  images = random_images(4, side, side, channels, seed=2)
  positions = np.arange(4)
  key = jax.random.key(0)
  ident = np.asarray(batch_fn("off", side)(key, images, positions))
  np.testing.assert_allclose(ident, images / 255.0, atol=1e-6)
  flipped = np.asarray(batch_fn("flip", side)(key, images, positions))
  np.testing.assert_allclose(flipped, np.flip(images, axis=2) / 255.0, atol=1e-6)


def test_grayscale_and_solarize_always_on():
  """p = 1 and crop identity: the output is the torchvision op of the input."""
  side = 12
  images = random_images(3, side, side, 3, seed=4)
  key = jax.random.key(1)
  x = images / 255.0
  gray = A.default_view_config(**{**OFF, "gray_p": 1.0})
  got = jax.jit(lambda k, im: A.augment_batch(k, im, jnp.arange(3), gray, side))(key, images)
  np.testing.assert_allclose(got, np.repeat(np_gray(x), 3, axis=-1), atol=1e-6)
  sol = A.default_view_config(**{**OFF, "solarize_p": 1.0, "solarize_threshold": 0.4})
  got = jax.jit(lambda k, im: A.augment_batch(k, im, jnp.arange(3), sol, side))(key, images)
  np.testing.assert_allclose(got, np_solarize(x, 0.4), atol=1e-6)


# -----------------------------------------------------------------------------
# Op-level tests
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_blend_ops_match_torchvision(channels):
  x = np.random.default_rng(5).random((9, 7, channels)).astype(np.float32)
  refs = {A._BRIGHTNESS: np_brightness, A._CONTRAST: np_contrast, A._SATURATION: np_saturation}
  for op, ref in refs.items():
    if op == A._SATURATION and channels == 1:
      continue  # saturation is not applied to grayscale images
    for f in (0.55, 1.0, 1.4):
      got = A._blend_op(jnp.asarray(x), jnp.int32(op), jnp.float32(f))
      np.testing.assert_allclose(got, ref(x.astype(np.float64), f), atol=1e-6)


def test_hue_matches_colorsys():
  x = np.random.default_rng(6).random((6, 5, 3)).astype(np.float32)
  for delta in (-0.1, 0.05):
    got = jnp.clip(A.pix.adjust_hue(jnp.asarray(x), delta), 0, 1)
    np.testing.assert_allclose(got, np_hue(x.astype(np.float64), delta), atol=1e-5)


def test_fixed_order_jitter():
  """jitter_random_order=False: brightness, contrast, saturation, then hue."""
  x = np.random.default_rng(7).random((8, 8, 3)).astype(np.float32)
  cfg = A.default_view_config(jitter_p=1.0, jitter_random_order=False)
  u = np.zeros(A._NUM_DRAWS, np.float32)
  u[A._J_FACTOR : A._J_FACTOR + 3] = (0.9, 0.1, 0.8)
  u[A._J_HUE] = 0.75
  got = A._color_jitter(jnp.asarray(x), jnp.asarray(u), cfg)
  ref = x.astype(np.float64)
  for fn, ui in ((np_brightness, 0.9), (np_contrast, 0.1), (np_saturation, 0.8)):
    ref = fn(ref, 0.6 + 0.8 * ui)
  ref = np_hue(ref, 0.1 * (2 * 0.75 - 1))
  np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("radius", [1, 5])  # the shifted-slices and band-matmul paths
def test_blur_matches_numpy(radius):
  x = np.random.default_rng(8).random((20, 17, 3)).astype(np.float32)
  for sigma in (0.3, 1.7):
    got = A._gaussian_blur(jnp.asarray(x), jnp.float32(sigma), radius)
    np.testing.assert_allclose(got, np_blur(x.astype(np.float64), sigma, radius), atol=1e-6)
  # The "not blurred" kernel is the exact identity.
  np.testing.assert_array_equal(A._gaussian_blur(jnp.asarray(x), jnp.float32(1e-3), radius), x)


def test_blur_kernel_from_sigma_spreads_as_the_sigma_says():
  """blur_kernel "sigma": radius ceil(3 sigma_max), 6 at sigma 2 whatever the side; the
  fraction rule gives 1 at 32 px. An impulse blurred at sigma 2 has variance ~ 4 (the
  3-sigma cut loses < 3% of it), the 3-tap kernel far less."""
  sigma_view = A.default_view_config(blur_kernel="sigma", blur_sigma=(0.1, 2.0))
  assert A._blur_radius(sigma_view, 32) == 6
  assert A._blur_radius(A.default_view_config(), 32) == 1
  impulse = np.zeros((32, 32, 1), np.float32)
  impulse[16, 16] = 1.0
  offsets = np.arange(32) - 16.0

  def variance(radius):
    profile = np.asarray(A._gaussian_blur(jnp.asarray(impulse), jnp.float32(2.0), radius))[:, 16, 0]
    return float(np.sum(profile * offsets**2) / np.sum(profile))
  assert variance(A._blur_radius(sigma_view, 32)) == pytest.approx(4.0, rel=0.03)
  assert variance(1) < 1.0


def test_crop_box_ranges():
  height, width = 300, 200
  scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
  keys = jax.random.split(jax.random.key(0), 2000)
  boxes = jax.jit(jax.vmap(lambda k: A.sample_crop_box(k, height, width, scale, ratio)))(keys)
  y0, x0, h, w = (np.asarray(v) for v in boxes)
  assert np.all((y0 >= 0) & (x0 >= 0) & (h >= 1) & (w >= 1))
  assert np.all((y0 + h <= height) & (x0 + w <= width))
  # Rounding h and w to integers moves area and aspect by at most ~1 pixel.
  area = h * w / (height * width)
  assert area.min() >= scale[0] * 0.97 and area.max() <= scale[1]
  aspect = w / h
  assert aspect.min() >= ratio[0] * 0.97 and aspect.max() <= ratio[1] * 1.03
  # The ranges are covered, not just respected.
  assert area.min() < 0.1 and area.max() > 0.85  # 0.887 is the most that fits 300x200
  assert aspect.min() < 0.8 and aspect.max() > 1.25
  # Offsets are spread over the free room.
  assert np.mean(y0 / np.maximum(height - h, 1)) == pytest.approx(0.5, abs=0.05)


def test_crop_box_fallback():
  """No attempt can fit (scale > 1): torchvision's centred fallback box."""
  key, scale, ratio = jax.random.key(0), (2.0, 3.0), (0.75, 4 / 3)
  cases = {(100, 40): (23, 0, 53, 40), (40, 100): (0, 23, 40, 53), (50, 50): (0, 0, 50, 50)}
  for (height, width), want in cases.items():
    box = A.sample_crop_box(key, height, width, scale, ratio)
    np.testing.assert_array_equal(np.asarray(box), want)


@pytest.mark.parametrize(
    "box, out, flip",
    [
        ((3, 5, 10, 14), 16, False),  # upsampling: plain bilinear
        ((3, 5, 10, 14), 16, True),
        ((2, 1, 20, 26), 8, False),  # downsampling: antialiased
        ((0, 0, 24, 30), 11, True),  # whole image, uneven factors
    ],
)
def test_crop_resize_matches_numpy(box, out, flip):
  x = np.random.default_rng(9).random((24, 30, 3)).astype(np.float32)
  got = A._resample(jnp.asarray(x), *(jnp.int32(v) for v in box), out, flip=flip)
  np.testing.assert_allclose(got, np_crop_resize(x.astype(np.float64), box, out, flip), atol=1e-5)


def test_center_view_and_normalize():
  images = random_images(2, 24, 30, 3, seed=10)
  got = A.center_view(jnp.asarray(images), 16)
  want = np.stack([np_crop_resize(im / 255.0, (0, 0, 24, 30), 16) for im in images])
  assert got.shape == (2, 16, 16, 3) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, atol=1e-5)
  mean, std = np.array([0.2, 0.4, 0.6]), np.array([0.5, 0.25, 2.0])
  np.testing.assert_allclose(A.normalize(got, mean, std), (np.asarray(got) - mean) / std, rtol=1e-5, atol=1e-6)


def test_configs():
  cfg = A.default_view_config()
  assert (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue) == pytest.approx((0.4, 0.4, 0.4, 0.1))
  assert cfg.crop_scale == (0.08, 1.0) and cfg.flip_p == 0.5 and cfg.jitter_p == 0.8
  assert (cfg.gray_p, cfg.blur_p, cfg.solarize_p) == (0.2, 0.5, 0.0)
  strong = A.default_view_config(color_strength=1.0, hue=0.0)
  assert strong.brightness == pytest.approx(0.8) and strong.hue == 0.0
  with pytest.raises(KeyError):
    A.default_view_config(blurr_p=1.0)
  v1, v2 = A.byol_view_configs()
  assert (v1.blur_p, v2.blur_p, v1.solarize_p, v2.solarize_p) == (1.0, 0.1, 0.0, 0.2)
  for v in (v1, v2):
    assert (v.brightness, v.contrast, v.saturation, v.hue) == (0.4, 0.4, 0.2, 0.1)
    assert (v.jitter_p, v.gray_p) == (0.8, 0.2)


@pytest.mark.parametrize(
    "box, out, flip",
    [
        ((3, 5, 10, 14), 16, False),  # upsampling (CIFAR-10's crops always are)
        ((3, 5, 10, 14), 16, True),
        ((2, 1, 20, 26), 8, False),  # downsampling: the kernel widened, as PIL's
        ((0, 0, 24, 30), 32, False),  # the whole image
    ],
)
def test_bicubic_crop_resize_matches_pil(box, out, flip):
  """The on-device bicubic crop against PIL's (torchvision's RandomResizedCrop on a PIL image:
  crop, then resize BICUBIC). PIL rounds to uint8 after each of its two passes: within 1.5/255
  (0.84 to 0.99 levels measured)."""
  from PIL import Image

  image = random_images(1, 24, 30, 3, seed=11)[0]
  y0, x0, h, w = box
  want = Image.fromarray(image).crop((x0, y0, x0 + w, y0 + h)).resize((out, out), Image.BICUBIC)
  want = np.asarray(want, np.float64) / 255.0
  if flip:
    want = want[:, ::-1]
  got = A._resample(jnp.asarray(image, jnp.float32) / 255.0, *(jnp.int32(v) for v in box), out,
                    flip=flip, interpolation="bicubic")
  got = np.clip(np.asarray(got), 0.0, 1.0)
  assert np.abs(got - want).max() <= 1.5 / 255.0
  bilinear = A._resample(jnp.asarray(image, jnp.float32) / 255.0, *(jnp.int32(v) for v in box),
                         out, flip=flip)
  assert np.abs(np.asarray(bilinear) - want).max() > 4.0 / 255.0  # the test tells them apart
