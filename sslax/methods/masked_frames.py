"""Masked acoustic modelling, Mockingjay / TERA-style (Liu, Yang, Chi, Hsu, Lee 2020;
Liu, Li, Lee 2021): a bidirectional Transformer reconstructs frames it was not shown.

Per sequence, n = max(1, round(mask_ratio * L / span)) non-overlapping spans of `span`
consecutive real frames are chosen (L = the sequence's real frames; padding is never
chosen). Each chosen span, as BERT's tokens, is

  with probability mask_prob (0.8)   zeroed,
  with probability random_prob (0.1) replaced by another span of the same sequence
                                     (Mockingjay's random intervals),
  otherwise                          left as is,

and the loss is the L1 error of the reconstruction on every chosen frame, over the global
batch (`losses.masked_frame_loss`). The network is a bidirectional `SequenceTransformer`
(frames -> Dense -> blocks) and a prediction head Dense-GELU-LayerNorm-Dense back to the
frame's features (Mockingjay's two-layer prediction head). `encode`: the masked mean of
the Transformer's final hidden states on the unmasked input.

Departures: Mockingjay draws the span starts independently (spans may overlap, so fewer
than 15% of frames may be chosen) and takes one zero / replace / keep decision per
utterance; here spans never overlap, so exactly n * span frames are chosen, and the
decision is per span, BERT's per-token rule applied to spans (the same expected
proportions, less variance). Every random choice comes from the example's own key.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.inputs import require_modality, require_model
from sslax.methods.common.masking import check_mask_probabilities, choose_spans, decide
from sslax.models import build_encoder
from sslax.models.layers import gelu


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      mask_ratio=0.15,   # Mockingjay / TERA: 15% of the frames
      span=3,            # consecutive frames per masked span (Mockingjay: 7 at 10 ms)
      mask_prob=0.8,     # of the chosen spans: zeroed
      random_prob=0.1,   # replaced by another span of the same sequence; the rest kept
  ))


def corrupt_frames(keys: jax.Array, frames: jax.Array, mask: jax.Array, cfg: ml_collections.ConfigDict):
  """keys [B], frames [B, T, F], mask [B, T] -> (corrupted frames [B, T, F], chosen [B, T]).

  Replaced spans copy span frames starting at a uniform real start of the same sequence."""
  split = jax.vmap(lambda k: jax.random.split(k, 3))(keys)  # [B, 3]
  chosen, owner = choose_spans(split[:, 0], mask, cfg.mask_ratio, cfg.span)
  zeroed, replaced = decide(split[:, 1], owner, cfg.mask_prob, cfg.random_prob)
  length = frames.shape[1]
  real = jnp.sum(mask, axis=1, dtype=jnp.int32)  # [B]
  starts = jax.vmap(lambda k, n: jax.random.randint(k, (length,), 0, jnp.maximum(n - cfg.span + 1, 1))
                    )(split[:, 2], real)  # [B, T]: one random source start per span start
  source = jnp.take_along_axis(starts, owner, axis=1) + jnp.arange(length)[None] - owner
  source = jnp.clip(source, 0, jnp.maximum(real[:, None] - 1, 0))
  copied = jnp.take_along_axis(frames, source[:, :, None], axis=1)
  out = jnp.where((chosen & replaced)[:, :, None], copied, frames)
  out = jnp.where((chosen & zeroed)[:, :, None], 0.0, out)
  return out.astype(frames.dtype), chosen


class MaskedFrameModel(nn.Module):
  """A bidirectional SequenceTransformer and a reconstruction head:
  frames [B, T, F] -> reconstruction [B, T, F]."""
  encoder: nn.Module

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    h = self.encoder(x, mask, train=train)
    width = h.shape[-1]
    h = nn.LayerNorm(epsilon=1e-6, name="head_norm")(gelu(nn.Dense(width, name="head_dense")(h)))
    return nn.Dense(x.shape[-1], name="head_out")(h)

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the masked mean of the encoder's final hidden states [B, D]."""
    return self.encoder.encode(x, mask, train=train)


def validate(config: ml_collections.ConfigDict) -> None:
  require_modality(config, "masked_frames", "frames")
  require_model(config, "masked_frames",
                {"sequence_transformer": "with causal=False: it sees both sides of a span"})
  if config.model.causal or config.model.vocab_size:
    raise ConfigError(
        "config.model: masked_frames reconstructs frames from both sides; set causal=False "
        f"and vocab_size=0 (got causal={config.model.causal}, vocab_size={config.model.vocab_size})")
  check_mask_probabilities(config)
  if config.method.span < 1:
    raise ConfigError(f"config.method.span must be >= 1, got {config.method.span}")


def build(config: ml_collections.ConfigDict) -> MaskedFrameModel:
  return MaskedFrameModel(encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS))


def loss(model: MaskedFrameModel, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  frames, mask = inputs.views[0], inputs.mask
  corrupted, chosen = corrupt_frames(inputs.keys, frames, mask, cfg)
  recon = model.apply(variables, corrupted, mask, train=True)
  value = losses.masked_frame_loss(recon, frames, chosen, mask, axis_name)
  chosen_fraction = (parallel.psum(jnp.sum(chosen, dtype=jnp.float32), axis_name)
                     / parallel.psum(jnp.sum(mask, dtype=jnp.float32), axis_name))
  return value, LossAux(variables.get("batch_stats", {}), {"chosen_fraction": chosen_fraction})


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate)
