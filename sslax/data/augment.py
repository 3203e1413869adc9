"""SimCLR / BYOL view augmentations on device, as pure jit-able functions.

One view of one image is a pure function of ``(key, image)``:

    random resized crop + horizontal flip   (one resampling, see ``_resample``)
    -> colour jitter, with probability ``jitter_p``, ops in random order
    -> random grayscale
    -> Gaussian blur (separable, reflect padding)
    -> solarization
    -> float32 in [0, 1]

The order and the op definitions follow torchvision (which SimCLR and BYOL
re-implementations use): brightness, contrast and saturation are blends
``clip(f * x + (1 - f) * target, 0, 1)`` with target 0, the mean of the
grayscale image, and the grayscale image respectively; hue shifts H in HSV.

For a full-resolution dataset (ImageNet-like) the random resized crop is taken on the host
from the whole image (sslax/data/crops.py) and ``cropped=True`` skips it here; the flip and
everything after it stay on the device.

A batch is augmented with ``augment_batch``: the key of each example is
``fold_in(key, position)`` with its global stream position, so a view never
depends on the batch (or device shard) it is computed in.

Speed notes (this runs inside the training step on a 2-core CPU):
  * Under ``vmap`` a per-example ``lax.cond`` runs both branches and selects,
    so every random "apply with probability p" is written as an op whose
    parameters are set to the identity when not applied (brightness factor 1,
    a delta blur kernel, ...) or, for the few ops where that is not exact, as
    a ``jnp.where`` select. Either way the op costs the same as if always
    applied; ops whose probability (or strength) is 0 in the config are
    skipped at trace time, as the config is static.
  * All scalar random draws of a view come from one ``uniform`` call (one
    threefry evaluation) and a second for the crop box; the layout is fixed,
    so switching an op off in the config does not change the other draws.

The config (an ``ml_collections.ConfigDict``) is read at trace time: close
over it (or mark it static) when jitting.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import dm_pix as pix
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax.errors import require

__all__ = [
    "default_view_config",
    "byol_view_configs",
    "sample_crop_box",
    "augment_image",
    "augment_batch",
    "center_view",
    "view_size",
    "normalize",
]


# -----------------------------------------------------------------------------
# Configs
# -----------------------------------------------------------------------------


def default_view_config(**overrides) -> ml_collections.ConfigDict:
  """SimCLR's ImageNet view config (Chen et al. 2020, appendix A).

  ``color_strength`` (default 0.5) sets brightness/contrast/saturation to
  0.8 * s and hue to 0.2 * s, unless those are overridden explicitly. Any
  other keyword overrides the field of that name; unknown names raise.
  """
  strength = overrides.pop("color_strength", 0.5)
  cfg = ml_collections.ConfigDict(
      dict(
          # Random resized crop, torchvision's rule (area fraction, w/h ratio).
          crop_scale=(0.08, 1.0),
          crop_ratio=(3.0 / 4.0, 4.0 / 3.0),
          flip_p=0.5,
          # Colour jitter: applied with probability jitter_p; factors drawn as
          # torchvision: U[max(0, 1 - v), 1 + v], hue delta U[-hue, hue].
          jitter_p=0.8,
          brightness=0.8 * strength,
          contrast=0.8 * strength,
          saturation=0.8 * strength,
          hue=0.2 * strength,
          # Random op order per view (torchvision ColorJitter); False gives
          # the fixed order brightness, contrast, saturation, hue.
          jitter_random_order=True,
          gray_p=0.2,
          # Gaussian blur: sigma ~ U(blur_sigma) in output pixels. blur_kernel "fraction":
          # kernel side blur_kernel_frac * out_size made odd (SimCLR's TF code and BYOL:
          # out_size // 10); "sigma": radius ceil(3 * max sigma), no size cap, as PIL's
          # GaussianBlur(radius=sigma) of the PyTorch sources (MoCo, solo-learn, ...).
          blur_p=0.5,
          blur_sigma=(0.1, 2.0),
          blur_kernel="fraction",
          blur_kernel_frac=0.1,
          solarize_p=0.0,
          solarize_threshold=0.5,
          # Output side in pixels; 0: config.data.image_size. Multi-crop (DINO, SwAV)
          # gives its small local views their own size.
          size=0,
          # Resampling of the random resized crop: "bilinear" (torchvision's default) or
          # "bicubic" (PIL's, a = -0.5: solo-learn, DINO, MAE, ...), both antialiased
          # when downsampling; on the host for full-resolution images
          # (sslax/data/crops.py), on the device for small in-memory ones (_resample).
          interpolation="bilinear",
      )
  )
  unknown = sorted(set(overrides) - set(cfg.keys()))
  if unknown:
    raise KeyError(f"unknown view config fields: {unknown}")
  for name, value in overrides.items():
    cfg[name] = tuple(value) if isinstance(value, list) else value
  return cfg


def validate_view(view: ml_collections.ConfigDict, key: str) -> None:
  """Raises ConfigError for a view config (at config.KEY) that cannot work."""
  for prob in [k for k in view.keys() if k.endswith("_p")]:
    require(0.0 <= view[prob] <= 1.0, f"{key}.{prob}", f"a probability in [0, 1], got {view[prob]}")
  require(view.get("blur_kernel", "fraction") in BLUR_KERNELS, f"{key}.blur_kernel",
          f"{view.get('blur_kernel')!r} is not one of {list(BLUR_KERNELS)}")
  lo, hi = view.crop_scale
  require(0 < lo <= hi <= 1, f"{key}.crop_scale", f"needs 0 < min <= max <= 1, got {(lo, hi)}")
  interpolation = view.get("interpolation", "bilinear")
  require(interpolation in ("bilinear", "bicubic"), f"{key}.interpolation",
          f"'bilinear' or 'bicubic', got {interpolation!r}")


def crop_flip_view_config(crop_scale: tuple[float, float]) -> ml_collections.ConfigDict:
  """A random resized crop of `crop_scale` and a horizontal flip, nothing else: the view of
  the supervised baselines and of the self-prediction methods (MAE, data2vec, ...)."""
  return default_view_config(crop_scale=crop_scale, jitter_p=0.0, gray_p=0.0, blur_p=0.0,
                             solarize_p=0.0)


def byol_view_configs() -> Tuple[ml_collections.ConfigDict, ml_collections.ConfigDict]:
  """The two asymmetric BYOL views (Grill et al. 2020, table 6)."""
  common = dict(
      brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, jitter_p=0.8, gray_p=0.2
  )
  view1 = default_view_config(blur_p=1.0, solarize_p=0.0, **common)
  view2 = default_view_config(blur_p=0.1, solarize_p=0.2, **common)
  return view1, view2


# -----------------------------------------------------------------------------
# Random draws and stage boundaries
# -----------------------------------------------------------------------------


def _materialize(x: jax.Array) -> jax.Array:
  """Stage boundary: stops XLA from fusing across it.

  Without it XLA CPU fuses crop -> jitter ops into a few loops that recompute
  their producers (the crop's gathers, earlier jitter ops) once per consumer,
  e.g. for each contrast mean: 4x slower at 224 px (measured; neutral at 28).
  While prototyping we also hit a jaxlib 0.12.0.1 CPU fusion miscompile of a
  vmapped chain of >= 4 contrast-style blends around adjust_hue (outputs off
  by up to 1.0, gone with barriers or --xla_disable_hlo_passes=fusion); this
  module's graph does not trigger it, and tests/test_augment.py checks the
  jitted, vmapped views against a NumPy reference.
  """
  return jax.lax.optimization_barrier(x)


# Layout of the per-view uniform draws (fixed, whatever the config).
_FLIP = 0
_J_APPLY = 1
_J_FACTOR = 2  # 2, 3, 4: brightness, contrast, saturation factors
_J_HUE = 5
_J_ORDER = 6  # 6, 7, 8: keys of the blend-op order
_J_HUE_SLOT = 9
_GRAY = 10
_BLUR = 11
_BLUR_SIGMA = 12
_SOLARIZE = 13
_NUM_DRAWS = 14


# -----------------------------------------------------------------------------
# Random resized crop (+ flip) as one resampling
# -----------------------------------------------------------------------------


def sample_crop_box(
    key: jax.Array,
    height: int,
    width: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    attempts: int = 10,
) -> Tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """torchvision's RandomResizedCrop.get_params, vectorised; returns int32 scalars.

  Draws ``attempts`` (area fraction, log-uniform aspect w/h) pairs at once and
  keeps the first whose rounded box fits in the image; if none fits, falls
  back to the largest centred box with aspect clipped into ``ratio``.
  ``height`` and ``width`` are static Python ints.

  Returns:
    (y0, x0, h, w): the box is ``image[y0:y0 + h, x0:x0 + w]``.
  """
  u = jax.random.uniform(key, (2 * attempts + 2,), jnp.float32)
  area = float(height * width)
  target_area = area * (scale[0] + (scale[1] - scale[0]) * u[:attempts])
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  aspect = jnp.exp(log_lo + (log_hi - log_lo) * u[attempts : 2 * attempts])
  # Round half to even, like Python's round() in torchvision.
  ws = jnp.round(jnp.sqrt(target_area * aspect)).astype(jnp.int32)
  hs = jnp.round(jnp.sqrt(target_area / aspect)).astype(jnp.int32)
  fits = (ws > 0) & (ws <= width) & (hs > 0) & (hs <= height)
  first = jnp.argmax(fits)  # first fitting attempt (0 if none; masked below)
  any_fits = jnp.any(fits)

  # Fallback box: static, computed in Python exactly as torchvision does.
  in_ratio = width / height
  if in_ratio < min(ratio):
    fw, fh = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    fh, fw = height, int(round(height * max(ratio)))
  else:
    fw, fh = width, height

  h = jnp.where(any_fits, hs[first], fh)
  w = jnp.where(any_fits, ws[first], fw)
  # randint(0, H - h + 1) from a uniform; the min() guards u -> 1 rounding.
  y0 = jnp.minimum(jnp.floor(u[-2] * (height - h + 1)).astype(jnp.int32), height - h)
  x0 = jnp.minimum(jnp.floor(u[-1] * (width - w + 1)).astype(jnp.int32), width - w)
  y0 = jnp.where(any_fits, y0, (height - fh) // 2)
  x0 = jnp.where(any_fits, x0, (width - fw) // 2)
  return y0, x0, h, w


def _cubic(d: jax.Array) -> jax.Array:
  """PIL's bicubic kernel (Keys, a = -0.5) at distance d >= 0, support 2."""
  a = -0.5
  near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
  far = (((d - 5.0) * d + 8.0) * d - 4.0) * a
  return jnp.where(d < 1.0, near, jnp.where(d < 2.0, far, 0.0))


# Interpolation -> (filter of the distance in input pixels / support, filter's half-width).
_FILTERS = {"bilinear": (lambda d: jnp.maximum(0.0, 1.0 - d), 1),
            "bicubic": (_cubic, 2)}


def _resample_taps(start, length, in_size: int, out_size: int, flip=False,
                   interpolation: str = "bilinear"):
  """Interpolation taps resampling the 1-D window [start, start + length).

  Bilinear with half-pixel centres (torchvision / PIL, align_corners=False),
  or PIL's bicubic (a = -0.5, half-width 2 pixels), written as PIL writes them:
  a filter over the window renormalised per sample, which
  (a) clamps samples to the window edge exactly like cropping then resizing,
  and (b) widens the triangle by length / out_size when downsampling, i.e.
  antialiasing as torchvision's ``antialias=True`` / PIL. The number of taps
  is static: the most a window of at most ``in_size`` pixels can need.
  ``flip`` mirrors the output samples, so a horizontal flip costs nothing.

  Returns:
    index int32 [out_size, T] (clipped into the image) and weight float32
    [out_size, T] (0 for taps outside the window; rows sum to 1).
  """
  kernel, half_width = _FILTERS[interpolation]
  num_taps = max(2 * half_width, math.ceil(2 * half_width * max(1.0, in_size / out_size)))
  length = jnp.asarray(length, jnp.float32)
  start = jnp.asarray(start, jnp.float32)
  scale = length / out_size
  i = jnp.arange(out_size, dtype=jnp.float32)
  i = jnp.where(flip, out_size - 1 - i, i)
  src = start + (i + 0.5) * scale - 0.5  # [out] source coordinate of each sample
  stretch = jnp.maximum(scale, 1.0)  # the filter's widening when downsampling
  support = half_width * stretch  # the filter's half-width, in input pixels
  # Nonzero weights need |j - src| < support: at most num_taps integers from
  # the first one above src - support.
  j = jnp.floor(src - support)[:, None] + 1 + jnp.arange(num_taps, dtype=jnp.float32)
  w = kernel(jnp.abs(j - src[:, None]) / stretch)
  w = w * ((j >= start) & (j < start + length))
  w = w / jnp.sum(w, axis=1, keepdims=True)
  return jnp.clip(j, 0, in_size - 1).astype(jnp.int32), w


def _resample_rows(x: jax.Array, index: jax.Array, weight: jax.Array) -> jax.Array:
  """Resample axis 0: x [N, ...] -> [out, ...], out[o] = sum_t w[o, t] x[index[o, t]]."""
  extra = (None,) * (x.ndim - 1)
  return sum(
      weight[(slice(None), t) + extra] * x[index[:, t]] for t in range(index.shape[1])
  )


def _resample(image: jax.Array, y0, x0, h, w, out_size: int, flip=False,
              interpolation: str = "bilinear") -> jax.Array:
  """Crop box [y0:y0+h, x0:x0+w] of image [H, W, C], resized to [out, out, C].
  Bicubic overshoots: as PIL (horizontal pass, clip to uint8, vertical pass) it resamples
  the columns first and clips between the passes; the caller clips the result.

  Why our own and not jax.image.scale_and_translate: that one blends in the
  pixels just outside the box at its edges (torchvision crops first) and
  builds dense [out, H] kernels, i.e. two matmuls; gathering the (usually 2)
  taps per output row, transposing and doing the same for columns is ~5-10x
  faster on CPU (whole-row gathers are contiguous copies).
  """
  height, width, _ = image.shape
  row_taps = _resample_taps(y0, h, height, out_size, interpolation=interpolation)
  col_taps = _resample_taps(x0, w, width, out_size, flip, interpolation)
  if interpolation == "bicubic":
    cols = _resample_rows(jnp.swapaxes(image, 0, 1), *col_taps)  # [out, H, C]
    cols = jnp.clip(cols, 0.0, 1.0)
    return _resample_rows(jnp.swapaxes(cols, 0, 1), *row_taps)  # [out, out, C]
  rows = _resample_rows(image, *row_taps)  # [out, W, C]
  cols = _resample_rows(jnp.swapaxes(rows, 0, 1), *col_taps)  # [out, out, C]
  return jnp.swapaxes(cols, 0, 1)


# -----------------------------------------------------------------------------
# Colour ops (torchvision definitions)
# -----------------------------------------------------------------------------


# Rec. 601 luma weights, as torchvision's rgb_to_grayscale and dm-pix's "rec601".
_LUMA = (0.2989, 0.587, 0.114)


def _gray(x: jax.Array) -> jax.Array:
  """Luma [H, W, 1] of x [H, W, C]; identity for C = 1.

  Same weights as pix.rgb_to_grayscale, but written as three multiply-adds:
  its tensordot lowers to a dot with contraction size 3, ~2x slower on CPU.
  """
  if x.shape[-1] == 1:
    return x
  return _LUMA[0] * x[..., 0:1] + _LUMA[1] * x[..., 1:2] + _LUMA[2] * x[..., 2:3]


# Op ids of the blend-type jitter ops, which share one implementation.
_BRIGHTNESS, _CONTRAST, _SATURATION = 0, 1, 2


def _blend_op(x: jax.Array, op, factor) -> jax.Array:
  """Brightness / contrast / saturation chosen by a traced ``op`` id.

  torchvision: all three are clip(f * x + (1 - f) * target, 0, 1) with target
  0 / mean(gray(x)) / gray(x). Written ourselves rather than with dm-pix's
  adjust_* because those are TF's definitions (additive brightness,
  per-channel contrast mean, HSV saturation); sharing one formula also lets a
  per-example *random* op order be a cheap select of the target instead of a
  ``lax.switch`` that vmap would turn into all branches.
  factor == 1 is the exact identity on [0, 1] inputs.
  """
  gray = _gray(x)  # [H, W, 1]
  target = jnp.where(
      op == _BRIGHTNESS, 0.0, jnp.where(op == _CONTRAST, jnp.mean(gray), gray)
  )
  return _materialize(jnp.clip(factor * x + (1.0 - factor) * target, 0.0, 1.0))


def _factor(u, strength: float):
  """torchvision's factor range U[max(0, 1 - s), 1 + s] from a uniform u."""
  lo, hi = max(0.0, 1.0 - strength), 1.0 + strength
  return lo + (hi - lo) * u


def _color_jitter(x: jax.Array, u: jax.Array, cfg) -> jax.Array:
  """torchvision ColorJitter on x [H, W, C] in [0, 1], applied if u[J_APPLY] < p.

  The random order of the four ops is realised exactly with one hue
  evaluation (hue is the only costly op): a uniform permutation of 4 ops is a
  uniform order of the three blend ops times a uniform insertion slot for hue.
  So the blend ops run in two passes of three slots, before and after hue,
  each slot on (its op) or off (factor 1) depending on the hue slot. For
  C = 1 saturation and hue are identities (torchvision) and are not built.
  """
  rgb = x.shape[-1] == 3
  apply = u[_J_APPLY] < cfg.jitter_p
  strengths = [cfg.brightness, cfg.contrast] + ([cfg.saturation] if rgb else [])
  ops = [op for op, s in enumerate(strengths) if s > 0]  # static: skip strength 0
  factors = jnp.stack([_factor(u[_J_FACTOR + op], s) for op, s in enumerate(strengths)])
  use_hue = rgb and cfg.hue > 0
  if not ops and not use_hue:
    return x

  if cfg.jitter_random_order:
    order = jnp.asarray(ops)[jnp.argsort(u[_J_ORDER : _J_ORDER + len(ops)])]
    hue_slot = jnp.floor(u[_J_HUE_SLOT] * (len(ops) + 1)).astype(jnp.int32)
  else:
    order = jnp.asarray(ops)
    hue_slot = jnp.int32(len(ops))  # fixed order b, c, s, then hue

  def blend_pass(x, active_if):
    for k in range(len(ops)):
      op = order[k]
      on = apply & active_if(k)
      x = _blend_op(x, op, jnp.where(on, factors[op], 1.0))
    return x

  if not use_hue:
    return blend_pass(x, lambda k: True)
  x = blend_pass(x, lambda k: k < hue_slot)
  delta = cfg.hue * (2.0 * u[_J_HUE] - 1.0)
  # HSV round trip is not bit-exact at delta 0, hence a select.
  x = jnp.where(apply, jnp.clip(pix.adjust_hue(x, delta), 0.0, 1.0), x)
  x = _materialize(x)
  return blend_pass(x, lambda k: k >= hue_slot)


# -----------------------------------------------------------------------------
# Blur and solarization
# -----------------------------------------------------------------------------


def _gaussian_blur(x: jax.Array, sigma, radius: int) -> jax.Array:
  """Separable Gaussian blur of x [H, W, C], kernel 2 * radius + 1, reflect padding.

  Written ourselves rather than with pix.gaussian_blur because: torchvision
  pads by reflection (dm-pix / TF SimCLR pad with zeros, which darkens the
  border, a large part of a 28x28 image); and a per-example sigma under vmap
  turns dm-pix's depthwise conv into a grouped conv, ~10x slower on CPU.
  A delta kernel (see augment_image) makes it the exact identity.
  """
  offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  taps = jnp.exp(-(offsets**2) / (2.0 * sigma**2))
  taps = taps / jnp.sum(taps)
  blur_axis0 = _blur_axis0_shifts if radius <= _MAX_SHIFT_RADIUS else _blur_axis0_band
  x = blur_axis0(x, taps, radius)
  x = blur_axis0(jnp.swapaxes(x, 0, 1), taps, radius)
  return jnp.swapaxes(x, 0, 1)


# Few taps: a weighted sum of shifted slices fuses into one cheap loop (3x
# faster than a matmul at 28 px). Many taps (23 at 224 px): that loop runs at
# ~2 GFLOP/s on CPU, while a dense band-matrix matmul, 10x the flops, is ~1.7x
# faster overall (measured, B=64 224x224x3).
_MAX_SHIFT_RADIUS = 3


def _blur_axis0_shifts(x: jax.Array, taps: jax.Array, radius: int) -> jax.Array:
  """Convolve axis 0 of x [N, ...] with taps [2r + 1], reflect padding."""
  n = x.shape[0]
  pad = [(radius, radius)] + [(0, 0)] * (x.ndim - 1)
  xp = jnp.pad(x, pad, mode="reflect")
  return sum(taps[k] * xp[k : k + n] for k in range(2 * radius + 1))


def _blur_axis0_band(x: jax.Array, taps: jax.Array, radius: int) -> jax.Array:
  """Same as _blur_axis0_shifts, as one [N, N] band-matrix matmul.

  The reflect padding is folded into the matrix via a static one-hot table:
  band[i, j] = sum_k taps[k] * [reflect(i + k - r) == j].
  """
  n = x.shape[0]
  src = np.arange(n)[:, None] + np.arange(-radius, radius + 1)[None, :]  # [N, K]
  src = np.abs(src)  # reflect at 0 (no edge repeat, like jnp.pad "reflect")
  src = np.where(src > n - 1, 2 * (n - 1) - src, src)
  onehot = (src[:, :, None] == np.arange(n)[None, None, :]).astype(np.float32)
  band = jnp.einsum("k,ikj->ij", taps, onehot)  # [N, N]
  return jnp.tensordot(band, x, axes=1)


BLUR_KERNELS = ("fraction", "sigma")


def _blur_radius(cfg, out_size: int) -> int:
  """"fraction" (SimCLR): kernel = int(frac * side), radius = kernel // 2 (kernel 2r + 1).
  "sigma": radius ceil(3 * the largest sigma), where a Gaussian's taps fall below 1.2% of
  its peak: the whole kernel at any side (3 taps at 32 px under "fraction" made sigma 2
  act like sigma 0.8)."""
  if cfg.get("blur_kernel", "fraction") == "sigma":
    radius = math.ceil(3 * cfg.blur_sigma[1])
  else:
    radius = int(cfg.blur_kernel_frac * out_size) // 2
  return min(radius, out_size - 1)  # reflect padding needs radius < side


# -----------------------------------------------------------------------------
# Views
# -----------------------------------------------------------------------------


def view_size(cfg, image_size: int) -> int:
  """The output side of a view: its own ``size``, or the dataset's ``image_size``."""
  return cfg.get("size", 0) or image_size


def augment_image(key: jax.Array, image: jax.Array, cfg, out_size: int,
                  cropped: bool = False) -> jax.Array:
  """One random view of one image.

  Args:
    key: PRNG key (raw uint32[2] or typed); the output is a pure function of
      (key, image) for a given cfg and out_size.
    image: uint8 [H, W, C], C = 1 (grayscale) or 3 (RGB). Any H, W, also
      smaller than out_size.
    cfg: a view config (``default_view_config``), read at trace time.
    out_size: static side of the square output.
    cropped: the image is this view's random resized crop already, taken on the host from
      the full-resolution image (sslax/data/crops.py), [out_size, out_size, C]: only the
      flip is drawn here; every other draw is the same as with the crop.

  Returns:
    float32 [out_size, out_size, C] in [0, 1].
  """
  height, width, channels = image.shape
  if channels not in (1, 3):
    raise ValueError(f"expected 1 or 3 channels, got image of shape {image.shape}")
  crop_key, key = jax.random.split(key)
  u = jax.random.uniform(key, (_NUM_DRAWS,), jnp.float32)

  # Crop + flip + resize, one resampling; uint8 -> [0, 1] first.
  x = image.astype(jnp.float32) * (1.0 / 255.0)
  if cropped:
    if (height, width) != (out_size, out_size):
      raise ValueError(f"a host-cropped view must be {out_size}x{out_size}, got {image.shape}")
    x = jnp.where(u[_FLIP] < cfg.flip_p, x[:, ::-1], x)
  else:
    y0, x0, h, w = sample_crop_box(crop_key, height, width, cfg.crop_scale, cfg.crop_ratio)
    interpolation = cfg.get("interpolation", "bilinear")
    x = _resample(x, y0, x0, h, w, out_size, flip=u[_FLIP] < cfg.flip_p,
                  interpolation=interpolation)
    if interpolation != "bilinear":  # bicubic overshoots; the jitter expects [0, 1]
      x = jnp.clip(x, 0.0, 1.0)
  x = _materialize(x)

  if cfg.jitter_p > 0:
    x = _color_jitter(x, u, cfg)

  if channels == 3 and cfg.gray_p > 0:  # grayscale is the identity for C = 1
    x = jnp.where(u[_GRAY] < cfg.gray_p, _gray(x), x)  # [H, W, 1] broadcasts to C

  radius = _blur_radius(cfg, out_size)
  if cfg.blur_p > 0 and radius > 0:
    lo, hi = cfg.blur_sigma
    sigma = lo + (hi - lo) * u[_BLUR_SIGMA]
    # Not blurred -> sigma tiny -> delta kernel: exp(-1/2e-6) == 0 in float32.
    sigma = jnp.where(u[_BLUR] < cfg.blur_p, sigma, 1e-3)
    x = _gaussian_blur(x, sigma, radius)

  if cfg.solarize_p > 0:
    solarized = pix.solarize(x, cfg.solarize_threshold)
    x = jnp.where(u[_SOLARIZE] < cfg.solarize_p, solarized, x)

  # Every op above maps [0, 1] into [0, 1] up to float rounding.
  return jnp.clip(x, 0.0, 1.0)


def augment_batch(
    key: jax.Array, images: jax.Array, positions: jax.Array, cfg, out_size: int,
    cropped: bool = False,
) -> jax.Array:
  """Views of a batch: example b uses ``fold_in(key, positions[b])``.

  Args:
    key: PRNG key shared by the whole (global) batch, e.g. one per step & view.
    images: uint8 [B, H, W, C].
    positions: int [B], each example's global position in the data stream, so
      its view does not depend on the batch or device it is computed on
      (fold_in takes them as 32-bit integers).
    cfg, out_size, cropped: as ``augment_image``.

  Returns:
    float32 [B, out_size, out_size, C] in [0, 1].
  """

  def one(position, image):
    return augment_image(jax.random.fold_in(key, position), image, cfg, out_size, cropped)

  return jax.vmap(one)(positions, images)


def center_view(images: jax.Array, out_size: int) -> jax.Array:
  """Evaluation view: uint8 [B, H, W, C] -> float32 [B, out, out, C] in [0, 1].

  Resizes the whole image (no crop), with the same bilinear / antialiased
  resampling as the training views.
  """
  _, height, width, _ = images.shape

  def one(image):
    x = image.astype(jnp.float32) * (1.0 / 255.0)
    return _resample(x, 0, 0, height, width, out_size)

  return jnp.clip(jax.vmap(one)(images), 0.0, 1.0)


def normalize(x: jax.Array, mean, std) -> jax.Array:
  """Per-channel (x - mean) / std; mean, std are [C] (or scalars)."""
  mean = jnp.asarray(mean, x.dtype)
  std = jnp.asarray(std, x.dtype)
  return (x - mean) / std
