"""Training throughput of the training step (augmentation + forward + backward + optimizer).

Prints images/s (source images; each gives two views) as the median over repeated
steps, compile time excluded and reported separately. Synthetic uint8 images, so no
dataset is needed; the step is the trainer's own, built by sslax.assemble.build from an
injected synthetic source, run over every local device.

  python benchmarks/throughput.py            # ConvNet on 28x28x1 and ResNet-18 on 32x32x3, batch 256
  python benchmarks/throughput.py --models=resnet18 --batch_size=512 --image_size=64
  python benchmarks/throughput.py --configs=configs/byol_fashion_mnist.py,configs/dino_fashion_mnist.py

With --configs, each config file's own step (its method, encoder, views, optimizer and
batch) on synthetic images of its data.image_size (1 channel for fashion_mnist, else 3).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time

import jax
import numpy as np

from sslax import assemble, parallel
from sslax import config as config_lib
from sslax.data import pipeline
from sslax.data.augment import default_view_config
from sslax.methods import get_method
from sslax.models import encoder_config

# name -> (encoder config, default input (size, channels)): the ConvNet of
# configs/simclr_fashion_mnist.py on Fashion-MNIST, a CIFAR-style ResNet-18 on CIFAR-10.
MODELS = {
    "convnet": (dict(name="convnet", widths=(64, 128, 256)), (28, 1)),
    "resnet18": (dict(name="resnet18", stem="cifar"), (32, 3)),
}


def make_config(model: str, batch_size: int, image_size: int):
  config = config_lib.base_config()
  config.batch_size = batch_size
  config.data.image_size = image_size
  config.model = encoder_config(**MODELS[model][0])
  method = get_method("simclr")
  config.method = method.defaults()
  config.method.projector_hidden = (512,)
  view = default_view_config(blur_p=0.0)
  config.views.view1, config.views.view2 = view, view.copy_and_resolve_references()
  return config


def load_config(path: str):
  spec = importlib.util.spec_from_file_location("experiment_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def benchmark(name: str, config, channels: int, steps: int) -> dict:
  batch_size, image_size = config.batch_size, config.data.image_size
  config = config.copy_and_resolve_references()
  config.online_probe.enabled = config.diagnostics.enabled = False  # the method's step alone
  config.num_devices = -1
  config_lib.validate(config)
  mesh = assemble.make_mesh(config)
  source = pipeline.synthetic_images(batch_size, (image_size, image_size, channels))
  run = assemble.build(config, mesh, source=source)
  state, step_fn = run.state, run.step_fn
  batches = [parallel.shard_host_batch(
      {**source.get(np.arange(batch_size)), "position": np.arange(i * batch_size, (i + 1) * batch_size)},
      mesh) for i in range(2)]

  start = time.perf_counter()
  state, metrics = step_fn(state, batches[0])
  jax.block_until_ready(metrics)
  compile_seconds = time.perf_counter() - start
  times = []
  for i in range(steps):
    start = time.perf_counter()
    state, metrics = step_fn(state, batches[i % 2])
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  return dict(model=name, batch_size=batch_size, image=f"{image_size}x{image_size}x{channels}",
              devices=mesh.devices.size, compile_s=compile_seconds, step_s=median,
              images_per_s=batch_size / median)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="convnet,resnet18")
  parser.add_argument("--configs", default="", help="comma-separated config files (instead of --models)")
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--image_size", type=int, default=None, help="default: per model, see MODELS")
  parser.add_argument("--channels", type=int, default=None)
  parser.add_argument("--steps", type=int, default=10)
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform} x{len(jax.devices())} "
        f"({jax.devices()[0].device_kind})")
  print(f"{'step of':32s} {'batch':>5s} {'image':>9s} {'compile s':>9s} {'step s':>7s} {'images/s':>9s}")
  runs = []
  if args.configs:
    for path in args.configs.split(","):
      config = load_config(path)
      channels = 1 if config.data.name == "fashion_mnist" else 3
      runs.append((os.path.basename(path)[:-3], config, channels))
  else:
    for name in args.models.split(","):
      size, channels = MODELS[name][1]
      runs.append((name, make_config(name, args.batch_size, args.image_size or size),
                   args.channels or channels))
  for name, config, channels in runs:
    r = benchmark(name, config, channels, args.steps)
    print(f"{r['model']:32s} {r['batch_size']:5d} {r['image']:>9s} {r['compile_s']:9.1f} "
          f"{r['step_s']:7.3f} {r['images_per_s']:9.1f}", flush=True)


if __name__ == "__main__":
  main()
