"""Relative patch position (Doersch, Gupta & Efros 2015): a patch from the centre of a
3x3 grid of patches and one of its 8 neighbours go through the same encoder, and a
classifier over the pair of features predicts where the neighbour is:

  label k ~ U{0..7}: the neighbour cell NEIGHBOURS[k], row-major around the centre
    (0 top-left, 1 top, 2 top-right, 3 left, 4 right, 5 bottom-left, 6 bottom, 7 bottom-right),
  logits = classifier(concat(f(centre), f(neighbour))),  L = CE(logits, k).

Sampling (per example, inside the view [S, S, C]): cells of config.method.patch_size
(P) pixels with config.method.patch_gap (G) pixels between them, so the grid spans
3P + 2G; the grid's corner is uniform over the positions that keep it at least
config.method.patch_jitter (J) pixels inside the view, and each patch then moves by its
own uniform offset in [-J, J] on both axes. Every patch therefore stays inside the view
(needs S >= 3P + 2G + 2J, checked by `validate`) and the neighbour's offset from the centre
patch is (dr, dc) * (P + G) + its jitter - the centre's, with (dr, dc) the label's
direction. The gap and jitter are the paper's guards against the trivial shortcuts of
boundary patterns and lines continuing between the patches (paper: P 96, G 48, J up to 7).

The other shortcut the paper names is chromatic aberration (the lens shifts colour
channels differently towards the image corners, which tells a patch's absolute
position). config.method.chroma_guard picks one of the paper's two remedies, applied to
every patch: "drop" (color dropping: keep one random channel, replace the other two by
Gaussian noise of 1/100 of the kept channel's std) or "project" (project every pixel
onto the plane orthogonal to the green-magenta axis a = (-1, 2, -1): I - a a^T / a^T a),
or "none". With one channel (Fashion-MNIST) there is no chromatic aberration and every
choice is the identity.

All draws of example b come from its key inputs.keys[b], so they do not depend on the
device count.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax.errors import ConfigError
from sslax.methods.base import Method, StepInputs, name_of
from sslax.methods.common.pretext import (
  build_parts_classifier,
  check_parts,
  classification_loss,
  crop,
  require_keys,
  standardize,
  view_sizes,
)

NEIGHBOURS = np.array([(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)], np.int32)
NUM_CLASSES = len(NEIGHBOURS)  # 8
CHROMA_GUARDS = ("drop", "project", "none")
GREEN_MAGENTA = np.array([-1.0, 2.0, -1.0], np.float32)


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      patch_size=96,            # paper: 96 px patches
      patch_gap=48,             # paper: 48 px between neighbouring patches
      patch_jitter=7,           # paper: each patch jittered by up to 7 px
      chroma_guard="drop",      # "drop" | "project" | "none"; identity on 1-channel data
      normalize_patches=False,  # True: each patch to zero mean, unit std per channel
      patch_norm_eps=1e-2,
      classifier_hidden=(4096, 4096),  # paper: fc6 per patch, then fc7, fc8 over the pair
  ))


def sample_pair(key: jax.Array, image: jax.Array, patch_size: int, gap: int, jitter: int):
  """One (centre, neighbour) pair of one view image [S, S, C]:
  -> (patches [2, P, P, C] (centre, neighbour), label int32 scalar, origins int32 [2, 2]:
      the top-left corner of each patch)."""
  size = image.shape[0]
  span = 3 * patch_size + 2 * gap
  k_label, k_grid, k_jitter = jax.random.split(key, 3)
  label = jax.random.randint(k_label, (), 0, NUM_CLASSES, jnp.int32)
  corner = jax.random.randint(k_grid, (2,), jitter, size - span - jitter + 1, jnp.int32)
  shifts = jax.random.randint(k_jitter, (2, 2), -jitter, jitter + 1, jnp.int32)
  cells = jnp.stack([jnp.ones((2,), jnp.int32), jnp.asarray(NEIGHBOURS)[label]])
  origins = corner + cells * (patch_size + gap) + shifts
  patches = jax.vmap(lambda o: crop(image, o, patch_size))(origins)
  return patches, label, origins


def chroma_guard(key: jax.Array, patch: jax.Array, mode: str) -> jax.Array:
  """The chromatic-aberration guard of one patch [P, P, C] (module docstring)."""
  if mode not in CHROMA_GUARDS:
    raise ConfigError(f"config.method.chroma_guard: {mode!r} is not one of {list(CHROMA_GUARDS)}")
  if patch.shape[-1] == 1 or mode == "none":
    return patch
  if patch.shape[-1] != 3:
    raise ValueError(f"chroma_guard {mode!r} needs 1 or 3 channels, got {patch.shape[-1]}")
  if mode == "project":
    a = jnp.asarray(GREEN_MAGENTA)
    return patch - (patch @ a)[..., None] * a / jnp.dot(a, a)
  k_keep, k_noise = jax.random.split(key)
  keep = jax.random.randint(k_keep, (), 0, 3)
  kept = jnp.take(patch, keep, axis=-1)
  noise = jax.random.normal(k_noise, patch.shape, patch.dtype) * (0.01 * jnp.std(kept))
  return jnp.where(jnp.arange(3) == keep, patch, noise)


def example_parts(key: jax.Array, image: jax.Array, cfg: ml_collections.ConfigDict):
  """sample_pair then the chroma guard on each patch: -> (patches [2, P, P, C], label, origins)."""
  k_pair, k_guard = jax.random.split(key)
  patches, label, origins = sample_pair(k_pair, image, cfg.patch_size, cfg.patch_gap, cfg.patch_jitter)
  patches = jax.vmap(functools.partial(chroma_guard, mode=cfg.chroma_guard))(
      jax.random.split(k_guard, 2), patches)
  return patches, label, origins


def validate(config: ml_collections.ConfigDict) -> None:
  cfg = config.method
  check_parts(config, 2)
  if cfg.chroma_guard not in CHROMA_GUARDS:
    raise ConfigError(f"config.method.chroma_guard: {cfg.chroma_guard!r} is not one of {list(CHROMA_GUARDS)}")
  if cfg.patch_size < 1 or cfg.patch_gap < 0 or cfg.patch_jitter < 0:
    raise ConfigError("config.method.patch_size / patch_gap / patch_jitter: need size >= 1, "
                      f"gap >= 0, jitter >= 0, got {cfg.patch_size}, {cfg.patch_gap}, {cfg.patch_jitter}")
  need = 3 * cfg.patch_size + 2 * cfg.patch_gap + 2 * cfg.patch_jitter
  for name, size in view_sizes(config).items():
    if size < need:
      raise ConfigError(
          f"config.method.patch_size: a 3x3 grid of {cfg.patch_size} px patches, gap "
          f"{cfg.patch_gap} and jitter {cfg.patch_jitter} needs a {need} px view, view {name!r} "
          f"is {size} px; shrink the patches or set views.{name}.size >= {need}")


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return build_parts_classifier(config, num_parts=2, num_classes=NUM_CLASSES)


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  patches, labels, _ = jax.vmap(functools.partial(example_parts, cfg=cfg))(
      require_keys(inputs, "relative_patch"), inputs.views[0])
  if cfg.normalize_patches:
    patches = standardize(patches, cfg.patch_norm_eps)
  patches = patches.reshape((-1,) + patches.shape[2:])  # [B * 2, P, P, C]: centre, neighbour
  return classification_loss(model, variables, patches, labels, axis_name)


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate)
