"""Host-side crops of full-resolution images: the training view's random resized crop and
the evaluation transform, on decoded uint8 arrays or on encoded JPEG/PNG bytes.

random_resized_crop draws its box exactly as torchvision's RandomResizedCrop.get_params
(10 tries of a uniform area fraction and a log-uniform aspect w/h, then the centred box with
the aspect clamped into range) from `numpy.random.default_rng(seed)`, crops, then resizes with
PIL, as torchvision's PIL path does (crop, then an antialiased resize). center_crop is the
papers' evaluation transform: the shorter side resized to size / 0.875 (256 for 224), then the
centre size x size (torchvision's Resize + CenterCrop).

An image is decoded once for all the views taken from it (random_resized_crops), and a JPEG
only as finely as its crops need: PIL's draft mode lets libjpeg decode at 1/2, 1/4 or 1/8
scale in the DCT, so crops that are all downsampled anyway (large boxes of a big photo) cost
a fraction of a full decode. Boxes are drawn on the full-resolution size read from the
header, so their distribution does not depend on the draft scale; the resized pixels then
differ from a full decode by about what bilinear and bicubic resampling differ by. The
evaluation transform never drafts.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
# The evaluation transform's crop fraction: 224 of 256 (ResNet, MoCo, DINO, MAE evaluation).
EVAL_CROP_FRACTION = 0.875

ImageLike = np.ndarray | bytes


def sample_box(rng: np.random.Generator, height: int, width: int,
               scale: Sequence[float] = (0.08, 1.0),
               ratio: Sequence[float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
  """torchvision's RandomResizedCrop.get_params with a NumPy generator -> (top, left, h, w)."""
  area = height * width
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  for _ in range(10):
    target_area = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(log_lo, log_hi))
    w = int(round(math.sqrt(target_area * aspect)))
    h = int(round(math.sqrt(target_area / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return top, left, h, w
  in_ratio = width / height  # fallback: the centre, aspect clamped into `ratio`
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    h, w = height, int(round(height * max(ratio)))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def _open(image: ImageLike) -> Image.Image:
  """A PIL image, not yet decoded when `image` is encoded bytes (the header is read)."""
  if isinstance(image, (bytes, bytearray, memoryview)):
    return Image.open(io.BytesIO(image))
  if image.ndim != 3 or image.dtype != np.uint8:
    raise ValueError(f"expected uint8 [H, W, C], got {image.dtype} {image.shape}")
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _decode(pil: Image.Image, boxes, out_sizes, channels: int, draft: bool):
  """Decodes `pil` once for crops `boxes` (top, left, h, w) resized to `out_sizes` (h, w) ->
  (decoded image, x scale, y scale) from full-resolution to decoded coordinates. With
  `draft`, a JPEG is decoded at the coarsest DCT scale that keeps every crop at least its
  output size."""
  full_w, full_h = pil.size
  if draft and pil.format == "JPEG":
    need = max(max(oh / h, ow / w) for (_, _, h, w), (oh, ow) in zip(boxes, out_sizes))
    pil.draft(pil.mode, (math.ceil(full_w * need), math.ceil(full_h * need)))
  fx, fy = pil.size[0] / full_w, pil.size[1] / full_h  # 1, 1/2, 1/4 or 1/8 after draft
  mode = "RGB" if channels == 3 else "L"
  return (pil if pil.mode == mode else pil.convert(mode)), fx, fy


def _crop_resize(pil: Image.Image, box, fx: float, fy: float, out_hw, resample: int) -> np.ndarray:
  """Crop box (top, left, h, w), in full-resolution coordinates, of the decoded `pil`
  resized to out_hw (height, width) -> uint8 [oh, ow, C]."""
  top, left, h, w = box
  if (fx, fy) == (1, 1):  # crop, then resize: torchvision's PIL path, pixel for pixel
    out = pil.crop((left, top, left + w, top + h)).resize((out_hw[1], out_hw[0]), resample)
  else:  # the box in the drafted image's coordinates, fractional: no rounding shift
    out = pil.resize((out_hw[1], out_hw[0]), resample,
                     box=(left * fx, top * fy, (left + w) * fx, (top + h) * fy))
  out = np.asarray(out)
  return out[..., None] if out.ndim == 2 else out


def _channels(image: ImageLike, channels: int | None) -> int:
  """The output's channel count: `channels`, else the array's, else 3 (RGB) for a file, as
  TFDS's Image(shape=(None, None, 3)) decodes ImageNet's few grayscale and CMYK JPEGs."""
  if channels:
    return channels
  return image.shape[-1] if isinstance(image, np.ndarray) else 3


def random_resized_crop(image: ImageLike, seed, size: int,
                        scale: Sequence[float] = (0.08, 1.0),
                        ratio: Sequence[float] = (3 / 4, 4 / 3),
                        interpolation: str = "bilinear", channels: int | None = None) -> np.ndarray:
  """One random resized crop -> uint8 [size, size, C].

  image: uint8 [H, W, C] or encoded JPEG/PNG bytes. seed: anything
  `numpy.random.default_rng` takes (an int, a tuple of ints): the same seed gives the same
  crop. interpolation: "bilinear" (torchvision's default) or "bicubic". channels: C of the
  output (1 or 3); default: the array's, or 3 for encoded bytes.
  """
  return random_resized_crops(image, [seed], [(size, scale, ratio, interpolation)], channels)[0]


def random_resized_crops(image: ImageLike, seeds: Sequence, views: Sequence[tuple],
                         channels: int | None = None) -> list[np.ndarray]:
  """Several random resized crops of one image, decoded once: crop k is
  `random_resized_crop(image, seeds[k], *views[k], channels=channels)` (views[k]: (size,
  scale, ratio, interpolation)), except that a JPEG is drafted once for all of them."""
  pil = _open(image)
  width, height = pil.size
  boxes = [sample_box(np.random.default_rng(seed), height, width, scale, ratio)
           for seed, (_, scale, ratio, _) in zip(seeds, views)]
  out_sizes = [(size, size) for size, *_ in views]
  pil, fx, fy = _decode(pil, boxes, out_sizes, _channels(image, channels), draft=True)
  return [_crop_resize(pil, box, fx, fy, out, INTERPOLATIONS[view[3]])
          for box, out, view in zip(boxes, out_sizes, views)]


def center_crop(image: ImageLike, size: int, crop_fraction: float = EVAL_CROP_FRACTION,
                interpolation: str = "bilinear", channels: int | None = None) -> np.ndarray:
  """The evaluation transform -> uint8 [size, size, C]: the shorter side resized to
  int(size / crop_fraction), then the centre size x size, as torchvision's
  Resize(int(size / crop_fraction)) + CenterCrop(size) (its rounding, too). image, channels:
  as `random_resized_crop`."""
  pil = _open(image)
  width, height = pil.size
  short = int(size / crop_fraction)
  # torchvision's _compute_resized_output_size: the longer side is truncated.
  if width <= height:
    new_w, new_h = short, int(short * height / width)
  else:
    new_w, new_h = int(short * width / height), short
  top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
  # The resize to (new_h, new_w) followed by the crop, as one crop of the full image resized
  # to the whole new size: resize first (the filter sees the whole image), then crop.
  channels = _channels(image, channels)
  # No draft decoding: evaluation is torchvision's transform pixel for pixel.
  whole = (0, 0, height, width)
  pil, fx, fy = _decode(pil, [whole], [(new_h, new_w)], channels, draft=False)
  resized = _crop_resize(pil, whole, fx, fy, (new_h, new_w), INTERPOLATIONS[interpolation])
  return np.ascontiguousarray(resized[top:top + size, left:left + size])


__all__ = ["sample_box", "random_resized_crop", "random_resized_crops", "center_crop", "INTERPOLATIONS",
           "EVAL_CROP_FRACTION"]
