"""Data: the local Fashion-MNIST builder, deterministic ordering, eval passes, errors, mocked TFDS sets.

Never touches the network: Fashion-MNIST is built from tiny idx files written here, and the
other datasets go through tfds.testing.mock_data.
"""

import gzip
import os
import struct
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sslax.data import fashion_mnist, pipeline

N_TRAIN, N_TEST = 37, 11


def _write_idx(path, array):
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _tagged_images(n, rng):
  """uint8 [n, 28, 28] random images whose pixel (0, 0) stores their index, to undo TFDS's shuffle."""
  images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
  images[:, 0, 0] = np.arange(n)
  return images


@pytest.fixture(scope="module")
def tiny_fashion_mnist(tmp_path_factory):
  """(data_dir, {split: (images [n, 28, 28], labels [n])}) for tiny idx files built with our builder."""
  src, data_dir = tmp_path_factory.mktemp("idx"), tmp_path_factory.mktemp("tfds")
  rng = np.random.default_rng(0)
  arrays = {}
  for split, n in (("train", N_TRAIN), ("test", N_TEST)):
    images, labels = _tagged_images(n, rng), rng.integers(0, 10, n, dtype=np.uint8)
    image_file, label_file = fashion_mnist._FILES[split]
    _write_idx(src / image_file, images)
    _write_idx(src / label_file, labels)
    arrays[split] = (images, labels)
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("SSLAX_FASHION_MNIST_DIR", str(src))
    fashion_mnist.prepare_fashion_mnist(str(data_dir))
  return str(data_dir), arrays


def _check_roundtrip(image, label, arrays):
  """Every example read back equals the written one with the index stored in its pixel (0, 0)."""
  images, labels = arrays
  idx = image[:, 0, 0, 0].astype(int)
  np.testing.assert_array_equal(np.sort(idx), np.arange(len(images)))  # each example exactly once
  np.testing.assert_array_equal(image[..., 0], images[idx])
  np.testing.assert_array_equal(label, labels[idx])


def test_local_fashion_mnist_roundtrip(tiny_fashion_mnist):
  data_dir, arrays = tiny_fashion_mnist
  start = time.perf_counter()
  fashion_mnist.prepare_fashion_mnist(data_dir)  # idempotent, and needs no source files now
  assert time.perf_counter() - start < 1.0

  builder = tfds.builder("fashion_mnist", data_dir=data_dir)  # the stock, registered class
  assert str(builder.info.version) == "3.0.1"
  assert builder.info.features["label"].names[9] == "Ankle boot"
  assert {s: builder.info.splits[s].num_examples for s in ("train", "test")} == {
    "train": N_TRAIN,
    "test": N_TEST,
  }
  for split in ("train", "test"):
    # tf.data and random access both read the same records.
    batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    _check_roundtrip(batch["image"], batch["label"], arrays[split])
    records = tfds.data_source("fashion_mnist", split=split, data_dir=data_dir)
    _check_roundtrip(
      np.stack([r["image"] for r in records]), np.array([r["label"] for r in records]), arrays[split]
    )
    for in_memory in (True, False):
      source = pipeline.open_source("fashion_mnist", split, data_dir=data_dir, in_memory=in_memory)
      assert (len(source), source.num_classes, source.input_shape) == (len(arrays[split][0]), 10, (28, 28, 1))
      got = source.get(np.arange(len(source)))
      assert got["image"].dtype == np.uint8 and got["label"].dtype == np.int32
      _check_roundtrip(got["image"], got["label"], arrays[split])
  assert isinstance(pipeline.open_source("fashion_mnist", "test", data_dir=data_dir), pipeline.InMemorySource)


# ----------------------------------------------------------------------------- ordering


def _indexed_source(n, channels=1):
  """InMemorySource whose example i has every pixel = i and label i % 7."""
  images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 4, channels)).copy()
  return pipeline.InMemorySource(images, np.arange(n) % 7, num_classes=7)


def test_global_batch_indices_epochs_and_seeds():
  n, batch = 10, 4
  steps = [pipeline.global_batch_indices(s, batch, n, seed=3) for s in range(15)]  # 60 positions, 6 epochs
  indices = np.concatenate([i for i, _ in steps])
  positions = np.concatenate([p for _, p in steps])
  np.testing.assert_array_equal(positions, np.arange(60))
  for epoch in indices.reshape(6, n):  # every epoch is a permutation
    np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
  assert not np.array_equal(indices[:n], indices[n : 2 * n])  # and a fresh one each epoch
  np.testing.assert_array_equal(pipeline.global_batch_indices(7, batch, n, seed=3)[0], steps[7][0])
  other = np.concatenate([pipeline.global_batch_indices(s, batch, n, seed=4)[0] for s in range(15)])
  assert not np.array_equal(indices, other)


def _take(iterator, k):
  batches = [next(iterator) for _ in range(k)]
  iterator.close()
  return batches


def test_host_batches_hosts_and_resume():
  source = _indexed_source(13)
  kwargs = dict(global_batch=6, seed=1)
  one = _take(pipeline.host_batches(source, process_index=0, process_count=1, **kwargs), 8)
  hosts = [
    _take(pipeline.host_batches(source, process_index=p, process_count=2, **kwargs), 8) for p in (0, 1)
  ]
  resumed = _take(pipeline.host_batches(source, start_step=5, process_index=0, process_count=1, **kwargs), 3)
  for step, batch in enumerate(one):
    assert batch["image"].shape == (6, 4, 4, 1) and batch["image"].dtype == np.uint8
    assert batch["label"].dtype == np.int32 and batch["position"].dtype == np.int64
    indices, positions = pipeline.global_batch_indices(step, 6, 13, seed=1)
    np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], indices)
    np.testing.assert_array_equal(batch["label"], indices % 7)
    np.testing.assert_array_equal(batch["position"], positions)
    for key in batch:  # host 0 then host 1 = the global batch
      np.testing.assert_array_equal(np.concatenate([h[step][key] for h in hosts]), batch[key])
  for a, b in zip(resumed, one[5:]):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_host_batches_errors_and_close():
  source = _indexed_source(5)
  with pytest.raises(ValueError, match=r"10.*3"):
    pipeline.host_batches(source, global_batch=10, seed=0, process_index=0, process_count=3)

  it = pipeline.host_batches(source, global_batch=2, seed=0, process_index=0, process_count=1,
                             num_threads=2)
  next(it)
  it.close()
  with pytest.raises(ValueError):  # Grain: a closed iterator yields nothing more
    next(it)

  class Broken(pipeline.InMemorySource):
    def get(self, indices):
      raise KeyError("boom")

  with pytest.raises(KeyError, match="boom"):  # loader errors surface in the consumer
    next(
      pipeline.host_batches(
        Broken(source.images, source.labels, 7), global_batch=2, seed=0, process_index=0, process_count=1
      )
    )


def test_eval_batches_cover_each_example_once():
  source = _indexed_source(11)
  for hosts in (1, 2):
    per_host = [
      list(pipeline.eval_batches(source, 4, process_index=p, process_count=hosts)) for p in range(hosts)
    ]
    assert all(len(b) == 3 for b in per_host)  # ceil(11 / 4) on every host
    seen = []
    for step in range(3):
      batch = {k: np.concatenate([b[step][k] for b in per_host]) for k in ("image", "label", "valid")}
      assert batch["valid"].dtype == bool and batch["image"].shape == (4, 4, 4, 1)
      seen.append(batch["image"][batch["valid"]][:, 0, 0, 0])
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(11))  # in order, none dropped or repeated


# -------------------------------------------------------------------------------- errors


def test_missing_dataset_messages(tmp_path, monkeypatch):
  empty = str(tmp_path)
  with pytest.raises(pipeline.DatasetNotFoundError) as err:
    pipeline.open_source("cifar10", "train", data_dir=empty)
  assert "cifar10" in str(err.value) and empty in str(err.value)
  assert "--config.data.download=True" in str(err.value) and "tfds build cifar10" in str(err.value)

  with pytest.raises(pipeline.DatasetNotFoundError, match="manual_dir"):
    pipeline.open_source("imagenet2012", "validation", data_dir=empty)

  monkeypatch.setenv("SSLAX_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
  with pytest.raises(pipeline.DatasetNotFoundError) as err:
    pipeline.open_source("fashion_mnist", "train", data_dir=empty)
  assert empty in str(err.value)
  assert "apt-get install dataset-fashion-mnist" in str(err.value) and "SSLAX_FASHION_MNIST_DIR" in str(
    err.value
  )
  assert not os.path.exists(os.path.join(empty, "fashion_mnist"))


# --------------------------------------------------------------------- mocked TFDS datasets


@pytest.mark.parametrize(
  "name,split,shape", [("cifar10", "train", (32, 32, 3)), ("stl10", "test", (96, 96, 3))]
)
def test_mocked_in_memory_datasets(name, split, shape):
  # USE_CODE: no metadata files ship with TFDS; download=True as the mock never "prepares" data.
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    source = pipeline.open_source(name, split, download=True, in_memory=True)
  assert isinstance(source, pipeline.InMemorySource)
  assert (len(source), source.input_shape, source.num_classes) == (6, shape, 10)
  assert source.input_shape[-1] == pipeline.DATASET_INFO[name]["channels"]
  batch = next(pipeline.host_batches(source, global_batch=4, seed=0, process_index=0, process_count=1))
  assert batch["image"].shape == (4, *shape) and batch["image"].dtype == np.uint8
  assert batch["label"].dtype == np.int32 and ((batch["label"] >= 0) & (batch["label"] < 10)).all()


def test_mocked_imagenet_is_full_resolution():
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    source = pipeline.open_source("imagenet2012", "train", image_size=24, download=True, in_memory=False)
    assert isinstance(source, pipeline.FullResolutionSource)  # varied sizes
    assert (len(source), source.input_shape, source.num_classes) == (5, (24, 24, 3), 1000)
    batch = source.get(np.array([4, 0, 2, 0]))
    eval_batch = next(pipeline.eval_batches(source, 8, process_index=0, process_count=1))
    whole = pipeline.open_source("imagenet2012", "validation", image_size=24, download=True, in_memory=True)
  assert whole.get(np.arange(5))["image"].shape == (5, 24, 24, 3)  # variable sizes resized on loading
  assert batch["image"].shape == (4, 24, 24, 3) and batch["image"].dtype == np.uint8
  assert batch["label"].dtype == np.int32 and ((batch["label"] >= 0) & (batch["label"] < 1000)).all()
  np.testing.assert_array_equal(batch["image"][1], batch["image"][3])  # same index, same pixels
  np.testing.assert_array_equal(eval_batch["valid"], np.arange(8) < 5)


def test_resize_center_crop():
  image = np.zeros((40, 80, 1), np.uint8)
  image[:, 20:60] = 255  # the central square survives the crop
  out = pipeline.resize_center_crop(image, 20)
  assert out.shape == (20, 20, 1) and out.dtype == np.uint8
  assert out[:, 1:-1].min() == 255 and out.min() > 127  # the filter only softens the crop edges
  rgb = np.random.default_rng(0).integers(0, 256, (50, 30, 3), dtype=np.uint8)
  assert pipeline.resize_center_crop(rgb, 16).shape == (16, 16, 3)
  np.testing.assert_array_equal(pipeline.resize_center_crop(rgb[:16, :16], 16), rgb[:16, :16])
