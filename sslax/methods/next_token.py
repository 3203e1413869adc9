"""Next-token prediction, GPT-style (Radford, Narasimhan, Salimans, Sutskever 2018): a
causal Transformer reads tokens 0..t and predicts token t + 1,

  L = - sum_{b, t} m_bt log p(x_{b, t+1} | x_{b, <= t}) / sum_{b, t} m_bt,

m_bt = 1 where positions t and t + 1 are both real tokens, both sums over the global batch.
The output layer is the input embedding table (tied weights, as GPT). `encode`: the masked
mean of the final hidden states (GPT's own transfer reads the last token's state; a mean
over the text is the representation every sequence method here is evaluated with).
A `gru_stack` with vocab_size > 0 is accepted too: a recurrent language model.

Only the real pairs go through the vocabulary-wide output layer, packed to
`pair_capacity` of the batch's positions (`common.tokens.pack`): on short texts padded to T
most positions are padding, and that layer is most of the step's cost.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.inputs import require_modality, require_model
from sslax.methods.common.tokens import pack, token_model_config
from sslax.models import build_encoder
from sslax.models.sequence import SequenceTransformer, masked_mean


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      # Fraction of a batch's B (T - 1) positions that go through the vocabulary-wide output
      # layer: the real (t, t+1) pairs are packed first, padding skipped. 1: every position.
      # Set it above the real share of the data's positions (fortunes at T = 64: 0.44 on
      # average, at most 0.58 in 10,000 random batches of 64); any excess is dropped and
      # counted in the `dropped_pairs` metric.
      pair_capacity=1.0,
  ))


class NextTokenModel(nn.Module):
  """A causal encoder over tokens; its hidden states score the next token."""
  encoder: nn.Module

  def setup(self):
    if not isinstance(self.encoder, SequenceTransformer):  # a GRU has no table to tie to
      self.output = nn.Dense(self.encoder.vocab_size, name="output")

  def logits(self, h: jax.Array) -> jax.Array:
    if isinstance(self.encoder, SequenceTransformer):
      return self.encoder.logits(h)
    return self.output(h)

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """tokens [B, T] -> logits [B, T, V], position t scoring token t + 1."""
    return self.logits(self.encoder(x, mask, train=train))

  def next_logits(self, x: jax.Array, mask: jax.Array, index: jax.Array) -> jax.Array:
    """tokens [B, T], index [C] into the flattened B (T - 1) positions -> logits [C, V] of
    those positions (the last position has no next token)."""
    h = self.encoder(x, mask, train=True)[:, :-1]
    return self.logits(h.reshape(-1, h.shape[-1])[index])

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the masked mean of the encoder's final hidden states [B, D]."""
    return masked_mean(self.encoder(x, mask, train=train), mask)


def validate(config: ml_collections.ConfigDict) -> None:
  if not 0 < config.method.pair_capacity <= 1:
    raise ConfigError(
        f"config.method.pair_capacity must be in (0, 1], got {config.method.pair_capacity}")
  require_model(config, "next_token", {"sequence_transformer": "with causal=True",
                                       "gru_stack": "a recurrent language model"})
  if config.model.name == "sequence_transformer" and not config.model.causal:
    raise ConfigError(
        "config.model.causal: next_token predicts token t+1 from tokens <= t; a bidirectional "
        "model sees the answer. Set causal=True (masked_token is the bidirectional method)")
  require_modality(config, "next_token", "tokens")


def build(config: ml_collections.ConfigDict) -> NextTokenModel:
  model = token_model_config(config)
  return NextTokenModel(encoder=build_encoder(model, bn_axis_name=parallel.DATA_AXIS))


def loss(model: NextTokenModel, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  tokens, mask = inputs.views[0].astype(jnp.int32), inputs.mask.astype(bool)
  weights = (mask[:, :-1] & mask[:, 1:]).astype(jnp.float32).reshape(-1)  # [B (T - 1)]
  index, weights, dropped = pack(weights, math.ceil(cfg.pair_capacity * weights.shape[0]))
  logits = model.apply(variables, tokens, mask, index, method="next_logits")
  targets = tokens[:, 1:].reshape(-1)[index]
  value, accuracy = losses.token_cross_entropy(logits, targets, weights, axis_name)
  metrics = {"next_token_accuracy": accuracy,
             "dropped_pairs": parallel.psum(dropped.astype(jnp.float32), axis_name)}
  return value, LossAux(variables.get("batch_stats", {}), metrics)


def token_embeddings(params) -> jax.Array:
  """[vocab_size, D]: the input token embeddings (tied with the output layer)."""
  return params["encoder"]["token_embed"]["embedding"]


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                token_embeddings=token_embeddings)
