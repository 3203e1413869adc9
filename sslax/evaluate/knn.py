"""Weighted k-nearest-neighbour classification of frozen features.

The protocol of Wu et al. 2018 ("Unsupervised Feature Learning via
Non-Parametric Instance Discrimination"), as used by InstDisc, MoCo and DINO:

  * L2-normalize train and test features;
  * for each test feature, take the k training features with the highest
    cosine similarity s_j;
  * neighbour j votes for its label with weight exp(s_j / T);
  * predict the class with the largest summed weight.

Streaming, so the bank may be a whole training split (ImageNet's 1.28M, as DINO's
eval_knn.py uses it): the training features go through in chunks of `train_chunk_size`
rows, each one device call that merges its neighbours into every test row's running
top k (similarity and label); test rows go in chunks of `chunk_size` within the call.
Memory on the device: one training chunk, the test features, the running [M, k] top k
and a [chunk_size, train_chunk_size + k] similarity block. Every chunk has one shape (the
last ones padded, padding never chosen), so one program is compiled.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _l2_normalize(x: jax.Array) -> jax.Array:
  """x [N, D] -> rows scaled to unit L2 norm (all-zero rows stay zero)."""
  norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
  return x / jnp.maximum(norm, 1e-12)


@functools.partial(jax.jit, static_argnames=("chunk_size",), donate_argnums=(0, 1))
def _merge_neighbours(best_sims: jax.Array, best_labels: jax.Array, test_x: jax.Array,
                      train_x: jax.Array, train_y: jax.Array, train_valid: jax.Array, *,
                      chunk_size: int) -> tuple[jax.Array, jax.Array]:
  """Running top k [M, k] (similarities, labels) merged with one chunk of the bank:
  train_x [T, D] (normalized), train_y int [T], train_valid bool [T]; test_x [M, D]
  normalized, M % chunk_size == 0."""
  k = best_sims.shape[1]

  def merge(rows):  # one chunk of test rows
    sims_so_far, labels_so_far, queries = rows
    sims = jnp.where(train_valid[None, :], queries @ train_x.T, -jnp.inf)  # [C, T]
    sims = jnp.concatenate([sims_so_far, sims], axis=1)
    labels = jnp.concatenate([labels_so_far, jnp.broadcast_to(train_y, (queries.shape[0], train_y.shape[0]))], axis=1)
    # Gather the similarities back by index rather than reading top_k's values (see the
    # vote below: on XLA:CPU 0.12 the values output was much slower downstream).
    top_idx = jax.lax.top_k(sims, k)[1]
    return jnp.take_along_axis(sims, top_idx, axis=1), jnp.take_along_axis(labels, top_idx, axis=1)

  def by_chunk(x):
    return x.reshape(-1, chunk_size, *x.shape[1:])
  sims, labels = jax.lax.map(merge, (by_chunk(best_sims), by_chunk(best_labels), by_chunk(test_x)))
  return sims.reshape(best_sims.shape), labels.reshape(best_labels.shape)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _vote(top_sims: jax.Array, top_labels: jax.Array, temperature: jax.Array, *,
          num_classes: int) -> jax.Array:
  """[M, k] neighbours, by descending similarity -> int32 [M] predicted classes."""
  # exp(s / T) overflows float32 once s / T > ~88 (e.g. T = 0.01). Scaling every weight
  # of a row by the same factor exp(-s_max / T) cannot change that row's argmax (up to
  # float rounding), and keeps the largest weight at 1.
  weights = jnp.exp((top_sims - top_sims[:, :1]) / temperature)  # [M, k]
  votes = jax.nn.one_hot(top_labels, num_classes, dtype=weights.dtype)  # [M, k, K]
  return jnp.argmax(jnp.einsum("mk,mkl->ml", weights, votes), axis=-1).astype(jnp.int32)


def knn_classify(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    num_classes: int,
    *,
    k: int = 200,
    temperature: float = 0.07,
    chunk_size: int = 256,
    train_chunk_size: int = 65536,
) -> np.ndarray:
  """Weighted kNN predictions (Wu et al. 2018).

  Args:
    train_x: float [N, D] training features (a host array is fine: it goes to the device
      a chunk at a time); train_y: int [N] labels in [0, K).
    test_x: float [M, D] features to classify.
    num_classes: K.
    k: number of neighbours (clipped to N).
    temperature: T in the vote weight exp(cosine_similarity / T).
    chunk_size: test rows per step; train_chunk_size: bank rows per device call. Peak
      memory is about M * D + train_chunk_size * D + chunk_size * (train_chunk_size + k)
      floats.

  Returns:
    int32 numpy array [M] of predicted classes (ties go to the lowest class id).
  """
  train_y = np.asarray(train_y).astype(np.int32)
  if train_y.size and not 0 <= train_y.min() <= train_y.max() < num_classes:
    # one_hot would silently drop the votes of out-of-range labels.
    raise ValueError(f"train_y must lie in [0, {num_classes}), got [{train_y.min()}, {train_y.max()}].")
  num_train = train_y.shape[0]
  k = min(k, num_train)
  test_x = np.asarray(test_x, np.float32)
  num_test = test_x.shape[0]
  chunk_size = max(1, min(chunk_size, num_test))
  train_chunk_size = max(1, min(train_chunk_size, num_train))
  # Pad to a whole number of chunks so every chunk has the same shape; the padded test
  # rows' predictions are dropped below, the padded bank rows are never neighbours.
  padded = -(-num_test // chunk_size) * chunk_size
  queries = _l2_normalize(jnp.asarray(np.pad(test_x, ((0, padded - num_test), (0, 0)))))
  best_sims = jnp.full((padded, k), -jnp.inf, jnp.float32)
  best_labels = jnp.zeros((padded, k), jnp.int32)
  for start in range(0, num_train, train_chunk_size):
    rows = np.asarray(train_x[start:start + train_chunk_size], np.float32)
    count = rows.shape[0]
    pad = train_chunk_size - count
    best_sims, best_labels = _merge_neighbours(
        best_sims, best_labels, queries,
        _l2_normalize(jnp.asarray(np.pad(rows, ((0, pad), (0, 0))))),
        jnp.asarray(np.pad(train_y[start:start + count], (0, pad))),
        jnp.asarray(np.arange(train_chunk_size) < count), chunk_size=chunk_size)
  preds = _vote(best_sims, best_labels, jnp.float32(temperature), num_classes=num_classes)
  return np.asarray(preds)[:num_test]


def knn_accuracy(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    num_classes: int,
    **kwargs: Any,
) -> float:
  """Top-1 accuracy in [0, 1] of `knn_classify` (same keyword arguments) on test_y [M]."""
  preds = knn_classify(train_x, train_y, test_x, num_classes, **kwargs)
  return float(np.mean(preds == np.asarray(test_y)))
