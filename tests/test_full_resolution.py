"""Full-resolution images (ImageNet-like, varied sizes) through the pipeline: a tiny synthetic
TFDS dataset (sslax/data/synthetic.py) read by FullResolutionSource, views cropped on the
host from the whole image, and training that still gives the same losses on 1 and 8 devices
and after a resume."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from sslax import train
from sslax.data import crops, pipeline, synthetic
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("fullres"))
  synthetic.write_synthetic_imagenet(root, splits={"train": 24, "validation": 8}, mean_hw=(60, 80))
  return root


def _open(data_dir, split="train"):
  return pipeline.open_source("synthetic_imagenet", split, data_dir=data_dir, image_size=32)


def test_views_are_cropped_from_the_whole_image_by_position(data_dir):
  source = _open(data_dir)
  assert isinstance(source, pipeline.FullResolutionSource) and source.input_shape == (32, 32, 3)
  records = [source.data_source[i] for i in range(len(source))]
  sizes = {Image.open(io.BytesIO(r["image"])).size for r in records}
  assert len(sizes) > 10  # varied sizes, kept as they are

  eval_batch = source.get(np.array([3, 1]))  # the evaluation transform, on the decoded image
  decoded = np.asarray(Image.open(io.BytesIO(records[3]["image"])))
  np.testing.assert_array_equal(eval_batch["image"][0], crops.center_crop(decoded, 32))

  views = [pipeline.HostView(32), pipeline.HostView(16, (0.05, 0.4), interpolation="bicubic")]
  source.crop_views_on_host(views, seed=3)
  kwargs = dict(global_batch=6, seed=1)

  def take(start_step, k, process_index=0, process_count=1):
    it = pipeline.host_batches(source, start_step=start_step, process_index=process_index,
                               process_count=process_count, **kwargs)
    out = [next(it) for _ in range(k)]
    it.close()
    return out

  one = take(0, 5)
  hosts = [take(0, 5, p, 2) for p in (0, 1)]
  resumed = take(3, 2)
  for step, batch in enumerate(one):
    assert batch["image"].shape == (6, 32 * 32 * 3 + 16 * 16 * 3) and batch["image"].dtype == np.uint8
    for key in batch:
      np.testing.assert_array_equal(np.concatenate([h[step][key] for h in hosts]), batch[key])
  for a, b in zip(resumed, one[3:]):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  # Step 4 through Grain and PIL (get_views): view v of the example at stream position p is
  # the crop of its record seeded by (seed, v, p), the views decoded once (random_resized_crops).
  indices, positions = pipeline.global_batch_indices(4, 6, len(source), seed=1)
  reference = source.get_views(indices, positions)
  big, small = pipeline.unpack_views(reference["image"], [32, 16], 3)
  want = crops.random_resized_crops(
      records[indices[2]]["image"], [(3, 0, positions[2]), (3, 1, positions[2])],
      [(32, (0.08, 1.0), (3 / 4, 4 / 3), "bilinear"), (16, (0.05, 0.4), (3 / 4, 4 / 3), "bicubic")])
  np.testing.assert_array_equal(big[2], want[0])
  np.testing.assert_array_equal(small[2], want[1])
  # host_batches loads them with tf.data (tf_views.py): the same boxes, decoded and resized by
  # TensorFlow: equal up to a few levels (a box one pixel off differs by tens).
  np.testing.assert_array_equal(one[4]["label"], reference["label"])
  difference = np.abs(one[4]["image"].astype(int) - reference["image"])
  assert difference.mean() < 2.0 and np.percentile(difference, 99) <= 8


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["loss"] for r in map(json.loads, f)}


def test_training_on_full_resolution_is_device_count_and_resume_independent(data_dir, tmp_path):
  def config(devices, steps=4):
    c = tiny_config(data_dir)
    c.data.name, c.data.image_size, c.data.in_memory = "synthetic_imagenet", 32, None
    c.batch_size, c.num_devices, c.total_steps = 8, devices, steps
    return c

  train.train(config(8), str(tmp_path / "d8"))
  resumed = str(tmp_path / "d1")
  train.train(config(1, steps=2), resumed)  # stops at the step-2 checkpoint
  train.train(config(1), resumed)  # picks up at step 2
  on8, on1 = _losses(tmp_path / "d8"), _losses(resumed)
  assert on1[4] != on1[1]
  np.testing.assert_allclose([on1[s] for s in range(1, 5)], [on8[s] for s in range(1, 5)], rtol=2e-5)


def test_make_views_fn_crops_every_view_on_the_host(data_dir):
  import importlib.util

  import jax
  import ml_collections

  from sslax import step
  from sslax.data import augment

  spec = importlib.util.spec_from_file_location(
      "dino_imagenet", os.path.join(os.path.dirname(__file__), "..", "configs", "dino_imagenet.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  source = _open(data_dir)
  step.make_views_fn(config, source)  # DINO's local crops: their own size and scale
  want = [(augment.view_size(v, config.data.image_size), tuple(v.crop_scale))
          for v in config.views.values()]
  assert [(v.size, v.scale) for v in source.host_views] == want
  assert want[0][0] == 224 and want[-1][0] == 96

  # On the device a host-cropped view is only flipped (here never) and normalized.
  config = tiny_config(data_dir)
  config.data.image_size = 32
  plain = augment.crop_flip_view_config((0.08, 1.0))
  plain.flip_p = 0.0
  config.views = ml_collections.ConfigDict({"a": plain, "b": plain.copy_and_resolve_references()})
  config.views.b.size = 16
  views_fn = step.make_views_fn(config, source)
  indices, positions = pipeline.global_batch_indices(0, 4, len(source), seed=0)
  packed = source.get_views(indices, positions)["image"]
  got = jax.jit(views_fn)(packed, positions)
  for view, crop in zip(got, pipeline.unpack_views(packed, [32, 16], 3)):
    want = (crop / 255.0 - np.asarray(source.pixel_mean)) / np.asarray(source.pixel_std)
    np.testing.assert_allclose(np.asarray(view), want, atol=1e-5)
