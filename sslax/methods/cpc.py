"""Contrastive predictive coding (van den Oord, Li, Vinyals 2018), for sequences.

  z_t = g_enc(x_t)            a per-frame MLP on feature frames, or strided 1-D convolutions
                              on a raw waveform (the paper's audio encoder)
  c_t = g_ar(z_<=t)           a GRU (the paper: one layer, 256 wide)
  p_{t,k} = W_k c_t           one linear map per step ahead, k = 1..K

InfoNCE (eq. 4): p_{t,k} must pick z_{t+k} of its own sequence among the encodings at
step t + k of every sequence of the global batch (`losses.cpc_infonce`; the negatives are
gathered over the mesh axis, so they do not depend on the device count). Gradients reach
g_enc through both the predictions and the candidates, as in the paper.

`encode`: the masked mean of the context vectors c_t (the paper's speaker classifier
reads c_t).

Departure: the paper samples its negatives from the minibatch at any step (its table 2
compares several such choices); here the candidates for step t + k are every sequence's
encoding at that same step (what `losses.cpc_infonce` scores). Offsets k that reach past
the last frame have no target and drop out of the mean.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import ml_collections

from sslax import losses, parallel
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.inputs import require_modality, require_model
from sslax.models import build_encoder
from sslax.models.sequence import CPCPredictors


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      num_steps=12,   # K: steps predicted ahead (the paper's audio setting)
  ))


class CPCModel(nn.Module):
  """g_enc and g_ar (`encoder`, a CPCEncoder) and the K predictors."""
  encoder: nn.Module
  predictors: nn.Module

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False):
    """x [B, T, F] -> (z [B, T', D], preds [B, T', K, D], mask [B, T'])."""
    z, c, mask = self.encoder(x, mask, train=train)
    return z, self.predictors(c), mask

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the masked mean of the context vectors [B, context_dim]."""
    return self.encoder.encode(x, mask, train=train)


def validate(config: ml_collections.ConfigDict) -> None:
  require_modality(config, "cpc", "frames")
  require_model(config, "cpc", {"cpc_encoder": "a frame encoder and a GRU context"})
  if config.method.num_steps < 1:
    raise ConfigError(f"config.method.num_steps must be >= 1, got {config.method.num_steps}")


def build(config: ml_collections.ConfigDict) -> CPCModel:
  return CPCModel(encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
                  predictors=CPCPredictors(config.method.num_steps, config.model.dim))


def loss(model: CPCModel, variables: dict, inputs: StepInputs, config: ml_collections.ConfigDict,
         axis_name: str | None):
  z, preds, mask = model.apply(variables, inputs.views[0], inputs.mask, train=True)
  value = losses.cpc_infonce(preds, z, mask, axis_name)
  return value, LossAux(variables.get("batch_stats", {}), {})


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate)
