"""Token sequences: the text sources' special ids, gathering and packing the positions that
count, and the token model's config with the training vocabulary's size."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from sslax.data import text

# The text sources' special ids: <pad> = 0, <unk> = 1, <mask> = 2; words start at NUM_SPECIAL.
PAD_ID, UNK_ID, MASK_ID, NUM_SPECIAL = text.PAD_ID, text.UNK_ID, text.MASK_ID, len(text.SPECIALS)


def gather_tokens(tokens: jax.Array, index: jax.Array) -> jax.Array:
  """tokens [B, N, D], index [B, K] -> tokens[b, index[b, k]] [B, K, D], as a one-hot matmul:
  the same values as take_along_axis, but its gradient is a matmul too, not a scatter-add,
  which XLA runs several times slower on CPU (measured in the MAE step)."""
  one_hot = jax.nn.one_hot(index, tokens.shape[1], dtype=tokens.dtype)
  return jnp.einsum("bkn,bnd->bkd", one_hot, tokens)


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


def vocabulary_size(config: ml_collections.ConfigDict) -> int:
  """len(text.build_vocabulary(config.data)): the size of the training vocabulary."""
  return len(text.build_vocabulary(config.data))


def token_model_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """config.model with vocab_size set from the training vocabulary when it is 0 (read from
  the corpus), a copy. The trainer fills vocab_size from its open source first, and checks a
  value set by hand against it (sslax.assemble.with_dataset_facts)."""
  model = config.model.copy_and_resolve_references()
  if model.vocab_size:
    return model
  size = vocabulary_size(config)
  model.vocab_size = size
  return model
