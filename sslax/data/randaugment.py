"""RandAugment (Cubuk et al. 2020) on the device, as timm's "rand-m9-mstd0.5-inc1" applies it
in MAE's fine-tuning (mae/util/datasets.py build_transform -> timm create_transform ->
timm/data/auto_augment.py rand_augment_transform):

  * `num_layers` (timm's n, default 2) ops per image, each chosen uniformly with replacement
    from the 15 of `OPS` (timm's _RAND_INCREASING_TRANSFORMS, "inc1") and applied with
    probability `prob` 0.5;
  * each applied op draws its magnitude from N(m, mstd) = N(9, 0.5), clipped to [0, 10],
    and maps it to its argument as timm's *_level_to_arg (see `op_argument`), with a random
    sign for the signed ones;
  * the ops are PIL's (ImageOps, ImageEnhance, Image.transform) on 8-bit images: the image
    is rounded to integers in [0, 255] before the first op and after each, as a PIL image is;
  * the geometric ops fill with the dataset's mean pixel (timm's img_mean hparam).

Written here because dm-pix has only some of the ops, and its enhancements are not PIL's:
dm-pix `solarize` and `affine_transform` are used; PIL's Color, Contrast, Brightness and
Sharpness blend with a degenerate image (grayscale, mean gray, black, 3x3 smoothed) and
truncate, AutoContrast, Equalize and Posterize are lookup tables, and none is in dm-pix.
Departure: the geometric ops resample bilinearly (dm-pix has orders 0 and 1); MAE's timm
transform asks for bicubic.

Images are float [H, W, C] with values in [0, 255] (C = 1 or 3); keys one per image.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp

# timm's _RAND_INCREASING_TRANSFORMS, in its order.
OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
       "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
       "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
MAX_LEVEL = 10.0  # timm's _LEVEL_DENOM: magnitude 10 is the strongest
TRANSLATE_PCT = 0.45  # timm's translate_pct default


def quantize(x: jax.Array) -> jax.Array:
  return jnp.clip(jnp.round(x), 0.0, 255.0)


def luminance(x: jax.Array) -> jax.Array:
  """PIL's convert("L") of an RGB image (ITU-R 601-2 in its fixed point) -> [H, W, 1]."""
  if x.shape[-1] == 1:
    return x
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  return jnp.floor((19595 * r + 38470 * g + 7471 * b + 32768) / 65536)[..., None]


def blend(degenerate: jax.Array, x: jax.Array, factor) -> jax.Array:
  """PIL's Image.blend(degenerate, x, factor): clipped to [0, 255], then truncated."""
  return jnp.floor(jnp.clip(degenerate + factor * (x - degenerate), 0.0, 255.0))


def auto_contrast(x: jax.Array) -> jax.Array:
  """ImageOps.autocontrast (cutoff 0): each channel's range stretched to [0, 255]."""
  lo = jnp.min(x, axis=(0, 1), keepdims=True)
  hi = jnp.max(x, axis=(0, 1), keepdims=True)
  scale = 255.0 / jnp.maximum(hi - lo, 1.0)
  return jnp.where(hi > lo, jnp.clip(jnp.floor(x * scale - lo * scale), 0.0, 255.0), x)


def equalize_channel(channel: jax.Array) -> jax.Array:
  """ImageOps.equalize of one channel [H, W]: lut[i] = (step // 2 + #pixels below i) // step,
  step = (#pixels - #pixels of the brightest value) // 255; step 0: unchanged."""
  values = channel.astype(jnp.int32).reshape(-1)
  histogram = jnp.zeros(256, jnp.int32).at[values].add(1)
  step = (values.size - histogram[jnp.max(values)]) // 255
  below = jnp.cumsum(histogram) - histogram
  lut = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), 255).astype(channel.dtype)
  return jnp.where(step > 0, lut[values].reshape(channel.shape), channel)


def equalize(x: jax.Array) -> jax.Array:
  return jnp.stack([equalize_channel(x[..., c]) for c in range(x.shape[-1])], axis=-1)


def posterize(x: jax.Array, bits) -> jax.Array:
  """ImageOps.posterize: keep the top `bits` bits (0 to 8) of each value."""
  unit = 2.0 ** (8 - bits)
  return jnp.floor(x / unit) * unit


def solarize(x: jax.Array, threshold) -> jax.Array:
  """ImageOps.solarize: values >= threshold inverted."""
  return dm_pix.solarize(x / 255.0, threshold / 255.0) * 255.0


def solarize_add(x: jax.Array, add, threshold: float = 128.0) -> jax.Array:
  """timm's solarize_add: values below threshold raised by `add`, capped at 255."""
  return jnp.where(x < threshold, jnp.minimum(x + add, 255.0), x)


def color(x: jax.Array, factor) -> jax.Array:
  """ImageEnhance.Color: blend with the grayscale image."""
  return blend(jnp.broadcast_to(luminance(x), x.shape), x, factor)


def contrast(x: jax.Array, factor) -> jax.Array:
  """ImageEnhance.Contrast: blend with the image's mean gray, int(mean + 0.5)."""
  return blend(jnp.floor(jnp.mean(luminance(x)) + 0.5), x, factor)


def brightness(x: jax.Array, factor) -> jax.Array:
  """ImageEnhance.Brightness: blend with black."""
  return blend(jnp.zeros_like(x), x, factor)


def sharpness(x: jax.Array, factor) -> jax.Array:
  """ImageEnhance.Sharpness: blend with ImageFilter.SMOOTH (3x3 kernel, centre 5, others 1,
  over 13; the border pixels are left as they are)."""
  padded = jnp.pad(x, ((1, 1), (1, 1), (0, 0)))
  h, w = x.shape[:2]
  total = sum(padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))
  smooth = quantize((total + 4 * x) / 13)
  rows, cols = jnp.arange(h)[:, None, None], jnp.arange(w)[None, :, None]
  border = (rows == 0) | (rows == h - 1) | (cols == 0) | (cols == w - 1)
  return blend(jnp.where(border, x, smooth), x, factor)


def affine(x: jax.Array, matrix, fill: jax.Array) -> jax.Array:
  """PIL's Image.transform(size, AFFINE, (a, b, c, d, e, f)), bilinear: the output pixel at
  column u, row v samples the input at (a u' + b v' + c, d u' + e v' + f), u' = u + 0.5,
  v' = v + 0.5 (PIL's pixel centres); a point outside [0, W) x [0, H) takes `fill` [C], one
  inside interpolates its neighbours with the edge pixels repeated (PIL's bilinear_filter)."""
  a, b, c, d, e, f = matrix
  h, w = x.shape[:2]
  # In (row, column, channel) index coordinates of the image padded by one edge pixel, for
  # output and input alike: input = M @ output + offset.
  zero = jnp.zeros_like(jnp.asarray(a, jnp.float32))
  m = jnp.array([[e, d, zero], [b, a, zero], [zero, zero, zero + 1.0]], jnp.float32)
  offset = jnp.stack([f + 0.5 - 0.5 * (d + e), c + 0.5 - 0.5 * (a + b), zero]).astype(jnp.float32)
  padded = jnp.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
  moved = dm_pix.affine_transform(padded, m, offset=offset, order=1, mode="nearest")[1:h + 1, 1:w + 1]
  v, u = jnp.arange(h, dtype=jnp.float32)[:, None] + 0.5, jnp.arange(w, dtype=jnp.float32)[None, :] + 0.5
  col, row = a * u + b * v + c, d * u + e * v + f
  inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
  return jnp.where(inside[..., None], moved, fill)


def affine_matrix(name: str, argument, height: int, width: int) -> tuple:
  """The (a, b, c, d, e, f) PIL transform of a geometric op of OPS (timm's shear_x, shear_y,
  translate_x_rel, translate_y_rel; Image.rotate(degrees) about the centre, counter-clockwise,
  as its own matrix)."""
  one, zero = jnp.float32(1.0), jnp.float32(0.0)
  argument = jnp.asarray(argument, jnp.float32)
  if name == "Rotate":
    angle = -jnp.deg2rad(argument)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    return cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy
  return {"ShearX": (one, argument, zero, zero, one, zero),
          "ShearY": (one, zero, zero, argument, one, zero),
          "TranslateXRel": (one, zero, argument * width, zero, one, zero),
          "TranslateYRel": (one, zero, zero, zero, one, argument * height)}[name]


GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


def op_argument(name: str, magnitude, negate):
  """timm's level_to_arg of op `name` at `magnitude` in [0, 10]; negate: the random sign
  of the signed ones. None for the ops without an argument."""
  level = magnitude / MAX_LEVEL
  sign = jnp.where(negate, -1.0, 1.0)
  if name == "Rotate":
    return sign * 30.0 * level
  if name == "PosterizeIncreasing":
    return 4.0 - jnp.floor(4.0 * level)
  if name == "SolarizeIncreasing":
    return 256.0 - jnp.minimum(256.0, jnp.floor(256.0 * level))
  if name == "SolarizeAdd":
    return jnp.minimum(128.0, jnp.floor(110.0 * level))
  if name.endswith("Increasing"):  # Color, Contrast, Brightness, Sharpness
    return jnp.maximum(0.1, 1.0 + sign * 0.9 * level)
  if name in ("ShearX", "ShearY"):
    return sign * 0.3 * level
  if name in ("TranslateXRel", "TranslateYRel"):
    return sign * TRANSLATE_PCT * level
  return None


def apply_op(name: str, x: jax.Array, argument, fill: jax.Array) -> jax.Array:
  """Op `name` of OPS on an 8-bit-valued image x [H, W, C]."""
  if name in GEOMETRIC:
    return quantize(affine(x, affine_matrix(name, argument, *x.shape[:2]), fill))
  ops = {
      "AutoContrast": lambda: auto_contrast(x), "Equalize": lambda: equalize(x),
      "Invert": lambda: 255.0 - x,
      "PosterizeIncreasing": lambda: posterize(x, argument),
      "SolarizeIncreasing": lambda: solarize(x, argument),
      "SolarizeAdd": lambda: solarize_add(x, argument),
      "ColorIncreasing": lambda: color(x, argument),
      "ContrastIncreasing": lambda: contrast(x, argument),
      "BrightnessIncreasing": lambda: brightness(x, argument),
      "SharpnessIncreasing": lambda: sharpness(x, argument)}
  return quantize(ops[name]())


def rand_augment(key: jax.Array, image: jax.Array, *, num_layers: int = 2, magnitude: float = 9.0,
                 magnitude_std: float = 0.5, prob: float = 0.5, fill=(128.0,)) -> jax.Array:
  """One image [H, W, C] in [0, 255] -> RandAugmented, integer-valued, same shape."""
  fill = jnp.broadcast_to(jnp.asarray(fill, jnp.float32), image.shape[-1:])
  x = quantize(image.astype(jnp.float32))

  def layer(x, layer_key):
    k_op, k_apply, k_magnitude, k_sign = jax.random.split(layer_key, 4)
    m = magnitude + magnitude_std * jax.random.normal(k_magnitude) if magnitude_std > 0 else magnitude
    m = jnp.clip(m, 0.0, MAX_LEVEL)
    negate = jax.random.uniform(k_sign) > 0.5
    chosen = jax.random.randint(k_op, (), 0, len(OPS))
    # Every op, then the chosen one: what lax.switch becomes under vmap anyway (and
    # lax.switch inside shard_map trips over its varying-axis check). The geometric ops share
    # one resampling: the chosen one's matrix.
    matrices = [affine_matrix(name, op_argument(name, m, negate), *x.shape[:2]) for name in GEOMETRIC]
    geometric_index = jnp.argmax(jnp.array([chosen == OPS.index(name) for name in GEOMETRIC]))
    matrix = tuple(jnp.stack(entries)[geometric_index] for entries in zip(*matrices))
    moved = quantize(affine(x, matrix, fill))
    for index, name in enumerate(OPS):
      if name not in GEOMETRIC:
        moved = jnp.where(chosen == index, apply_op(name, x, op_argument(name, m, negate), fill), moved)
    return jnp.where(jax.random.uniform(k_apply) < prob, moved, x), None
  # One compiled layer, scanned over the layers' keys.
  x, _ = jax.lax.scan(layer, x, jax.random.split(key, num_layers))
  return x.astype(image.dtype)


def rand_augment_batch(keys: jax.Array, images: jax.Array, **kwargs) -> jax.Array:
  """keys [B], images [B, H, W, C] in [0, 255] -> each image RandAugmented with its key."""
  return jax.vmap(lambda k, x: rand_augment(k, x, **kwargs))(keys, images)
