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

from sslax.errors import ConfigError
from sslax import parallel
from sslax.data import text
from sslax.methods.base import LossAux, Method, StepInputs
from sslax.methods.mae import gather_tokens
from sslax.methods.masked_frames import choose_spans, decide, max_chosen, validate_probabilities
from sslax.models import build_encoder
from sslax.models.layers import gelu
from sslax.models.sequence import require_modality, require_model

# The text sources' special ids: <pad> = 0, <unk> = 1, <mask> = 2; words start at NUM_SPECIAL.
PAD_ID, UNK_ID, MASK_ID, NUM_SPECIAL = text.PAD_ID, text.UNK_ID, text.MASK_ID, len(text.SPECIALS)


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name="masked_token",
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


def pack(weights: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The live entries of a flat batch first: weights [N] (0 = nothing to score) -> (index [C]
  into N, their weights [C], the number of live entries beyond the capacity C, dropped).

  Padding is most of a batch of short texts; packing lets the costly part (a vocabulary-wide
  layer, embedding gathers) run on C < N entries. The order is stable: when a batch has more
  live entries than C, the last examples' are dropped (a `dropped` metric counts them)."""
  capacity = min(capacity, weights.shape[0])
  index = jnp.argsort(weights <= 0, stable=True)[:capacity].astype(jnp.int32)
  kept = weights[index]
  dropped = jnp.sum(weights > 0) - jnp.sum(kept > 0)
  return index, kept, dropped


def token_cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array,
                        axis_name: str | None) -> tuple[jax.Array, jax.Array]:
  """logits [..., V], targets [...] int, weights [...] (0 or 1) -> (the mean cross-entropy over
  the weighted positions of the global batch, their accuracy); (0, 0) if there are none."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))
  nll = -jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  count = jnp.maximum(parallel.psum(jnp.sum(weights), axis_name), 1.0)
  return (parallel.psum(jnp.sum(weights * nll), axis_name) / count,
          parallel.psum(jnp.sum(weights * correct), axis_name) / count)


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


def vocabulary_size(config: ml_collections.ConfigDict) -> int:
  """len(text.build_vocabulary(config.data)): the size of the training vocabulary."""
  return len(text.build_vocabulary(config.data))


def token_model_config(config: ml_collections.ConfigDict, method: str) -> ml_collections.ConfigDict:
  """config.model with vocab_size set from the training vocabulary (when it is 0), a copy;
  a ConfigError if it is set to anything else."""
  require_modality(config, method, "tokens")
  size = vocabulary_size(config)
  model = config.model.copy_and_resolve_references()
  if model.vocab_size not in (0, size):
    raise ConfigError(
        f"config.model.vocab_size={model.vocab_size}, but the vocabulary of "
        f"{config.data.name!r} has {size} entries; set it to 0 (from the data) or {size}")
  model.vocab_size = size
  return model


def build(config: ml_collections.ConfigDict) -> MaskedTokenModel:
  require_model(config, "masked_token",
                {"sequence_transformer": "with causal=False: it reads both sides of a token"})
  if config.model.causal:
    raise ConfigError("config.model.causal: masked_token predicts a token from both "
                                 "sides; set causal=False (next_token is the causal model)")
  validate_probabilities(config.method)
  model = token_model_config(config, "masked_token")
  return MaskedTokenModel(encoder=build_encoder(model, bn_axis_name=parallel.DATA_AXIS))


def loss(model: MaskedTokenModel, variables: dict, inputs: StepInputs,
         cfg: ml_collections.ConfigDict, axis_name: str | None):
  tokens, mask = inputs.views[0].astype(jnp.int32), inputs.mask
  corrupted, chosen = corrupt_tokens(inputs.keys, tokens, mask, model.encoder.vocab_size, cfg)
  positions, weights = chosen_positions(chosen, max_chosen(tokens.shape[1], cfg.mask_ratio, 1))
  logits = model.apply(variables, corrupted, mask, positions, method="predict")
  targets = jnp.take_along_axis(tokens, positions, axis=1)
  value, accuracy = token_cross_entropy(logits, targets, weights, axis_name)
  return value, LossAux(variables.get("batch_stats", {}), {"masked_accuracy": accuracy})


def token_embeddings(params) -> jax.Array:
  """[vocab_size, D]: the input token embeddings (tied with the output layer)."""
  return params["encoder"]["token_embed"]["embedding"]


METHOD = Method(name="masked_token", defaults=defaults, build=build, loss=loss, num_views=1,
                token_embeddings=token_embeddings)
