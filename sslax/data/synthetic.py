"""A synthetic ImageNet-like dataset, written in the TFDS format the pipeline reads
(ArrayRecord, JPEG images of varied sizes): for the input-pipeline benchmark and the tests
of full-resolution sources. Any TFDS name works: `tfds.builder(name, data_dir=...)` opens a
prepared dataset from its files when no builder class of that name is registered.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image


def synthetic_photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """uint8 [height, width, 3]: smooth colour fields plus a little noise, so the JPEG is about
  the size of a photo's (noise alone compresses several times worse and decodes slower)."""
  coarse = rng.integers(0, 256, (max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
  smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.int16)
  noise = rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
  return np.clip(smooth + noise, 0, 255).astype(np.uint8)


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, "JPEG", quality=quality)
  return buf.getvalue()


def image_sizes(rng: np.random.Generator, n: int, mean_hw: tuple[int, int] = (375, 500),
                spread: float = 0.25) -> list[tuple[int, int]]:
  """n (height, width) pairs around mean_hw, each side scaled by exp(U(-spread, spread)) and
  one in four portrait (ImageNet's photos vary like this around 400 x 350 on average)."""
  sizes = []
  for _ in range(n):
    h, w = (int(s * np.exp(rng.uniform(-spread, spread))) for s in mean_hw)
    sizes.append((w, h) if rng.uniform() < 0.25 else (h, w))
  return sizes


def write_synthetic_imagenet(data_dir: str, name: str = "synthetic_imagenet",
                             splits: dict[str, int] | None = None, num_classes: int = 10,
                             mean_hw: tuple[int, int] = (375, 500), seed: int = 0) -> str:
  """Writes `name` into data_dir (splits: name -> number of examples; default train 64,
  validation 16) with JPEG images of varied sizes around mean_hw and labels i % num_classes;
  returns the dataset's folder. Rewrites nothing that exists."""
  import tensorflow_datasets as tfds  # lazy, as in pipeline.py

  splits = splits or {"train": 64, "validation": 16}
  folder = os.path.join(data_dir, name)
  if os.path.isdir(folder):
    return folder
  rng = np.random.default_rng(seed)
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
      "label": tfds.features.ClassLabel(num_classes=num_classes),
  })
  data = {}
  for split, n in splits.items():
    # Encoded here (quality 90, a photo's) so TFDS stores these bytes as they are.
    data[split] = [(i, {"image": jpeg_bytes(synthetic_photo(rng, h, w)), "label": i % num_classes})
                   for i, (h, w) in enumerate(image_sizes(rng, n, mean_hw))]
  tfds.dataset_builders.store_as_tfds_dataset(
      name=name, version="1.0.0", features=features, split_datasets=data, data_dir=data_dir,
      file_format="array_record", disable_shuffling=True)
  return folder
