"""Jigsaw puzzles (Noroozi & Favaro 2016): the view is cut into a 3x3 grid of cells, a
tile smaller than its cell is cropped at a random offset inside each cell (random gaps
between tiles and jitter), the 9 tiles are shuffled by one permutation of a fixed set,
and a context-free network predicts which one:

  tiles t_0..t_8 in grid (row-major) order, label k ~ U{0..N-1}, p = P[k],
  input slot i holds tile t_{p[i]},
  logits = classifier(concat_i f(t_{p[i]})),  L = CE(logits, k),

with f the shared encoder applied to each tile alone (the context-free network) and the
classifier an MLP over the 9 concatenated tile features (the paper's fc7, fc8).

The permutation set P (`permutation_set`) has config.method.num_permutations members
(100 by default) chosen greedily for a large Hamming distance: start from a random
permutation (config.method.permutation_seed), then repeatedly add the permutation of
all 9! whose minimum Hamming distance to the set so far is largest, ties broken by the
largest total distance to the set (the paper's Algorithm 1 criterion), then by
lexicographic order. The paper's Algorithm 1 maximizes the average distance alone; the
maximin rule used here also bounds the closest pair: the default 100 from seed 0 are
pairwise at least 6 apart (average 8.08; 7 for a set of 30, 5 for 1000), where the
average-only rule from the same start reaches the same average 8.08 but a minimum of 2
(tests/test_pretext_methods.py checks the 6 and the 7). At most 72 permutations of 9 can
be pairwise 8 apart. 100 take under a second (1000: about 7 s). The set is generated
deterministically in `init_state` and kept in the method state, so it is saved with
every checkpoint and a resumed run uses the set it was trained with.

Against shortcuts (as the paper): the gaps and jitter (a tile of
config.method.tile_size pixels at a random offset in its cell of view_size // 3), each
tile standardized to zero mean and unit std per channel on its own
(config.method.normalize_tiles), and, for colour images, each colour channel of each
tile cropped with its own spatial jitter of up to config.method.channel_jitter pixels
(clipped to the image), against chromatic aberration; with one channel (Fashion-MNIST)
there is nothing to misalign and it is a no-op. Random grayscale images, if wanted, are
the view's gray_p.

All draws of example b (permutation, tile offsets, channel shifts) come from its key
inputs.keys[b], so they do not depend on the device count.
"""

from __future__ import annotations

import functools
import itertools
import math

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

GRID = 3
NUM_TILES = GRID * GRID


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      num_permutations=100,     # paper: 1000 in the main results, 100 in the set-size study
      permutation_seed=0,       # the first permutation of the greedy set
      tile_size=64,             # paper: 64 px tiles in 75 px cells of a 225 px crop
      channel_jitter=2,         # paper: each colour channel of a tile jittered by 0, +-1, +-2 px
      normalize_tiles=True,     # paper: mean and std of each tile normalized independently
      tile_norm_eps=1e-2,       # variance floor of that normalization (normalized-view units)
      classifier_hidden=(4096,),  # paper: fc7 4096 over the 9 concatenated fc6, then fc8
  ))


# ----------------------------------------------------------------------------
# The permutation set
# ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def all_permutations() -> np.ndarray:
  """Every permutation of 0..8, lexicographic order: int8 [362880, 9]."""
  return np.array(list(itertools.permutations(range(NUM_TILES))), dtype=np.int8)


@functools.lru_cache(maxsize=8)
def _permutation_set(size: int, seed: int) -> np.ndarray:
  candidates = all_permutations()
  if not 1 <= size <= len(candidates):
    raise ConfigError(f"config.method.num_permutations: must be in [1, {len(candidates)}], got {size}")
  first = int(np.random.default_rng(seed).integers(len(candidates)))
  chosen = [first]
  min_distance = np.count_nonzero(candidates != candidates[first], axis=1).astype(np.int64)
  total_distance = min_distance.copy()
  scale = NUM_TILES * size + 1  # > any total distance: min distance first, then the total
  for _ in range(size - 1):
    score = min_distance * scale + total_distance
    score[chosen] = -1
    index = int(np.argmax(score))
    chosen.append(index)
    distance = np.count_nonzero(candidates != candidates[index], axis=1)
    np.minimum(min_distance, distance, out=min_distance)
    total_distance += distance
  return candidates[chosen].astype(np.int32)


def permutation_set(size: int, seed: int) -> np.ndarray:
  """The greedy maximal-Hamming-distance set (module docstring): int32 [size, 9], row k
  the permutation of class k; a pure function of (size, seed)."""
  return _permutation_set(int(size), int(seed)).copy()


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  return {"permutations": jnp.asarray(permutation_set(config.method.num_permutations,
                                                      config.method.permutation_seed))}


# ----------------------------------------------------------------------------
# Puzzles
# ----------------------------------------------------------------------------

def tile_origins(key: jax.Array, view_size: int, tile_size: int) -> jax.Array:
  """The top-left corner of the tile in each grid cell, row-major: int32 [9, 2], uniform
  over the positions that keep the tile inside its cell of side view_size // 3."""
  cell = view_size // GRID
  corners = jnp.array([(r * cell, c * cell) for r in range(GRID) for c in range(GRID)], jnp.int32)
  return corners + jax.random.randint(key, (NUM_TILES, 2), 0, cell - tile_size + 1, jnp.int32)


def jigsaw_puzzle(key: jax.Array, image: jax.Array, permutations: jax.Array, tile_size: int,
                  channel_jitter: int = 0):
  """One puzzle of one view image [S, S, C]:
  -> (tiles [9, t, t, C] shuffled: slot i holds the tile of grid cell permutations[label][i],
      label int32 scalar, origins [9, 2] of the tiles in grid order,
      shifts [9, C, 2]: channel c of the tile of cell g is cropped at
      clip(origins[g] + shifts[g, c], 0, S - t); zero unless C > 1 and channel_jitter > 0)."""
  size, channels = image.shape[0], image.shape[-1]
  k_label, k_origin, k_shift = jax.random.split(key, 3)
  label = jax.random.randint(k_label, (), 0, permutations.shape[0], jnp.int32)
  origins = tile_origins(k_origin, size, tile_size)
  if channels > 1 and channel_jitter > 0:
    shifts = jax.random.randint(k_shift, (NUM_TILES, channels, 2), -channel_jitter,
                                channel_jitter + 1, jnp.int32)

    def tile(origin, shift):
      corners = jnp.clip(origin + shift, 0, size - tile_size)  # [C, 2]
      per_channel = jax.vmap(lambda c, o: crop(image[..., c, None], o, tile_size))(
          jnp.arange(channels), corners)  # [C, t, t, 1]
      return jnp.moveaxis(per_channel[..., 0], 0, -1)
    tiles = jax.vmap(tile)(origins, shifts)
  else:
    shifts = jnp.zeros((NUM_TILES, channels, 2), jnp.int32)
    tiles = jax.vmap(lambda o: crop(image, o, tile_size))(origins)
  return tiles[permutations[label]], label, origins, shifts


def validate(config: ml_collections.ConfigDict) -> None:
  cfg = config.method
  check_parts(config, NUM_TILES)
  if not 1 <= cfg.num_permutations <= math.factorial(NUM_TILES):
    raise ConfigError(f"config.method.num_permutations: must be in [1, {math.factorial(NUM_TILES)}], "
                      f"got {cfg.num_permutations}")
  for name, size in view_sizes(config).items():
    if not 1 <= cfg.tile_size <= size // GRID:
      raise ConfigError(
          f"config.method.tile_size: {cfg.tile_size} px tiles do not fit the {size // GRID} px "
          f"cells of view {name!r} ({size} px); use a tile_size in [1, {size // GRID}] or a "
          f"larger views.{name}.size")


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return build_parts_classifier(config, num_parts=NUM_TILES, num_classes=config.method.num_permutations)


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  view = inputs.views[0]
  puzzle = functools.partial(jigsaw_puzzle, permutations=inputs.state["permutations"],
                             tile_size=cfg.tile_size, channel_jitter=cfg.channel_jitter)
  tiles, labels, _, _ = jax.vmap(puzzle)(require_keys(inputs, "jigsaw"), view)
  if cfg.normalize_tiles:
    tiles = standardize(tiles, cfg.tile_norm_eps)
  tiles = tiles.reshape((-1,) + tiles.shape[2:])  # [B * 9, t, t, C], each example's slots in order
  return classification_loss(model, variables, tiles, labels, axis_name)


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                init_state=init_state)
