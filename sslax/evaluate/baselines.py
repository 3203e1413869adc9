"""The baselines every pretrained encoder is compared with, evaluated by the same protocols.

  random init  the same network at its initialization: what pretraining adds
  raw inputs   no network at all (the protocols with `on_raw_inputs`): pixels / 255 for
               images, the mean frame over real positions (or all frames, flattened) for
               sequences, TF-IDF of the token ids for text
"""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from sslax.data import pipeline
from sslax.errors import ConfigError
from sslax.step import init_variables


def random_init_variables(model, config: ml_collections.ConfigDict, source: pipeline.Source,
                          channels: int | None = None) -> dict:
  """The encoder's variables at its initialization from config.seed. An image encoder takes
  its pretraining channel count (`channels` when evaluated on another dataset, else the
  source's); a sequence or text encoder shapes itself from the source."""
  if source.input_key == "image":
    return init_variables(model, config, channels or source.input_shape[-1])
  return init_variables(model, config, source)


def _read(source: pipeline.Source, limit: int | None, chunk: int = 4096):
  """Yields the split's examples in order, `chunk` at a time (the first `limit`)."""
  n = len(source) if limit is None else min(limit, len(source))
  for start in range(0, n, chunk):
    yield source.get(np.arange(start, min(n, start + chunk)))


def raw_inputs(source: pipeline.Source, limit: int | None = None,
               frames: str = "mean") -> tuple[Any, np.ndarray, str]:
  """-> (raw inputs, labels int32 [N], description) of a split, per modality: pixels / 255
  float32 [N, H*W*C]; frames, as `frames` says: "mean" over real positions float32 [N, F]
  (variable-length speech), or "flatten" [N, T*F] (fixed-length rows of an image, whose raw
  baseline is then its pixels); or, for text, the token ids of each example without padding
  (a list of int arrays, for `tfidf_features`)."""
  key = source.input_key
  if frames not in ("mean", "flatten"):
    raise ConfigError(f"config.eval.raw_frames: {frames!r} is not 'mean' or 'flatten'")
  xs, ys = [], []
  for batch in _read(source, limit):
    ys.append(batch["label"])
    if key == "image":
      xs.append(batch["image"].reshape(len(batch["image"]), -1).astype(np.float32) / 255.0)
    elif key == "frames" and frames == "flatten":
      xs.append(batch["frames"].reshape(len(batch["frames"]), -1))  # padding is 0 already
    elif key == "frames":
      mask = batch["mask"].astype(np.float32)[..., None]  # [B, T, 1]
      xs.append((batch["frames"] * mask).sum(1) / np.maximum(mask.sum(1), 1.0))
    else:
      xs.extend(ids[m] for ids, m in zip(batch[key], batch["mask"].astype(bool)))
  labels = np.concatenate(ys).astype(np.int32)
  if key == "image":
    return np.concatenate(xs), labels, "pixels / 255"
  if key == "frames":
    return np.concatenate(xs).astype(np.float32), labels, (
        "mean of the frames over real positions" if frames == "mean" else "all frames, flattened")
  return xs, labels, "TF-IDF of the token ids"


def tfidf_features(train_docs: list, test_docs: list, max_features: int | None) -> tuple:
  """Token-id documents -> dense float32 TF-IDF [N, V], [M, V]: scikit-learn's TfidfVectorizer
  over the ids (sublinear tf, l2 rows), vocabulary (the `max_features` most frequent ids)
  from the train split."""
  from sklearn.feature_extraction.text import TfidfVectorizer

  vectorizer = TfidfVectorizer(analyzer=lambda ids: [int(i) for i in ids], sublinear_tf=True,
                               max_features=max_features or None, dtype=np.float32)
  train = vectorizer.fit_transform(train_docs)
  return train.toarray(), vectorizer.transform(test_docs).toarray()


def raw_features(train_source, test_source, limit: int | None, eval_cfg) -> tuple:
  """-> ((train_x, train_y), (test_x, test_y), description) of the raw-input baseline."""
  frames = eval_cfg.get("raw_frames", "mean")
  train_x, train_y, description = raw_inputs(train_source, limit, frames)
  test_x, test_y, _ = raw_inputs(test_source, frames=frames)
  if isinstance(train_x, list):
    max_features = eval_cfg.get("raw_text_max_features", 10_000)
    train_x, test_x = tfidf_features(train_x, test_x, max_features)
    description += f" (scikit-learn TfidfVectorizer, sublinear tf, vocabulary of the train split, " \
                   f"at most {max_features} ids)"
  return (train_x, train_y), (test_x, test_y), description
