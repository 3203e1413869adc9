"""Images as sequences of patches and back (MAE's patch order: row by row)."""

from __future__ import annotations

import jax


def patchify(images: jax.Array, patch: int) -> jax.Array:
  """[B, H, W, C] -> [B, N, p*p*C]: patches row by row, each flattened as (row, col, channel)."""
  b, h, w, c = images.shape
  x = images.reshape(b, h // patch, patch, w // patch, patch, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: jax.Array, patch: int, height: int, width: int) -> jax.Array:
  """The inverse of `patchify`: [B, N, p*p*C] -> [B, H, W, C]."""
  b, n, d = patches.shape
  c = d // (patch * patch)
  x = patches.reshape(b, height // patch, width // patch, patch, patch, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, height, width, c)
