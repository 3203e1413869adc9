"""Reconstruction pictures of a self-prediction run (MAE, denoising autoencoder, inpainting, ...).

  python -m sslax.reconstruct --config=CONFIG --workdir=DIR --out=FILE.png \
      [--num_images=8] [--split=test] [--scale=0]

Loads the newest checkpoint in DIR (as --mode=evaluate does), takes the first N images of
the split, as the evaluation sees them (center view, normalized as in training), and has
the method rebuild them (`Method.reconstruct`, sslax/methods/base.py) with the network its
loss trains (the checkpoint's params and batch_stats) and one PRNG key per image,
split from config.seed. The PNG has one row per kind: the input, its corrupted (masked,
noised, ...) version and the network's reconstruction; one column per image; pixels
un-normalized (x * std + mean, clipped to [0, 1]) and upscaled by nearest neighbour so
small images are visible. Grayscale images give a grayscale PNG, RGB an RGB one.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from sslax.errors import ConfigError

ROWS = ("input", "corrupted", "reconstruction")
MIN_SIDE = 96  # --scale=0 upscales each picture to at least this many pixels


def picture_grid(rows: Sequence[np.ndarray], *, scale: int = 1, gap: int = 2,
                 background: int = 255) -> np.ndarray:
  """rows: R arrays [N, H, W, C] of floats in [0, 1] -> uint8 [R*H*s + (R+1)*gap, N*W*s +
  (N+1)*gap, C]: picture (r, n) upscaled s times (nearest) with its top-left corner at
  (gap + r * (H*s + gap), gap + n * (W*s + gap)), `background` in the gaps and border."""
  rows = [np.asarray(r, np.float32) for r in rows]
  count, height, width, channels = rows[0].shape
  if any(r.shape != rows[0].shape for r in rows):
    raise ValueError(f"every row needs the same [N, H, W, C]; got {[r.shape for r in rows]}")
  cell_h, cell_w = height * scale, width * scale
  grid = np.full((len(rows) * (cell_h + gap) + gap, count * (cell_w + gap) + gap, channels),
                 background, np.uint8)
  for r, row in enumerate(rows):
    pixels = np.round(np.clip(row, 0.0, 1.0) * 255).astype(np.uint8)
    pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
    for n in range(count):
      top, left = gap + r * (cell_h + gap), gap + n * (cell_w + gap)
      grid[top:top + cell_h, left:left + cell_w] = pixels[n]
  return grid


def write_png(path: str, grid: np.ndarray) -> None:
  """uint8 [H, W, 1] (grayscale) or [H, W, 3] (RGB) -> a PNG file."""
  from PIL import Image

  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path, format="PNG")


def _require_reconstruction(config) -> object:
  from sslax.methods import available_methods, get_method

  method = get_method(config.method.name)
  if method.reconstruct is None:
    able = [name for name in available_methods() if get_method(name).reconstruct is not None]
    raise ConfigError(
        f"config.method.name: {method.name!r} reconstructs nothing (its Method.reconstruct is "
        "None); pictures come from self-prediction methods: "
        + (", ".join(able) if able else "none is registered yet"))
  return method


def reconstruction_rows(config, workdir: str, *, num_images: int = 8, split: str = "") -> dict:
  """{"input", "corrupted", "reconstruction"}: [N, H, W, C] in [0, 1], from the newest
  checkpoint in WORKDIR and the first `num_images` images of `split` (config.data.test_split
  if empty)."""
  import jax

  from sslax import assemble, parallel
  from sslax import config as config_lib
  from sslax.data import augment

  config_lib.validate(config)
  method = _require_reconstruction(config)
  run = assemble.restore_latest(config, workdir, assemble.make_mesh(config))
  model, state = run.model, run.state

  source = assemble.open_split(config, split or config.data.test_split)
  if not 0 < num_images <= len(source):
    raise ConfigError(f"--num_images: {num_images}, but the split has {len(source)} "
                                 f"images; choose 1 to {len(source)}")
  images = source.get(np.arange(num_images))["image"]
  mean, std = np.asarray(run.source.pixel_mean, np.float32), np.asarray(run.source.pixel_std, np.float32)
  views = augment.normalize(augment.center_view(images, config.data.image_size), mean, std)
  keys = jax.random.split(jax.random.key(config.seed), num_images)
  variables = parallel.to_host({"params": state.params, "batch_stats": state.batch_stats})
  out = jax.jit(lambda v, x, k: method.reconstruct(model, v, x, k, config))(variables, views, keys)
  rows = {}
  for kind in ROWS:
    if kind not in out or out[kind].shape != views.shape:
      raise ValueError(f"method {method.name!r}: reconstruct must return {ROWS}, each shaped "
                       f"like the views {views.shape}; got {({k: v.shape for k, v in out.items()})}")
    rows[kind] = np.clip(np.asarray(out[kind]) * std + mean, 0.0, 1.0)
  return rows


def auto_scale(height: int) -> int:
  return max(1, math.ceil(MIN_SIDE / height))


def main(argv) -> None:
  del argv
  from absl import flags

  from sslax import cli

  args = flags.FLAGS
  rows = cli.run_tool(lambda: reconstruction_rows(args.config, args.workdir,
                                                  num_images=args.num_images, split=args.split))
  height = rows["input"].shape[1]
  write_png(args.out, picture_grid([rows[k] for k in ROWS], scale=args.scale or auto_scale(height)))
  print(f"wrote {args.out}: rows {', '.join(ROWS)}; {args.num_images} images", flush=True)


def define_flags() -> None:
  """Only when run as a program: importing this module must not define flags that clash
  with sslax.main's."""
  from absl import flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "The pretraining run's directory (its checkpoints/).")
  flags.DEFINE_string("out", None, "The PNG file to write.")
  flags.DEFINE_integer("num_images", 8, "How many images (columns), the first of the split.")
  flags.DEFINE_string("split", "", "Which split; empty: config.data.test_split.")
  flags.DEFINE_integer("scale", 0, f"Upscaling factor; 0: to at least {MIN_SIDE} px per picture.")
  flags.mark_flags_as_required(["config", "workdir", "out"])


if __name__ == "__main__":
  from absl import app

  define_flags()
  app.run(main)
