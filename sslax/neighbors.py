"""Nearest words in a token method's learned embedding table (skip-gram, masked-token or
next-token pretraining on text), by cosine similarity: the dot product of l2-normalized
rows of `method.token_embeddings(params)`.

  python -m sslax.neighbors --workdir=runs/skipgram --word=love --word=computer [--k=10]
  python -m sslax.neighbors --workdir=runs/skipgram --map=300   # + word_map.png of the 300 most frequent

The run's config is read from WORKDIR/config.json (written by the trainer) and the
vocabulary rebuilt from it (it is a function of config.data alone, sslax/data/text.py).
A word not in the vocabulary is an error that names the closest known spellings.
"""

from __future__ import annotations

import json
import os
import sys

import ml_collections
import numpy as np
from absl import flags

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Only when run as a program: importing this module must not define flags that clash
  with sslax.main's."""
  flags.DEFINE_string("workdir", None, "A text pretraining run's directory (config.json, checkpoints/).")
  flags.DEFINE_multi_string("word", [], "A word to find the neighbours of (repeatable).")
  flags.DEFINE_integer("k", 10, "How many neighbours to print.")
  flags.DEFINE_integer("map", 0, "If > 0: a 2-D map of the N most frequent words, WORKDIR/word_map.png.")
  flags.mark_flags_as_required(["workdir"])


def nearest(table: np.ndarray, query: int, k: int, exclude: set[int]) -> list[tuple[int, float]]:
  """table [V, D]: the k ids with the highest cosine similarity to row `query` (itself and
  `exclude` left out) -> [(id, similarity)], most similar first."""
  unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
  similarity = unit @ unit[query]
  similarity[list(exclude | {query})] = -np.inf
  order = np.argsort(-similarity, kind="stable")[:k]
  return [(int(i), float(similarity[i])) for i in order]


def load_run(workdir: str):
  """-> (config, vocabulary, embedding table [V, D] numpy) of the newest checkpoint."""
  from sslax import assemble, parallel
  from sslax.data import datasets, text
  from sslax.errors import ConfigError
  from sslax.methods import get_method

  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"no config.json in {workdir}: pretrain a text method there first "
                            "(python -m sslax.main --config=configs/skipgram_fortunes.py --workdir=...)")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  method = get_method(config.method.name)
  if method.token_embeddings is None or datasets.get_dataset(config.data.name).modality != "text":
    raise ConfigError(
        f"{workdir} holds a {config.method.name} run on {config.data.name}, which learns no word "
        "embeddings: use a run of skipgram, masked_token or next_token on a text dataset "
        f"({', '.join(text.DATASETS)})")
  state = assemble.restore_latest(config, workdir, assemble.make_mesh(config)).state
  table = np.asarray(method.token_embeddings(parallel.to_host(state.params)), np.float64)
  return config, text.build_vocabulary(config.data), table


def word_map(table: np.ndarray, vocab, count: int, path: str) -> None:
  """t-SNE of the `count` most frequent (non-special) words, each drawn as its text."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from sklearn.manifold import TSNE

  from sslax.data import text

  ids = [i for i in np.argsort(-np.asarray(vocab.counts), kind="stable") if i >= len(text.SPECIALS)][:count]
  unit = table[ids] / np.maximum(np.linalg.norm(table[ids], axis=1, keepdims=True), 1e-12)
  xy = TSNE(n_components=2, metric="cosine", init="pca", random_state=0,
            perplexity=min(30, len(ids) - 1)).fit_transform(unit)
  fig, ax = plt.subplots(figsize=(14, 14))
  ax.scatter(xy[:, 0], xy[:, 1], s=2, alpha=0.3)
  for (x, y), i in zip(xy, ids):
    ax.annotate(vocab.words[i], (x, y), fontsize=7)
  ax.set_title(f"t-SNE of the {len(ids)} most frequent words (cosine)")
  ax.set_xticks([])
  ax.set_yticks([])
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)


def main(argv):
  del argv
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.WARNING)  # keep Orbax's restore chatter off the answer
  from sslax.data import text
  from sslax.errors import ConfigError

  try:
    config, vocab, table = load_run(FLAGS.workdir)
  except (FileNotFoundError, ConfigError) as error:
    sys.exit(f"error: {error}")
  specials = set(range(len(text.SPECIALS)))
  status = 0
  for word in FLAGS.word:
    try:
      query = vocab.id(word)
    except text.UnknownWordError as error:
      print(f"error: {error}", file=sys.stderr)
      status = 1
      continue
    found = nearest(table, query, FLAGS.k, specials)
    print(f"{word}: " + ", ".join(f"{vocab.words[i]} ({s:.2f})" for i, s in found), flush=True)
  if FLAGS.map > 0:
    path = os.path.join(FLAGS.workdir, "word_map.png")
    word_map(table, vocab, FLAGS.map, path)
    print(f"wrote {path}")
  sys.exit(status)


if __name__ == "__main__":
  from absl import app

  define_flags()
  app.run(main)
