"""Test data the tests make: tiny Fashion-MNIST-format idx files, and a tiny config."""

from __future__ import annotations

import gzip
import os

import numpy as np


def write_idx(path: str, array: np.ndarray) -> None:
  """uint8 idx file: 0, 0, 0x08, ndim, big-endian int32 dims, data."""
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
  with gzip.open(path, "wb") as f:
    f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def write_tiny_fashion_mnist(folder: str, train: int = 64, test: int = 32, seed: int = 0) -> None:
  """Ten classes of noisy 28x28 blobs at class-dependent positions."""
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  for prefix, n in (("train", train), ("t10k", test)):
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    yy, xx = np.mgrid[:28, :28]
    centers = np.stack([6 + 2 * labels, 20 - labels], axis=1)
    images = np.exp(-((yy - centers[:, 0, None, None]) ** 2 + (xx - centers[:, 1, None, None]) ** 2) / 20.0)
    images = np.clip(255 * images + rng.normal(0, 20, size=images.shape), 0, 255).astype(np.uint8)
    write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), images)
    write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), labels)


def tiny_config(data_dir: str):
  """The CPU SimCLR config, shrunk so a step takes milliseconds."""
  import importlib.util

  spec = importlib.util.spec_from_file_location(
      "simclr_fashion_mnist", os.path.join(os.path.dirname(__file__), "..", "configs", "simclr_fashion_mnist.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.data_dir = data_dir
  config.batch_size = 16
  config.total_steps = 4
  config.log_every_steps = 1
  config.checkpoint_every_steps = 2
  config.async_checkpoints = False
  config.model.widths = (8, 16)
  config.method.projector_hidden = (32,)
  config.method.projector_dim = 16
  config.optimizer.warmup_steps = 1
  config.eval.batch_size = 32
  config.eval.probe_weight_decays = (1e-4,)
  config.eval.knn_k = 5
  return config


def read_idx(path: str) -> np.ndarray:
  """The uint8 array of an idx file written by `write_idx` (or Fashion-MNIST's own)."""
  with gzip.open(path) as f:
    data = f.read()
  ndim = data[3]
  shape = np.frombuffer(data[4:4 + 4 * ndim], ">i4")
  return np.frombuffer(data[4 + 4 * ndim:], np.uint8).reshape(shape)
