"""Prepare TFDS `fashion_mnist` from local idx files, without network.

The Debian package `dataset-fashion-mnist` installs the four official idx files under
/usr/share/datasets/fashion-mnist. Their gzip wrappers differ byte-wise from the
upstream downloads, so TFDS's checksum check rejects them; this builder reads them
directly instead and writes the very same dataset TFDS would (name, version 3.0.1,
features, splits), so afterwards plain `tfds.builder("fashion_mnist", data_dir=...)`
loads it.

The record files are Parquet: the only TFDS format that serves both `as_dataset`
(tf.data) and `tfds.data_source` (random access). TFRecord has no random access and
ArrayRecord has no tf.data reader in TFDS 4.9.10. (Writing TFRecord plus an ArrayRecord
"alternative format" does not help: the registered builder does not restore
alternative formats from dataset_info.json, so `tfds.data_source` would not see it.)
"""

from __future__ import annotations

import functools
import gzip
import itertools
import os
import zlib
from typing import TYPE_CHECKING
from unittest import mock

import numpy as np

from sslax.errors import DataError

# TFDS is imported where used, not at module level: sslax.data.pipeline imports this module,
# and the training step and the benchmarks run without TensorFlow (e.g. on accelerator images).
if TYPE_CHECKING:
  import tensorflow_datasets as tfds

DEFAULT_SOURCE_DIR = "/usr/share/datasets/fashion-mnist"
FILE_FORMAT = "parquet"
_FILES = {  # split -> (images, labels) file names, as published upstream
  "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def source_dir() -> str:
  """Folder holding the four idx .gz files ($SSLAX_FASHION_MNIST_DIR or Debian's)."""
  return os.environ.get("SSLAX_FASHION_MNIST_DIR", DEFAULT_SOURCE_DIR)


def source_files(folder: str | None = None) -> dict[str, tuple[str, str]]:
  """split -> (images path, labels path); does not check they exist."""
  folder = folder or source_dir()
  return {s: (os.path.join(folder, i), os.path.join(folder, l)) for s, (i, l) in _FILES.items()}


def read_idx(path: str) -> np.ndarray:
  """Reads a (gzipped) idx file of unsigned bytes: images -> uint8 [N, H, W], labels -> uint8 [N].

  Header: 2 zero bytes, dtype code (0x08 = uint8), ndim, then ndim big-endian int32 dims.
  """
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
    if data[:2] != b"\0\0" or data[2] != 0x08:
      raise ValueError(f"not a uint8 idx file (magic {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)
  except (EOFError, IndexError, ValueError, zlib.error, gzip.BadGzipFile) as error:
    raise DataError(
        f"{path} is damaged ({type(error).__name__}: {error}): replace it (Debian: sudo apt-get "
        "install --reinstall dataset-fashion-mnist) and run again; the TFDS copy is rebuilt "
        "from it") from None


@functools.cache
def _local_fashion_mnist_class():
  """LocalFashionMNIST, defined on first use (it subclasses a TFDS builder, so needs TFDS)."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.image_classification.mnist import FashionMNIST

  class LocalFashionMNIST(FashionMNIST, skip_registration=True):
    """TFDS's FashionMNIST whose 'downloads' are the local idx files.

    skip_registration keeps TFDS's own `fashion_mnist` registered, so readers get
    the stock class; only `prepare_fashion_mnist` uses this one, to write the data.
    """

    name = "fashion_mnist"

    def _split_generators(self, dl_manager):
      del dl_manager  # nothing to download; the idx files are read (and gunzipped) below
      gens = []
      for split, (images, labels) in source_files().items():
        gens.append(
          tfds.core.SplitGenerator(name=split, gen_kwargs=dict(data_path=images, label_path=labels))
        )
      return gens

    def _generate_examples(self, data_path, label_path):
      # The example count comes from the idx headers (not TFDS's hard-coded 60000 /
      # 10000), so tests can use tiny files.
      images, labels = read_idx(data_path), read_idx(label_path)
      if len(images) != len(labels):
        raise ValueError(f"{data_path} has {len(images)} images but {label_path} {len(labels)} labels")
      for index, (image, label) in enumerate(zip(images, labels)):
        yield index, {"image": image[..., None], "label": int(label)}  # [28, 28, 1], like TFDS

  LocalFashionMNIST.__qualname__ = "LocalFashionMNIST"  # as if at module level (module __getattr__)
  return LocalFashionMNIST


def __getattr__(name: str):
  """`fashion_mnist.LocalFashionMNIST` still works, importing TFDS then."""
  if name == "LocalFashionMNIST":
    return _local_fashion_mnist_class()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def missing_source_message() -> str | None:
  """None when all four idx files exist, else a message saying how to get them."""
  missing = [p for pair in source_files().values() for p in pair if not os.path.exists(p)]
  if not missing:
    return None
  return (
    f"Fashion-MNIST source files not found: {', '.join(missing)}. Install them with "
    f"`apt-get install dataset-fashion-mnist` (puts them in {DEFAULT_SOURCE_DIR}) or set "
    "SSLAX_FASHION_MNIST_DIR to a folder holding train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz."
  )


def prepare_fashion_mnist(data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """Writes TFDS `fashion_mnist` under data_dir (None: TFDS default) unless already there.

  Idempotent: when the prepared version exists TFDS just reuses it (milliseconds).
  Raises FileNotFoundError (with the fix) when it must build and the idx files are missing.
  """
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import file_adapters

  builder = _local_fashion_mnist_class()(data_dir=data_dir)
  if not builder.data_path.exists():
    if (msg := missing_source_message()) is not None:
      raise FileNotFoundError(msg)
    # TFDS 4.9.10's Parquet writer batches rows with `islice(it, i, i + n)` on an
    # iterator, which skips i rows before every batch: 60000 examples come out as
    # 3400 rows while the metadata still says 60000. itertools.batched is what
    # that helper means to do, so swap it in while writing.
    with mock.patch.object(file_adapters, "_batched", itertools.batched):
      builder.download_and_prepare(
        file_format=FILE_FORMAT,
        # No network: never look for a pre-built copy on GCS.
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
      )
  return builder
