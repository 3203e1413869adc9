"""Masked language modelling, BERT-style (Devlin, Chang, Lee, Toutanova 2019, section 3.1).

Per text, n = max(1, round(mask_ratio * L)) of its L real tokens are chosen uniformly
(BERT's create_pretraining_data: `max(1, int(round(len(tokens) * masked_lm_prob)))`;
padding is never chosen). Each chosen token is

  with probability mask_prob (0.8)   replaced by <mask>,
  with probability random_prob (0.1) replaced by a uniform word of the vocabulary
                                     (never a special token),
  otherwise                          left as is,

and the loss is the cross-entropy of the original token at the chosen positions, averaged
over every chosen position of the global batch. The network is a bidirectional
`SequenceTransformer` and BERT's prediction head (Dense-GELU-LayerNorm, then the input
embedding table as the output layer plus a per-word bias). Only the chosen positions
(at most `max_chosen(T)` a text) go through the vocabulary-wide output layer.

`encode`: the masked mean of the final hidden states on the unmasked text.
Departures: no next-sentence prediction (RoBERTa drops it too); the masking is drawn
afresh at every step from the example's key (RoBERTa's dynamic masking), not once.
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
from sslax.methods.common.masking import check_mask_probabilities, choose_spans, decide, max_chosen
from sslax.methods.common.tokens import MASK_ID, NUM_SPECIAL, gather_tokens, token_model_config
from sslax.models import build_encoder
from sslax.models.layers import gelu


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      mask_ratio=0.15,   # BERT: 15% of the tokens
      mask_prob=0.8,     # of the chosen tokens: <mask>
      random_prob=0.1,   # a random word; the rest kept
  ))


def corrupt_tokens(keys: jax.Array, tokens: jax.Array, mask: jax.Array, vocab_size: int,
                   cfg: ml_collections.ConfigDict):
  """keys [B], tokens [B, T] int, mask [B, T] -> (corrupted tokens [B, T], chosen [B, T]).
  Example b's result depends on keys[b], tokens[b] and mask[b] alone."""
  split = jax.vmap(lambda k: jax.random.split(k, 3))(keys)  # [B, 3]
  chosen, owner = choose_spans(split[:, 0], mask, cfg.mask_ratio, 1)
  masked, replaced = decide(split[:, 1], owner, cfg.mask_prob, cfg.random_prob)
  words = jax.vmap(lambda k: jax.random.randint(k, tokens.shape[1:], NUM_SPECIAL, vocab_size))(split[:, 2])
  out = jnp.where(chosen & replaced, words, tokens)
  out = jnp.where(chosen & masked, MASK_ID, out)
  return out.astype(tokens.dtype), chosen


def chosen_positions(chosen: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
  """chosen [B, T] bool -> (positions [B, count] int32, the chosen ones first in order; weights
  [B, count] float32: 1 where the position was chosen). count >= chosen per row keeps all."""
  positions = jnp.argsort(~chosen, axis=1, stable=True)[:, :count].astype(jnp.int32)
  return positions, jnp.take_along_axis(chosen, positions, axis=1).astype(jnp.float32)


class MaskedTokenModel(nn.Module):
  """A bidirectional SequenceTransformer over tokens and BERT's prediction head."""
  encoder: nn.Module

  def setup(self):
    self.head_dense = nn.Dense(self.encoder.hidden_dim)
    self.head_norm = nn.LayerNorm(epsilon=1e-12)  # BERT's
    self.head_bias = self.param("head_bias", nn.initializers.zeros, (self.encoder.vocab_size,))

  def head(self, h: jax.Array) -> jax.Array:
    """Hidden states [..., D] -> logits [..., V] through the tied embedding table."""
    return self.encoder.logits(self.head_norm(gelu(self.head_dense(h)))) + self.head_bias

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """tokens [B, T] -> logits at every position [B, T, V] (initializes every parameter)."""
    return self.head(self.encoder(x, mask, train=train))

  def predict(self, x: jax.Array, mask: jax.Array, positions: jax.Array) -> jax.Array:
    """tokens [B, T], positions [B, P] -> logits at those positions [B, P, V]."""
    h = gather_tokens(self.encoder(x, mask, train=True), positions)
    return self.head(h)

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the masked mean of the encoder's final hidden states [B, D]."""
    return self.encoder.encode(x, mask, train=train)


def validate(config: ml_collections.ConfigDict) -> None:
  require_model(config, "masked_token",
                {"sequence_transformer": "with causal=False: it reads both sides of a token"})
  if config.model.causal:
    raise ConfigError("config.model.causal: masked_token predicts a token from both "
                      "sides; set causal=False (next_token is the causal model)")
  check_mask_probabilities(config)
  require_modality(config, "masked_token", "tokens")


def build(config: ml_collections.ConfigDict) -> MaskedTokenModel:
  model = token_model_config(config)
  return MaskedTokenModel(encoder=build_encoder(model, bn_axis_name=parallel.DATA_AXIS))


def loss(model: MaskedTokenModel, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  tokens, mask = inputs.views[0].astype(jnp.int32), inputs.mask
  corrupted, chosen = corrupt_tokens(inputs.keys, tokens, mask, model.encoder.vocab_size, cfg)
  positions, weights = chosen_positions(chosen, max_chosen(tokens.shape[1], cfg.mask_ratio, 1))
  logits = model.apply(variables, corrupted, mask, positions, method="predict")
  targets = jnp.take_along_axis(tokens, positions, axis=1)
  value, accuracy = losses.token_cross_entropy(logits, targets, weights, axis_name)
  return value, LossAux(variables.get("batch_stats", {}), {"masked_accuracy": accuracy})


def token_embeddings(params) -> jax.Array:
  """[vocab_size, D]: the input token embeddings (tied with the output layer)."""
  return params["encoder"]["token_embed"]["embedding"]


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                token_embeddings=token_embeddings)
