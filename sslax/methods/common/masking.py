"""Which positions a self-prediction method hides: random patches (MAE, data2vec) and
non-overlapping spans of real positions (masked frames, masked tokens), each example's
choice a function of its own key, so it does not depend on the device it lands on."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax.data import augment
from sslax.errors import ConfigError


def require_vit(config: ml_collections.ConfigDict, method: str) -> None:
  """A ConfigError unless config.model is a ViT (the masked-patch methods need one)."""
  if not config.model.name.startswith("vit"):
    raise ConfigError(
        f"config.model.name={config.model.name!r}: {method} masks patches of a ViT; use vit, "
        "vit_tiny, vit_small or vit_base")


def check_mask_ratio(config: ml_collections.ConfigDict) -> None:
  """The validate-time form of `random_masking`'s check: config.method.mask_ratio leaves a
  visible patch of config.model.patch_size in every view."""
  patch = config.model.get("patch_size", 0)
  for view in config.views.values():
    size = augment.view_size(view, config.data.image_size)
    if patch and size >= patch:
      num_patches = (size // patch) ** 2
      if int(num_patches * (1 - config.method.mask_ratio)) < 1:
        raise ConfigError(
            f"config.method.mask_ratio={config.method.mask_ratio} leaves no visible patch of "
            f"{num_patches}; lower it or use smaller patches")


def random_masking(keys: jax.Array, num_patches: int, mask_ratio: float):
  """Per-example random masking from one key per example.

  -> keep [B, n_keep] int32 (indices of the visible patches, in increasing noise order),
     mask [B, N] float32 (1 = hidden, in patch order), restore [B, N] int32 (position of
     every patch in the (visible, hidden) order: the decoder's unshuffle).
  """
  num_keep = int(num_patches * (1 - mask_ratio))
  if num_keep < 1:
    raise ConfigError(
        f"config.method.mask_ratio={mask_ratio} leaves no visible patch of {num_patches}; "
        "lower it or use smaller patches")
  noise = jax.vmap(lambda k: jax.random.uniform(k, (num_patches,)))(keys)
  shuffle = jnp.argsort(noise, axis=1)
  restore = jnp.argsort(shuffle, axis=1)
  mask = (restore >= num_keep).astype(jnp.float32)
  return shuffle[:, :num_keep].astype(jnp.int32), mask, restore.astype(jnp.int32)


def num_spans(length: jax.Array, mask_ratio: float, span: int) -> jax.Array:
  """Spans of `span` frames covering about mask_ratio of `length` real frames: at least one
  when one fits, never more than fit side by side."""
  n = jnp.floor(mask_ratio * length / span + 0.5).astype(jnp.int32)  # round half up
  return jnp.clip(n, jnp.minimum(1, length // span), length // span)


def max_chosen(length: int, mask_ratio: float, span: int) -> int:
  """The most positions `choose_spans` chooses in a sequence of `length` real ones (a static
  bound: the count grows with the length)."""
  # num_spans rounds in float32; take the larger of float32 and float64 so a tie rounded
  # differently can only leave room to spare.
  n = max(int(np.floor(np.float32(mask_ratio) * np.float32(length) / np.float32(span) + np.float32(0.5))),
          int(np.floor(mask_ratio * length / span + 0.5)))
  return min(max(n, min(1, length // span)), length // span) * span


def _choose_one(key: jax.Array, real: jax.Array, mask_ratio: float, span: int):
  """real [T] bool (a prefix) -> chosen [T] bool, owner [T] int32 (the first position of the
  span that chose each position; 0 where none did)."""
  length = real.shape[0]
  n = num_spans(jnp.sum(real, dtype=jnp.int32), mask_ratio, span)
  # n non-overlapping spans among L positions, every arrangement equally likely: choose n of
  # the L - n (span - 1) slots, then the i-th chosen slot (in order) starts at slot + i (span - 1).
  slots = jnp.sum(real, dtype=jnp.int32) - n * (span - 1)
  position = jnp.arange(length)
  noise = jnp.where(position < slots, jax.random.uniform(key, (length,)), jnp.inf)
  rank = jnp.argsort(jnp.argsort(noise))
  selected = rank < n                                         # [T] slots
  start = position + (jnp.cumsum(selected) - 1) * (span - 1)  # [T] where selected
  member = (selected[:, None] & (start[:, None] <= position[None])
            & (position[None] < start[:, None] + span))      # [slot, position]
  chosen = jnp.any(member, axis=0)
  owner = jnp.sum(jnp.where(member, start[:, None], 0), axis=0).astype(jnp.int32)
  return chosen, owner


def choose_spans(keys: jax.Array, mask: jax.Array, mask_ratio: float, span: int):
  """keys [B], mask [B, T] bool -> (chosen [B, T] bool, owner [B, T] int32: the start of the
  span each chosen position belongs to). Only real positions are chosen; example b's
  choice depends on keys[b] and mask[b] alone."""
  if span < 1:
    raise ConfigError(f"config.method.span must be >= 1, got {span}")
  return jax.vmap(lambda k, m: _choose_one(k, m, mask_ratio, span))(keys, mask.astype(bool))


def decide(keys: jax.Array, owner: jax.Array, mask_prob: float, random_prob: float):
  """The zero/replace/keep draw of each chosen span, shared by its positions: keys [B]
  (already the decision stream), owner [B, T] -> (masked, replaced) [B, T] bool, before
  intersecting with `chosen`."""
  u = jax.vmap(lambda k: jax.random.uniform(k, owner.shape[1:]))(keys)
  u = jnp.take_along_axis(u, owner, axis=1)
  return u < mask_prob, (u >= mask_prob) & (u < mask_prob + random_prob)


def check_mask_probabilities(config: ml_collections.ConfigDict) -> None:
  """BERT-style corruption keys: mask_ratio in (0, 1); mask_prob, random_prob >= 0 with a sum <= 1."""
  cfg = config.method
  if not 0 < cfg.mask_ratio < 1:
    raise ConfigError(f"config.method.mask_ratio must be in (0, 1), got {cfg.mask_ratio}")
  if cfg.mask_prob < 0 or cfg.random_prob < 0 or cfg.mask_prob + cfg.random_prob > 1:
    raise ConfigError(
        f"config.method.mask_prob={cfg.mask_prob} and random_prob={cfg.random_prob} must be "
        ">= 0 with a sum <= 1 (the rest of the chosen positions is kept)")
