"""Host-side data: TFDS splits as random-access `Source`s and the deterministic batch stream.

Order is a pure function of (seed, step): the global stream is a sequence of epoch
permutations, so every host computes the same global batch, keeps its contiguous
slice, and a run resumed at step k sees exactly the batches an uninterrupted run
would. Each example also carries its stream position, from which augmentation keys
are derived on the accelerator, so the views do not depend on the device count either.
A full-resolution dataset (ImageNet-like: images of varied sizes) is read by a
`FullResolutionSource`, which takes each training view's random resized crop on the host,
from the full image, seeded by (seed, view, position) for the same reason.

The host loader is Grain: a `MapDataset` over step numbers mapped to batches, read ahead by
Grain's thread pool (PIL decoding and resizing release the GIL). benchmarks/input_pipeline.py
measures it against tf.data and torchvision's DataLoader.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator, Sequence

import grain
import numpy as np
from PIL import Image

from sslax.data import crops, fashion_mnist

# Per-channel mean/std of [0, 1] pixels on the training split, for normalization.
DATASET_INFO = {
  # Computed from the 60000 real training images (Debian's dataset-fashion-mnist).
  "fashion_mnist": dict(mean=(0.2860,), std=(0.3530,), num_classes=10, image_size=28, channels=1),
  "cifar10": dict(
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), num_classes=10, image_size=32, channels=3
  ),
  "stl10": dict(
    mean=(0.4467, 0.4398, 0.4066), std=(0.2603, 0.2566, 0.2713), num_classes=10, image_size=96, channels=3
  ),
  "imagenet2012": dict(
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), num_classes=1000, image_size=224, channels=3
  ),
}

# With in_memory=None, splits whose decoded pixels fit in this many bytes are loaded whole.
IN_MEMORY_MAX_BYTES = 4 << 30
# Format to prepare with when open_source(download=True) builds a dataset; ImageNet
# needs random access (ArrayRecord), the small ones are read whole through tf.data.
_PREPARE_FORMAT = {"imagenet2012": "array_record"}


class DatasetNotFoundError(RuntimeError):
  """The prepared TFDS data is missing; the message says where we looked and how to fix it."""


# ----------------------------------------------------------------------------- sources


# The normalization of a dataset without measured statistics: [0, 1] pixels to about [-2, 2].
FALLBACK_MEAN, FALLBACK_STD = 0.5, 0.25


def image_normalization(name: str, channels: int) -> tuple[tuple, tuple]:
  """(mean, std) per channel of dataset `name`'s [0, 1] pixels: DATASET_INFO's, else the fallback."""
  info = DATASET_INFO.get(name, {})
  return (tuple(info.get("mean", (FALLBACK_MEAN,) * channels)),
          tuple(info.get("std", (FALLBACK_STD,) * channels)))


class Source:
  """A split with random access: `get(indices int [B]) -> {input_key: [B, *input_shape] dtype,
  "label": int32 [B]}`, plus "mask" bool [B, T] (True = real) for sequences and text.

  Every source declares what the network reads, so nothing downstream probes its type:
  input_key  "image", "frames" or "tokens": the batch key of the network's input;
  modality   "image", "sequence" or "text";
  input_shape one example: (H, W, C), (T, F) or (T,);
  dtype      uint8 pixels, float32 frames, int32 token ids;
  pixel_mean, pixel_std  per channel, the on-device normalization (x / 255 - mean) / std of
             images; sequences and text are fed as they are: (0.0,), (1.0,).
  full_resolution  True for images of varied sizes whose training views are cropped on the
             host from the whole image (FullResolutionSource.crop_views_on_host).
  """

  input_key = "image"
  modality = "image"
  full_resolution = False
  dtype = np.uint8
  input_shape: tuple
  num_classes: int
  pixel_mean: tuple = (FALLBACK_MEAN,)
  pixel_std: tuple = (FALLBACK_STD,)

  def __len__(self) -> int:
    raise NotImplementedError

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    raise NotImplementedError


class InMemorySource(Source):
  """The whole split as numpy arrays: images uint8 [N, H, W, C], labels int [N]; normalized
  with `normalization` = (mean, std) per channel, or the fallback."""

  def __init__(self, images: np.ndarray, labels: np.ndarray, num_classes: int,
               normalization: tuple[tuple, tuple] | None = None):
    assert images.dtype == np.uint8 and images.ndim == 4 and len(images) == len(labels)
    self.images, self.labels = images, labels.astype(np.int32)
    self.num_classes = num_classes
    self.input_shape = tuple(images.shape[1:])
    self.pixel_mean, self.pixel_std = normalization or image_normalization("", self.input_shape[-1])

  def __len__(self) -> int:
    return len(self.images)

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return dict(image=self.images[indices], label=self.labels[indices])


class SubsetSource(Source):
  """The examples `indices` of another source, in that order: pretraining on a labelled
  subset of the train split (config.data.train_subset). It declares what `base` declares;
  a source that crops its views on the host from raw records (full_resolution) is not one
  it can index."""

  def __init__(self, base: Source, indices: np.ndarray):
    if base.full_resolution:
      raise ValueError("a full-resolution source crops its views from raw records by index; "
                       "open the split in memory to take a subset of it")
    self.base, self.indices = base, np.asarray(indices, np.int64)
    for name in ("input_key", "modality", "dtype", "input_shape", "num_classes", "pixel_mean",
                 "pixel_std"):
      setattr(self, name, getattr(base, name))
    if getattr(base, "vocab", None) is not None:  # text: the split's vocabulary stays whole
      self.vocab = base.vocab
    self.num_threads = getattr(base, "num_threads", 1)

  def __len__(self) -> int:
    return len(self.indices)

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return self.base.get(self.indices[indices])


def synthetic_images(num_examples: int, shape: tuple[int, int, int], num_classes: int = 10,
                     seed: int = 0, normalization: tuple[tuple, tuple] | None = None) -> InMemorySource:
  """Uniform random uint8 images with random labels: a stand-in dataset for benchmarks and
  tests that build the trainer's own step (`sslax.assemble.build(..., source=...)`)."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, size=(num_examples, *shape), dtype=np.uint8)
  labels = rng.integers(0, num_classes, size=num_examples).astype(np.int32)
  return InMemorySource(images, labels, num_classes, normalization)


def _default_threads() -> int:
  return min(32, os.cpu_count() or 1)


class RandomAccessSource(Source):
  """Reads examples on demand from a `tfds.data_source` (ArrayRecord/Parquet) of fixed-size images.

  Each image is decoded, its shorter side resized to image_size and center-cropped to
  image_size x image_size on the host; random crops happen later on the accelerator.
  """

  def __init__(
    self, data_source, image_size: int, num_classes: int, channels: int, num_threads: int | None = None,
    normalization: tuple[tuple, tuple] | None = None,
  ):
    self.data_source = data_source
    self.image_size = image_size
    self.num_classes = num_classes
    self.input_shape = (image_size, image_size, channels)
    self.pixel_mean, self.pixel_std = normalization or image_normalization("", channels)
    # The loader's threads (host_batches): decoding (PIL) and reading release the GIL.
    self.num_threads = num_threads or _default_threads()

  def __len__(self) -> int:
    return len(self.data_source)

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    # One record at a time: tfds.testing.mock_data's data source only mocks __getitem__
    # correctly (its __getitems__ lacks `self`).
    examples = [self.data_source[int(i)] for i in indices]
    images = np.zeros((len(examples), *self.input_shape), np.uint8)
    for row, ex in enumerate(examples):
      images[row] = resize_center_crop(ex["image"], self.image_size)
    return dict(image=images, label=np.array([int(ex["label"]) for ex in examples], np.int32))


@dataclasses.dataclass(frozen=True)
class HostView:
  """One training view's random resized crop, taken on the host (`crops.random_resized_crop`)."""
  size: int
  scale: tuple[float, float] = (0.08, 1.0)
  ratio: tuple[float, float] = (3 / 4, 4 / 3)
  interpolation: str = "bilinear"


def packed_width(views: Sequence[HostView], channels: int) -> int:
  """Bytes per example of the packed views: sum of size * size * channels."""
  return sum(v.size * v.size * channels for v in views)


def unpack_views(packed, sizes: Sequence[int], channels: int) -> list:
  """packed uint8 [B, sum(s * s * C)] (numpy or jax) -> one [B, s, s, C] array per view size."""
  views, at = [], 0
  for size in sizes:
    width = size * size * channels
    views.append(packed[:, at:at + width].reshape(packed.shape[0], size, size, channels))
    at += width
  return views


class FullResolutionSource(Source):
  """A split of full-resolution images of varied sizes (ImageNet-like), read on demand from a
  `tfds.data_source` whose images stay encoded until a crop is taken.

  get(indices) -> the evaluation transform (`crops.center_crop`: shorter side to
  image_size / 0.875, centre image_size x image_size): image uint8 [B, image_size, image_size, C].
  After `crop_views_on_host(views, seed)` (done by `sslax.step.make_views_fn` for the training
  source), `get_views(indices, positions)` takes each view's random resized crop from the full
  image, the crop of view v of the example at stream position p drawn from the seed
  (seed, v, p); the views travel packed (see `unpack_views`) in the batch's "image":
  uint8 [B, packed_width(views, C)], and the device skips its own crop for them. With
  `raw_records`, host_batches loads the same views with tf.data (sslax/data/tf_views.py).
  """

  full_resolution = True

  def __init__(self, data_source, image_size: int, num_classes: int, channels: int,
               normalization: tuple[tuple, tuple] | None = None, num_threads: int | None = None,
               raw_records=None, features=None):
    self.data_source = data_source
    # The same split as serialized records and its FeaturesDict: host_batches then loads the
    # training views with tf.data (sslax/data/tf_views.py) instead of get_views through Grain.
    self.raw_records, self.features = raw_records, features
    self.image_size = image_size
    self.num_classes = num_classes
    self.channels = channels
    self.input_shape = (image_size, image_size, channels)
    self.pixel_mean, self.pixel_std = normalization or image_normalization("", channels)
    self.num_threads = num_threads or _default_threads()
    self.host_views: tuple[HostView, ...] = ()
    self.seed = 0

  def __len__(self) -> int:
    return len(self.data_source)

  def crop_views_on_host(self, views: Sequence[HostView], seed: int) -> None:
    """From now on, host_batches yields these training views of this source (the last
    step built with it sets them), through tf.data or `get_views`."""
    # numpy seeds are non-negative: a negative config.seed maps to its 64-bit pattern.
    self.host_views, self.seed = tuple(views), int(seed) & (2**64 - 1)

  def _records(self, indices: np.ndarray) -> list[dict]:
    # One record at a time: tfds.testing.mock_data's data source only mocks __getitem__
    # correctly (its __getitems__ lacks `self`).
    return [self.data_source[int(i)] for i in indices]

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    records = self._records(indices)
    images = np.zeros((len(records), *self.input_shape), np.uint8)
    for row, record in enumerate(records):
      images[row] = crops.center_crop(record["image"], self.image_size, channels=self.channels)
    return dict(image=images, label=np.array([int(r["label"]) for r in records], np.int32))

  def get_views(self, indices: np.ndarray, positions: np.ndarray) -> dict[str, np.ndarray]:
    records = self._records(indices)
    packed = np.zeros((len(records), packed_width(self.host_views, self.channels)), np.uint8)
    specs = [(v.size, v.scale, v.ratio, v.interpolation) for v in self.host_views]
    for row, (record, position) in enumerate(zip(records, positions)):
      seeds = [(self.seed, index, int(position)) for index in range(len(specs))]
      views = crops.random_resized_crops(record["image"], seeds, specs, self.channels)
      packed[row] = np.concatenate([view.reshape(-1) for view in views])
    return dict(image=packed, label=np.array([int(r["label"]) for r in records], np.int32))


def resize_center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """uint8 [H, W, C] -> uint8 [size, size, C]: shorter side to `size` (bilinear, antialiased), center crop."""
  h, w, c = image.shape
  if (h, w) != (size, size):
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    pil = Image.fromarray(image[..., 0] if c == 1 else image)
    top, left = (nh - size) // 2, (nw - size) // 2
    pil = pil.resize((nw, nh), Image.BILINEAR).crop((left, top, left + size, top + size))
    image = np.asarray(pil).reshape(size, size, c)
  return image


# ------------------------------------------------------------------------- open_source


def _missing_message(name: str, builder, data_dir: str | None) -> str:
  looked_in = builder.data_dir if builder is not None else data_dir
  where = f" --data_dir={data_dir}" if data_dir else ""
  if name == "fashion_mnist":
    fix = fashion_mnist.missing_source_message() or ""
  elif name == "imagenet2012":
    fix = (
      f"ImageNet cannot be downloaded automatically. Put ILSVRC2012_img_train.tar and "
      f"ILSVRC2012_img_val.tar (from https://image-net.org/download-images) in a folder MANUAL "
      f"and run `tfds build imagenet2012 --manual_dir=MANUAL --file_format=array_record{where}`."
    )
  else:
    fix = (
      f"Rerun with `--config.data.download=True` on a machine with network access, or run "
      f"`tfds build {name}{where}` there and copy the folder."
    )
  return f"TFDS dataset {name!r} is not prepared (looked in {looked_in}). {fix}"


def prepared_builder(name: str, data_dir: str | None, download: bool):
  """The TFDS builder of an already prepared dataset, preparing it first where allowed."""
  # TF and TFDS are imported where used, not at module level: the training step and the
  # benchmarks import this module but run without TensorFlow (e.g. on accelerator images).
  import tensorflow_datasets as tfds

  if name == "fashion_mnist":
    try:  # local idx files, no network: always allowed, a no-op once built
      fashion_mnist.prepare_fashion_mnist(data_dir)
    except FileNotFoundError as e:
      raise DatasetNotFoundError(_missing_message(name, None, data_dir)) from e
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:  # TFDS's message is ~500 lines long
    hint = next((line.strip() for line in str(e).splitlines() if "Did you mean" in line), "")
    raise DatasetNotFoundError(
      f"TFDS has no dataset {name!r} (config.data.name). {hint} "
      "`tfds.list_builders()` lists them all"
    ) from None
  if not builder.data_path.exists():
    if not download:
      raise DatasetNotFoundError(_missing_message(name, builder, data_dir))
    try:
      builder.download_and_prepare(file_format=_PREPARE_FORMAT.get(name))
    except Exception as e:  # no network, missing manual files, ...
      raise DatasetNotFoundError(
        f"{_missing_message(name, builder, data_dir)} (Preparing failed: {e})"
      ) from e
  return builder


def open_source(
  name: str,
  split: str,
  *,
  data_dir: str | None = None,
  image_size: int | None = None,
  in_memory: bool | None = None,
  download: bool = False,
) -> Source:
  """Opens a TFDS split as a `Source`.

  data_dir None is TFDS's default ($TFDS_DATA_DIR or ~/tensorflow_datasets). image_size None
  keeps fixed-size images as they are (variable-size ones go to DATASET_INFO's size).
  in_memory None loads the split whole when its decoded pixels fit IN_MEMORY_MAX_BYTES (or
  when it was prepared without random access, e.g. TFRecord), except images of varied sizes
  (ImageNet-like), which open as a FullResolutionSource; in_memory=True loads those resized
  to image_size (shorter side, centre crop) for the on-device crop instead. Raises DatasetNotFoundError
  when the data is not prepared and cannot be.
  """

  builder = prepared_builder(name, data_dir, download)
  try:
    return _open_prepared(builder, name, split, image_size, in_memory)
  except DatasetNotFoundError:
    raise
  except Exception as error:  # noqa: BLE001 - a damaged prepared copy fails in many ways
    from sslax.errors import DataError

    raise DataError(
      f"the prepared TFDS {name} in {builder.data_path} cannot be read ({type(error).__name__}: "
      f"{str(error).splitlines()[0][:200] if str(error) else ''}): delete that folder and run "
      f"again to rebuild it{' from the idx files' if name == 'fashion_mnist' else f' (or run `tfds build {name}`)'}"
    ) from error


def _open_prepared(builder, name: str, split: str, image_size: int | None,
                   in_memory: bool | None) -> Source:
  import tensorflow_datasets as tfds  # lazy: see prepared_builder

  info = builder.info
  native = tuple(info.features["image"].shape)  # (H, W, C), H and W None if they vary
  image_size = image_size or native[0] or DATASET_INFO[name]["image_size"]
  num_classes = info.features["label"].num_classes
  random_access = bool(info.available_file_formats() & tfds.core.FileFormat.with_random_access())
  # Images of varied sizes (ImageNet-like) are full resolution: kept whole and encoded, each
  # view cropped from the whole image on the host. Fixed-size ones (STL-10's 96 px, CIFAR)
  # are stored at their training size and keep the on-device crop.
  full_resolution = native[0] is None or native[1] is None
  if in_memory is None and random_access and full_resolution:
    in_memory = False
  elif in_memory is None:
    pixels = info.splits[split].num_examples * image_size * image_size * native[2]
    in_memory = not random_access or pixels <= IN_MEMORY_MAX_BYTES
  normalization = image_normalization(name, native[2])
  if in_memory:
    return _load_in_memory(builder, split, image_size, num_classes, normalization)
  # A full-resolution image stays encoded until its crop is taken (crops.py decodes it).
  decoders = {"image": tfds.decode.SkipDecoding()} if full_resolution else None
  try:  # TFDS decides whether a prepared format supports random access
    records = builder.as_data_source(split=split, decoders=decoders)
  except NotImplementedError as e:  # e.g. TFRecord
    raise ValueError(
      f"{name} in {builder.data_dir} is stored as {info.file_format.value}, which has no "
      f"random access; rebuild it with `tfds build {name} --file_format=array_record` "
      "or pass in_memory=True."
    ) from e
  if full_resolution:
    raw = builder.as_data_source(split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    return FullResolutionSource(records, image_size, num_classes, native[2], normalization,
                                raw_records=raw, features=info.features)
  return RandomAccessSource(records, image_size, num_classes, native[2], normalization=normalization)


def _load_in_memory(builder, split: str, image_size: int, num_classes: int,
                    normalization: tuple[tuple, tuple]) -> InMemorySource:
  """Decodes the whole split with tf.data (parallel, in C++) into numpy arrays."""
  import tensorflow as tf  # lazy: see prepared_builder
  import tensorflow_datasets as tfds

  info = builder.info
  if info.file_format in tfds.core.FileFormat.with_random_access():
    # TFDS feeds Parquet to tf.data one Python example at a time; fetching the raw records
    # at once and decoding them in a parallel tf.data map is ~2.5x faster (Fashion-MNIST).
    raw = builder.as_data_source(split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    records = [bytes(r) for r in raw.__getitems__(range(len(raw)))]
    ds = tf.data.Dataset.from_tensor_slices(records).map(
      info.features.deserialize_example, num_parallel_calls=tf.data.AUTOTUNE
    )
  else:
    ds = builder.as_dataset(split=split, shuffle_files=False)  # file order = data_source order
  ds = ds.map(lambda ex: (ex["image"], ex["label"]), num_parallel_calls=tf.data.AUTOTUNE)
  native = tuple(info.features["image"].shape)
  if native[:2] == (image_size, image_size):
    parts = list(ds.batch(8192).as_numpy_iterator())
  else:  # other sizes: resize one by one on the host, the same way RandomAccessSource does
    parts = [(resize_center_crop(im, image_size)[None], lb[None]) for im, lb in ds.as_numpy_iterator()]
  if not parts:
    raise ValueError(f"split {split!r} of {builder.name} in {builder.data_dir} has no examples")
  images, labels = (np.concatenate(p) for p in zip(*parts))
  return InMemorySource(images, labels, num_classes, normalization)


# ------------------------------------------------------------------------------ order


@functools.lru_cache(maxsize=4)  # a batch spans at most two epochs; ImageNet's costs ~20 ms
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  perm = np.random.default_rng((seed, epoch)).permutation(n)
  perm.setflags(write=False)  # shared through the cache
  return perm


def global_batch_indices(
  step: int, global_batch: int, num_examples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
  """The examples of global batch `step` -> (indices int64 [global_batch], positions int64 [global_batch]).

  Stream position p = step * global_batch + i; epoch = p // N; index = permutation(seed, epoch)[p % N].
  """
  positions = step * global_batch + np.arange(global_batch, dtype=np.int64)
  epochs, offsets = np.divmod(positions, num_examples)
  indices = np.empty(global_batch, np.int64)
  for epoch in np.unique(epochs):
    at = epochs == epoch
    indices[at] = _permutation(seed, int(epoch), num_examples)[offsets[at]]
  return indices, positions


def _host_slice(global_batch: int, process_index: int | None, process_count: int | None) -> slice:
  """This host's contiguous part of a global batch."""
  if process_index is None or process_count is None:
    import jax  # only here: the data code itself does not need an accelerator runtime

    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if global_batch % process_count:
    raise ValueError(f"global batch {global_batch} is not divisible by the process count {process_count}")
  per_host = global_batch // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


def _read_ahead(load, steps: range, prefetch: int, num_threads: int | None,
                num_workers: int = 0) -> grain.DatasetIterator:
  """Grain's iterator over load(step) for step in `steps`, in order, `prefetch` batches read
  ahead by `num_threads` threads, in each of `num_workers` worker processes if > 0 (Grain
  gives worker k the steps k, k + n, ... and interleaves them back in order). Its close()
  (also run when it is garbage collected) stops threads and workers; a loader error
  surfaces in next()."""
  threads = max(1, num_threads or 1)
  options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(prefetch, threads))
  dataset = grain.MapDataset.range(steps.start, steps.stop).map(load).to_iter_dataset(options)
  if num_workers > 0:
    from absl import flags  # Grain's workers read its absl flags, defaults unless a CLI parsed them

    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return iter(dataset)


# Grain's range needs an end: more steps than any run takes.
_ENDLESS = 1 << 62


def host_batches(
  source: Source,
  *,
  global_batch: int,
  seed: int,
  start_step: int = 0,
  process_index: int | None = None,
  process_count: int | None = None,
  prefetch: int = 2,
  num_threads: int | None = None,
  num_workers: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
  """Infinite stream of this host's slice of each global batch, from `start_step` on.

  Yields dict(image uint8 [B/P, H, W, C], label int32 [B/P], position int64 [B/P]), B = global_batch,
  P = process_count; positions are global stream positions. A FullResolutionSource with host
  views gives its packed views as "image" (see FullResolutionSource), loaded by tf.data when
  it has raw records (sslax/data/tf_views.py), else by Grain as below. Batches are loaded
  `prefetch` ahead (at least one per thread) by `num_threads` threads: default the source's
  num_threads, else 1 (an in-memory batch is one numpy gather); in each of `num_workers`
  worker processes when > 0 (benchmarks/input_pipeline.py measures both). close() stops them.
  """
  part = _host_slice(global_batch, process_index, process_count)
  n = len(source)
  host_views = bool(getattr(source, "host_views", ()))
  if host_views and getattr(source, "raw_records", None) is not None:
    from sslax.data import tf_views

    def host_part(step: int) -> tuple[np.ndarray, np.ndarray]:
      indices, positions = global_batch_indices(step, global_batch, n, seed)
      return indices[part], positions[part]

    return tf_views.view_batches(
        source.raw_records, source.features, source.host_views, channels=source.channels,
        crop_seed=source.seed, batch_indices=host_part, start_step=start_step,
        per_host=part.stop - part.start, num_threads=num_threads or source.num_threads,
        prefetch=prefetch)

  def load(step: int) -> dict[str, np.ndarray]:
    indices, positions = global_batch_indices(step, global_batch, n, seed)
    if host_views:
      return dict(source.get_views(indices[part], positions[part]), position=positions[part])
    return dict(source.get(indices[part]), position=positions[part])

  threads = num_threads or getattr(source, "num_threads", 1)
  return _read_ahead(load, range(start_step, _ENDLESS), prefetch, threads, num_workers)


def eval_batches(
  source: Source,
  batch_size: int,
  *,
  process_index: int | None = None,
  process_count: int | None = None,
  prefetch: int = 2,
  num_threads: int | None = None,
) -> grain.DatasetIterator:
  """One ordered pass over the split in global batches of `batch_size`, this host's slice of each.

  Yields the source's batch (e.g. image uint8 [b, H, W, C], label int32 [b]) and valid bool [b],
  b = batch_size / P. The last batch is padded with example 0 and valid False, so every example is counted exactly once and all
  hosts run the same number of steps. Threads: as `host_batches`.
  """
  part = _host_slice(batch_size, process_index, process_count)
  n = len(source)

  def load(step: int) -> dict[str, np.ndarray]:
    positions = step * batch_size + np.arange(batch_size, dtype=np.int64)[part]
    valid = positions < n
    return dict(source.get(np.where(valid, positions, 0)), valid=valid)

  threads = num_threads or getattr(source, "num_threads", 1)
  return _read_ahead(load, range(-(-n // batch_size)), prefetch, threads)


__all__ = [
  "DATASET_INFO",
  "DatasetNotFoundError",
  "Source",
  "InMemorySource",
  "RandomAccessSource",
  "FullResolutionSource",
  "HostView",
  "packed_width",
  "unpack_views",
  "open_source",
  "global_batch_indices",
  "host_batches",
  "eval_batches",
  "resize_center_crop",
]
