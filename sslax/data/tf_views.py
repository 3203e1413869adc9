"""The training views of a full-resolution split, loaded by tf.data.

Per example: the TFDS record is parsed in the graph, each view's box is drawn by
`crops.sample_box` from the seed (crop_seed, view, position), as `crops.random_resized_crop`
draws it, then only the window of the JPEG that holds every box is decoded, once
(`tf.io.decode_and_crop_jpeg`), and each box is cut from it and resized with
`tf.image.resize(antialias=True)`, PIL's filter (bilinear or bicubic, support widened when
downsampling). The views are packed as `pipeline.FullResolutionSource.get_views`
packs them, and equal its PIL crops up to rounding (tests/test_full_resolution.py).

Why tf.data here and Grain elsewhere: decoding and resizing run in TensorFlow's C++ threads,
without the GIL, and only the crops' window is decoded; benchmarks/input_pipeline.py measures
this loader against the same crops through Grain with PIL (README, "Input pipeline").
The other sources produce whole numpy batches in Python, where tf.data would only wrap a
py_function (the same GIL), and keep Grain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sslax.data import crops

# tf.data's range needs an end: more steps than any run takes.
_ENDLESS = 1 << 62
_METHODS = {"bilinear": "bilinear", "bicubic": "bicubic"}


class ViewBatches:
  """Iterator over dict(image uint8 [b, packed], label int32 [b], position int64 [b]); close()
  drops the tf.data iterator (its threads stop with it)."""

  def __init__(self, dataset):
    self._iterator = dataset.as_numpy_iterator()

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._iterator is None:
      raise ValueError("the iterator is closed")
    image, label, position = next(self._iterator)
    return dict(image=image, label=label, position=position)

  def close(self) -> None:
    self._iterator = None


def view_batches(raw_records, features, views: Sequence, *, channels: int, crop_seed: int,
                 batch_indices, start_step: int, per_host: int, num_threads: int,
                 prefetch: int) -> ViewBatches:
  """This host's batches of packed views from `start_step` on.

  raw_records: the split as a TFDS data source of serialized examples (RAW_BYTES);
  features: its FeaturesDict; views: `pipeline.HostView`s; batch_indices(step) -> (indices,
  positions), int64 [per_host] each: this host's part of global batch `step`.
  """
  import tensorflow as tf
  import tensorflow_datasets as tfds

  def records(step):
    indices, positions = batch_indices(int(step))
    return np.array([bytes(raw_records[int(i)]) for i in indices], object), positions.astype(np.int64)

  def boxes(height, width, position):
    return np.array([crops.sample_box(np.random.default_rng((crop_seed, v, int(position))), int(height),
                                      int(width), view.scale, view.ratio)
                     for v, view in enumerate(views)], np.int32).reshape(len(views), 4)

  def draw(shape, position):
    box = tf.numpy_function(boxes, [shape[0], shape[1], position], tf.int32, stateful=False)
    return tf.ensure_shape(box, (len(views), 4))

  def resize(crop, view):
    out = tf.image.resize(crop, (view.size, view.size), method=_METHODS[view.interpolation],
                          antialias=True)
    return tf.reshape(tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8), [-1])

  def from_jpeg(data, position):
    # One decode of the window that holds every view's box (DINO's 8 views would otherwise
    # decode 8 windows), then each box sliced from it.
    box = draw(tf.io.extract_jpeg_shape(data), position)
    top, left = tf.reduce_min(box[:, 0]), tf.reduce_min(box[:, 1])
    bottom, right = tf.reduce_max(box[:, 0] + box[:, 2]), tf.reduce_max(box[:, 1] + box[:, 3])
    window = tf.io.decode_and_crop_jpeg(data, tf.stack([top, left, bottom - top, right - left]),
                                        channels=channels)
    return [resize(window[box[v, 0] - top:box[v, 0] - top + box[v, 2],
                          box[v, 1] - left:box[v, 1] - left + box[v, 3]], view)
            for v, view in enumerate(views)]

  def from_other(data, position):  # PNG and the rest: decode whole, then crop
    image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    box = draw(tf.shape(image), position)
    return [resize(image[box[v, 0]:box[v, 0] + box[v, 2], box[v, 1]:box[v, 1] + box[v, 3]], view)
            for v, view in enumerate(views)]

  def example(serialized, position):
    ex = features.deserialize_example(serialized, decoders={"image": tfds.decode.SkipDecoding()})
    data = ex["image"]
    packed = tf.cond(tf.io.is_jpeg(data), lambda: tf.concat(from_jpeg(data, position), 0),
                     lambda: tf.concat(from_other(data, position), 0))
    return packed, tf.cast(ex["label"], tf.int32), position

  def step_records(step):
    serialized, positions = tf.numpy_function(records, [step], (tf.string, tf.int64), stateful=False)
    return tf.ensure_shape(serialized, (per_host,)), tf.ensure_shape(positions, (per_host,))

  dataset = (tf.data.Dataset.range(start_step, _ENDLESS)
             .map(step_records)
             .unbatch()
             .map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
             .batch(per_host)
             .prefetch(prefetch))
  options = tf.data.Options()
  options.threading.private_threadpool_size = num_threads
  options.deterministic = True
  return ViewBatches(dataset.with_options(options))
