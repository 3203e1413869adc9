"""Autoregressive predictive coding (Chung, Hsu, Tang, Glass 2019).

A unidirectional network reads frames x_1..x_t and, through a linear output layer,
predicts the frame `shift` steps ahead:

  L = sum_t |x_{t+n} - W h_t|_1 over the pairs (t, t+n) of real frames,

averaged over those pairs and the features of the global batch (`losses.apc_loss`). A
shift n > 1 keeps the model from exploiting the smoothness of neighbouring frames (the
paper: n = 3 for 10 ms frames was best; n = 1 was the worst). The network is the paper's
`gru_stack` (3 layers, residual connections between layers of equal width) or a causal
`sequence_transformer` (Transformer-APC); a bidirectional model would see the target and
is refused.

`encode`: the masked mean of the top layer's states h_t (the paper's downstream
features are the states of a chosen layer, here the last).
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
from sslax.models.sequence import masked_mean


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      shift=3,   # n: predict the frame this many steps ahead (the paper's best for 10 ms frames)
  ))


class APCModel(nn.Module):
  """A causal encoder and the linear output layer: frames [B, T, F] -> predictions
  [B, T, F], predictions[:, t] the guess for frames[:, t + shift]."""
  encoder: nn.Module

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    return nn.Dense(x.shape[-1], name="predict")(self.encoder(x, mask, train=train))

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the masked mean of the encoder's top-layer states [B, D]."""
    return masked_mean(self.encoder(x, mask, train=train), mask)


def validate(config: ml_collections.ConfigDict) -> None:
  require_modality(config, "apc", "frames")
  require_model(config, "apc", {"gru_stack": "the paper's network",
                                "sequence_transformer": "with causal=True"})
  if config.model.get("vocab_size", 0):
    raise ConfigError("config.model.vocab_size: apc predicts frames; set it to 0")
  if config.model.name == "sequence_transformer" and not config.model.causal:
    raise ConfigError(
        "config.model.causal: apc predicts frame t+shift from frames <= t; a bidirectional "
        "model sees the target. Set causal=True")
  if config.method.shift < 1:
    raise ConfigError(f"config.method.shift must be >= 1, got {config.method.shift}")


def build(config: ml_collections.ConfigDict) -> APCModel:
  return APCModel(encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS))


def loss(model: APCModel, variables: dict, inputs: StepInputs, config: ml_collections.ConfigDict,
         axis_name: str | None):
  cfg = config.method
  frames, mask = inputs.views[0], inputs.mask
  pred = model.apply(variables, frames, mask, train=True)
  value = losses.apc_loss(pred, frames, mask, cfg.shift, axis_name)
  return value, LossAux(variables.get("batch_stats", {}), {})


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate)
