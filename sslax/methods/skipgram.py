"""Skip-gram with negative sampling, word2vec (Mikolov, Sutskever, Chen, Corrado, Dean 2013).

Per text, as word2vec.c reads a sentence:
1. words are kept (special tokens and padding never are) with the subsampling
   probability of word2vec.c, min(1, (sqrt(f_w / s) + 1) s / f_w), f_w the word's share of
   the training corpus, s = `subsample` (0: keep all), and the kept ones closed up;
2. each center word draws its window b uniformly in 1..window (word2vec's dynamic window,
   which weighs near words more) and pairs with the kept words within b of it;
3. each pair draws `num_negatives` words from the unigram distribution raised to
   `noise_power` (3/4) over the *training* vocabulary's counts (by inverse CDF, the
   exact distribution word2vec's 1e8-entry table approximates).
The loss (`losses.skipgram_loss`) is -log sigma(v_c . v'_o) - sum_m log sigma(-v_c . v'_m),
averaged over the pairs of the global batch; v are the input, v' the output embeddings
(word2vec.c's syn0, initialized uniform in +-0.5/dim, and syn1neg, zeros).

The noise CDF and the keep probabilities are the method's state, computed once from the
training vocabulary's counts (`source.vocab.counts` of the source `init_state` is given). `encode`: the mean input vector of a text's
real, non-special words.

Departures: word2vec.c trains with SGD one pair at a time at a linearly decaying rate;
here the optimizer of config.optimizer averages each batch's pairs. word2vec skips a
negative equal to the context word; here such a draw (probability about its noise mass)
stays in the sum.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax import losses, parallel
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.inputs import require_modality, require_model
from sslax.methods.common.tokens import NUM_SPECIAL, pack, token_model_config
from sslax.models import build_encoder


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      window=5,          # word2vec.c's default -window 5
      num_negatives=5,   # word2vec.c's default -negative 5
      noise_power=0.75,  # unigram^(3/4) noise (Mikolov et al. 2013, section 2.2)
      subsample=1e-3,    # word2vec.c's default -sample 1e-3; 0: no subsampling
      # Fraction of the B T 2 window (center, context) slots whose vectors are gathered: the
      # live pairs are packed first (`common.tokens.pack`), as most slots of short texts are
      # empty; an excess is dropped and counted in `dropped_pairs`. 1: every slot.
      pair_capacity=1.0,
  ))


def noise_state(counts: np.ndarray, noise_power: float, subsample: float) -> dict:
  """counts [V] (aligned with ids; special ids' counts are ignored) -> {"noise_cdf": [V]
  float32, the CDF of counts^noise_power over the words; "keep_prob": [V] float32, word2vec's
  subsampling keep probability (1 without subsampling; 0 for special ids)}."""
  counts = np.asarray(counts, np.float64).copy()
  counts[:NUM_SPECIAL] = 0
  if counts.sum() <= 0:
    raise ConfigError("the training vocabulary has no word with a count > 0")
  noise = counts ** noise_power
  cdf = np.cumsum(noise / noise.sum())
  if subsample > 0:
    share = np.maximum(counts / counts.sum(), 1e-30)
    keep = np.minimum(1.0, (np.sqrt(share / subsample) + 1) * subsample / share)
  else:
    keep = np.ones_like(counts)
  keep[:NUM_SPECIAL] = 0
  return {"noise_cdf": cdf.astype(np.float32), "keep_prob": keep.astype(np.float32)}


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  counts = np.asarray(source.vocab.counts)  # the training source's vocabulary (a TextSource)
  return {k: jnp.asarray(v) for k, v in
          noise_state(counts, config.method.noise_power, config.method.subsample).items()}


def _pairs_one(key, tokens, real, state, cfg):
  """One text: tokens [T], real [T] -> (center [T, 2W], context [T, 2W], negatives
  [T, 2W, M] ids, weights [T, 2W]: 1 for a pair that exists)."""
  length, window = tokens.shape[0], cfg.window
  k_keep, k_window, k_noise = jax.random.split(key, 3)
  keep = real & (tokens >= NUM_SPECIAL)
  keep &= jax.random.uniform(k_keep, (length,)) < state["keep_prob"][tokens]
  # Close up the kept words, as word2vec.c never puts a discarded word in its sentence.
  order = jnp.argsort(~keep, stable=True)
  words, count = tokens[order], jnp.sum(keep)
  position = jnp.arange(length)
  reach = jax.random.randint(k_window, (length,), 1, window + 1)  # b in 1..window
  offsets = jnp.concatenate([jnp.arange(-window, 0), jnp.arange(1, window + 1)])  # [2W]
  context_pos = position[:, None] + offsets[None]
  weights = ((position[:, None] < count) & (context_pos >= 0) & (context_pos < count)
             & (jnp.abs(offsets)[None] <= reach[:, None]))
  context = words[jnp.clip(context_pos, 0, length - 1)]
  center = jnp.broadcast_to(words[:, None], context.shape)
  u = jax.random.uniform(k_noise, context.shape + (cfg.num_negatives,))
  vocab = state["noise_cdf"].shape[0]
  negatives = jnp.minimum(jnp.searchsorted(state["noise_cdf"], u, side="right"), vocab - 1)
  return center, context, negatives.astype(jnp.int32), weights.astype(jnp.float32)


def skipgram_pairs(keys: jax.Array, tokens: jax.Array, mask: jax.Array, state: dict,
                   cfg: ml_collections.ConfigDict):
  """keys [B], tokens [B, T], mask [B, T] -> (center [N], context [N], negatives [N, M],
  weights [N]) ids, N = B T 2 window; example b's pairs depend on keys[b] and its text."""
  out = jax.vmap(lambda k, t, m: _pairs_one(k, t, m, state, cfg))(keys, tokens.astype(jnp.int32),
                                                                  mask.astype(bool))
  center, context, negatives, weights = out
  n = center.size
  return (center.reshape(n), context.reshape(n), negatives.reshape(n, cfg.num_negatives),
          weights.reshape(n))


class SkipGram(nn.Module):
  """The two embedding tables (`encoder`, a SkipGramEmbeddings)."""
  encoder: nn.Module

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False):
    """Initializes both tables: x [B, T] -> (input, output vectors) [B, T, dim] each."""
    return self.encoder(x, mask, train=train)

  def vectors(self, center: jax.Array, context: jax.Array, negatives: jax.Array):
    """ids [N], [N], [N, M] -> v_center [N, dim], v'_context [N, dim], v'_negatives [N, M, dim]."""
    return (self.encoder.center(center), self.encoder.context(context),
            self.encoder.context(negatives))

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the mean input vector of the real, non-special words [B, dim]."""
    return self.encoder.encode(x, mask, train=train)


def validate(config: ml_collections.ConfigDict) -> None:
  require_model(config, "skipgram", {"skipgram_embeddings": "word2vec's two tables"})
  cfg = config.method
  if cfg.window < 1 or cfg.num_negatives < 1 or cfg.subsample < 0 or not 0 < cfg.pair_capacity <= 1:
    raise ConfigError(
        f"config.method: window={cfg.window} and num_negatives={cfg.num_negatives} must be "
        f">= 1, subsample={cfg.subsample} >= 0, pair_capacity={cfg.pair_capacity} in (0, 1]")
  require_modality(config, "skipgram", "tokens")
  if config.model.num_special != NUM_SPECIAL:
    raise ConfigError(f"config.model.num_special: the text vocabulary has {NUM_SPECIAL} special "
                      f"ids, got {config.model.num_special}")


def build(config: ml_collections.ConfigDict) -> SkipGram:
  model = token_model_config(config)
  return SkipGram(encoder=build_encoder(model, bn_axis_name=parallel.DATA_AXIS))


def loss(model: SkipGram, variables: dict, inputs: StepInputs, config: ml_collections.ConfigDict,
         axis_name: str | None):
  cfg = config.method
  center, context, negatives, weights = skipgram_pairs(
      inputs.keys, inputs.views[0], inputs.mask, inputs.state, cfg)
  index, weights, dropped = pack(weights, math.ceil(cfg.pair_capacity * weights.shape[0]))
  vectors = model.apply(variables, center[index], context[index], negatives[index],
                        method="vectors")
  value = losses.skipgram_loss(*vectors, weights=weights, axis_name=axis_name)
  metrics = {"pairs": parallel.psum(jnp.sum(weights), axis_name),
             "dropped_pairs": parallel.psum(dropped.astype(jnp.float32), axis_name)}
  return value, LossAux(variables.get("batch_stats", {}), metrics)


def token_embeddings(params) -> jax.Array:
  """[vocab_size, D]: the input vectors v_w (word2vec's syn0), the usual word embeddings."""
  return params["encoder"]["input"]


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                init_state=init_state, token_embeddings=token_embeddings)
