"""Inpainting: the context encoder (Pathak, Krähenbühl, Donahue, Darrell & Efros 2016),
with the reconstruction (L2) loss alone.

A square block of every image is hidden, filled with the dataset mean (0 in the views'
normalization, as the paper fills with the mean pixel), the masked image is encoded and
decoded, and the loss is the squared error on the block only:

  L = sum over the global batch of w * (g(f(x_masked)) - x)^2 / sum of w,
  w = 1 on the hidden block, 0 on the context the network saw.

Block (config.method.block): "center", the paper's central region, or "random", one block
per example at a uniformly drawn position, from the example's key (`StepInputs.keys`), so
it does not depend on the device an example lands on. Its side is block_fraction x the
view's side: 0.5, the paper's 64 px of 128.

Overlap (config.method.overlap, in pixels; 0 by default): as the official code's
`overlapPred` (4 at 128 px, with `overlapL2Weight` 10), the block is predicted with a
margin that overlaps the context: only its interior, `overlap` pixels in from each side, is
hidden, and the loss covers the whole block, the seen margin weighted `overlap_weight`.

Departures: no adversarial loss (the paper's joint loss adds one, for sharper inpainting; a
discriminator is a second network with its own optimizer, beyond what the trainer runs). The decoder reconstructs the
whole image from the encoder's pooled features (sslax/models/decoder.py) and the loss reads
the block, where the paper's decoder outputs only the block through a channel-wise fully
connected layer. The paper's "random block" (several smaller, overlapping blocks) and
"random region" (shapes from segmentation masks) variants are one random square here.
`encode` is the encoder on the whole, unmasked image, the evaluated representation (as the
paper's transfer experiments feed whole images).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common import encoder_decoder
from sslax.methods.common.encoder_decoder import build_encoder_decoder
from sslax.methods.common.pretext import require_keys
from sslax.models.decoder import EncoderDecoder, decoder_defaults

BLOCKS = ("center", "random")


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      block="center",        # "center" (the paper's) or "random" (one block per example)
      block_fraction=0.5,    # block side / view side (the paper's 64 of 128)
      overlap=0,             # pixels of the block's margin left visible and predicted
      overlap_weight=10.0,   # loss weight on that margin (the official code's 10)
      **decoder_defaults(),
  ))


def block_side(size: int, cfg: ml_collections.ConfigDict) -> int:
  return round(cfg.block_fraction * size)


def validate(config: ml_collections.ConfigDict) -> None:
  cfg, size = config.method, config.data.image_size
  if cfg.block not in BLOCKS:
    raise ConfigError(f"config.method.block: {cfg.block!r} is not one of {list(BLOCKS)}")
  side = block_side(size, cfg)
  if not 0 < side <= size:
    raise ConfigError(f"config.method.block_fraction: {cfg.block_fraction} of {size} px gives a "
                      f"block of {side} px; needs 1 to {size}")
  if not 0 <= 2 * cfg.overlap < side:
    raise ConfigError(f"config.method.overlap: {cfg.overlap} px on each side leaves nothing hidden "
                      f"in a {side} px block; needs 0 <= overlap < {(side + 1) // 2}")
  if cfg.overlap_weight < 0:
    raise ConfigError(f"config.method.overlap_weight: must be >= 0, got {cfg.overlap_weight}")
  encoder_decoder.check(config)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return build_encoder_decoder(config)


def block_origin(key: jax.Array, height: int, width: int, side: int, mode: str) -> jax.Array:
  """The block's top-left corner (row, column) int32 [2]: centred, or uniform over every
  position where the side x side block fits."""
  if mode == "center":
    return jnp.array([(height - side) // 2, (width - side) // 2], jnp.int32)
  return jax.random.randint(key, (2,), 0, jnp.array([height - side + 1, width - side + 1]))


def square(origin: jax.Array, height: int, width: int, side: int, inset: int = 0) -> jax.Array:
  """[H, W] bool: True on the side x side square at origin, shrunk by `inset` on every side."""
  rows = jnp.arange(height)[:, None] - origin[0]
  cols = jnp.arange(width)[None, :] - origin[1]
  return ((rows >= inset) & (rows < side - inset)) & ((cols >= inset) & (cols < side - inset))


def mask_one(key: jax.Array, x: jax.Array, cfg: ml_collections.ConfigDict):
  """One normalized image x [H, W, C] -> (masked x [H, W, C], loss weights [H, W, 1],
  hidden [H, W, 1] float: 1 where the network sees the mean instead of x)."""
  height, width, _ = x.shape
  side = block_side(height, cfg)
  origin = block_origin(key, height, width, side, cfg.block)
  hidden = square(origin, height, width, side, cfg.overlap)[..., None]
  block = square(origin, height, width, side)[..., None]
  weights = jnp.where(hidden, 1.0, jnp.where(block, cfg.overlap_weight, 0.0))
  return jnp.where(hidden, 0.0, x), weights, hidden.astype(jnp.float32)


def mask_blocks(keys: jax.Array, views: jax.Array, cfg: ml_collections.ConfigDict):
  """keys [B], views [B, H, W, C] -> (masked [B, H, W, C], weights, hidden [B, H, W, 1])."""
  return jax.vmap(lambda k, x: mask_one(k, x, cfg))(keys, views)


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  clean = inputs.views[0]
  masked, weights, _ = mask_blocks(require_keys(inputs, "inpainting"), clean, cfg)
  reconstruction, new_state = model.apply(variables, masked, train=True, mutable=["batch_stats"])
  return losses.weighted_mse(reconstruction, clean, weights, axis_name), LossAux(new_state["batch_stats"], {})


def reconstruct(model: EncoderDecoder, variables: dict, views: jax.Array, keys: jax.Array,
                config: ml_collections.ConfigDict) -> dict:
  """The views, the masked views (same keys, same blocks as in training) and the context with
  the network's prediction pasted into the hidden part (as the paper's figures; outside the
  block the decoder's output is not trained)."""
  cfg = config.method
  masked, _, hidden = mask_blocks(keys, views, cfg)
  prediction = model.apply(variables, masked, train=False)
  return {"input": views, "corrupted": masked,
          "reconstruction": jnp.where(hidden > 0, prediction, views)}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                reconstruct=reconstruct)
