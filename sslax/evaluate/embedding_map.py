"""Embedding maps: a 2-D picture of a run's frozen features coloured by class, and how well
k-means recovers the classes.

  python -m sslax.evaluate.embedding_map --config=CONFIG --workdir=DIR \
      [--split=test] [--max_examples=5000] [--map=tsne|umap]

Restores the newest checkpoint in DIR (as --mode=evaluate does), embeds the first
max_examples of the split with the evaluated encoder (`features.extract_features`: center
view, BatchNorm on running statistics, sharded over the devices) and writes
  DIR/embeddings_{split}.npz       features [N, D] float32, labels [N], class_names [K]
  DIR/embedding_map_{split}.png    the 2-D map, one colour per class, with a legend
  DIR/embedding_map_{split}.json   NMI and ARI of k-means against the labels, and settings

`map_and_cluster(features, labels, class_names, out_prefix)` does the last two for any
arrays (utterance embeddings by speaker, word embeddings by class, ...).

Map: t-SNE (scikit-learn, PCA init, perplexity min(30, (N - 1) / 3)), or UMAP with
umap-learn installed (`pip install sslax[umap]`). Clustering: k-means with k = the number of
classes, on l2-normalized features (the cosine geometry the kNN probe uses), k-means++
initialization, 10 restarts, seeded. Scores (sklearn.metrics): normalized mutual information
(arithmetic mean normalization) and adjusted Rand index, both 1 for a perfect recovery and
about 0 for an assignment independent of the labels.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from sslax.errors import ConfigError

MAPS = ("tsne", "umap")
MAX_LEGEND_CLASSES = 30  # beyond this a legend hides the map
SMALL_MAP = 2000  # t-SNE of fewer points runs single-threaded (see map_2d)


def map_2d(features: Any, method: str = "tsne", seed: int = 0) -> np.ndarray:
  """features [N, D] -> coordinates float32 [N, 2]."""
  x = np.asarray(features, np.float32)
  if method == "tsne":
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    perplexity = float(min(30.0, max(1.0, (len(x) - 1) / 3)))
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed)
    # Barnes-Hut t-SNE opens an OpenMP parallel region in each of its 1000 iterations. Below a
    # few thousand points that synchronization outweighs the work, and on a busy machine it
    # dominates: 20 points took 44 s with 2 threads and 0.05 s with 1 (2 shared cores).
    with threadpool_limits(limits=1 if len(x) < SMALL_MAP else None, user_api="openmp"):
      return tsne.fit_transform(x).astype(np.float32)
  if method == "umap":
    try:
      import umap
    except ImportError:
      raise ImportError("--map=umap needs umap-learn: `pip install umap-learn` (or sslax[umap]); "
                        "--map=tsne needs nothing extra") from None
    return umap.UMAP(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
  raise ValueError(f"map {method!r} is not one of {MAPS}")


def cluster(features: Any, k: int, seed: int = 0) -> np.ndarray:
  """k-means on l2-normalized features [N, D] -> cluster ids int [N]."""
  from sklearn.cluster import KMeans

  x = np.asarray(features, np.float64)
  x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)


def cluster_scores(labels: Any, clusters: Any) -> dict[str, float]:
  """-> {"nmi", "ari"} of a clustering against the labels."""
  from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

  return {"nmi": float(normalized_mutual_info_score(labels, clusters)),
          "ari": float(adjusted_rand_score(labels, clusters))}


def draw_map(coords: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str, *,
             title: str = "") -> None:
  """Scatter of coords [N, 2], one colour per class, legend with the class names -> PNG of
  800 x 800 pixels."""
  import matplotlib

  matplotlib.use("Agg")  # files only, no display
  import matplotlib.pyplot as plt

  classes = np.unique(labels)
  cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "turbo")
  fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
  size = float(np.clip(20_000 / max(1, len(labels)), 3, 30))  # points stay visible, not blots
  for i, c in enumerate(classes):
    at = labels == c
    color = cmap(i % cmap.N) if len(classes) <= 20 else cmap(i / max(1, len(classes) - 1))
    name = class_names[c] if 0 <= c < len(class_names) else str(c)
    ax.scatter(coords[at, 0], coords[at, 1], s=size, color=color, label=name, alpha=0.7, linewidths=0)
  if len(classes) <= MAX_LEGEND_CLASSES:
    ax.legend(loc="best", markerscale=3, fontsize="small", frameon=True)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_title(title, fontsize="medium")
  fig.tight_layout()
  # No bbox_inches="tight": the PNG keeps the figure's exact 800 x 800 pixels.
  fig.savefig(path, format="png")
  plt.close(fig)


def map_and_cluster(features: Any, labels: Any, class_names: Sequence[str] | None,
                    out_prefix: str, *, method: str = "tsne", seed: int = 0, title: str = "",
                    extra: dict | None = None) -> dict[str, Any]:
  """Writes OUT_PREFIX.png (the 2-D map) and OUT_PREFIX.json (k-means NMI / ARI and settings).

  Args:
    features: float [N, D]; labels: int [N] (classes, speakers, ...); class_names: one name
      per label id (None: the ids).
    method: "tsne" or "umap"; seed: seeds the map and k-means.
    extra: more keys for the JSON (the run's step, split, ...).

  Returns:
    the JSON's content, plus "clusters": the k-means assignment int [N].
  """
  features = np.asarray(features, np.float32)
  labels = np.asarray(labels).astype(np.int64)
  if features.ndim != 2 or len(features) != len(labels):
    raise ValueError(f"features must be [N, D] with one label each; got {features.shape} and "
                     f"{labels.shape}")
  k = int(len(np.unique(labels)))
  names = list(class_names) if class_names is not None else [str(i) for i in range(labels.max() + 1)]
  clusters = cluster(features, k, seed)
  scores = cluster_scores(labels, clusters)
  coords = map_2d(features, method, seed)
  title = (title + "\n" if title else "") + (
      f"{method.upper() if method == 'umap' else 't-SNE'} of {len(labels)} embeddings; k-means "
      f"(k={k}) NMI {scores['nmi']:.3f}, ARI {scores['ari']:.3f}")
  os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
  draw_map(coords, labels, names, out_prefix + ".png", title=title)
  result = {**scores, "k": k, "examples": int(len(labels)), "feature_dim": int(features.shape[1]),
            "map": method, "seed": seed,
            "protocol": ("k-means (k = number of classes, k-means++, 10 restarts, seeded) on "
                         "l2-normalized features; NMI (arithmetic) and ARI from sklearn.metrics"),
            "png": os.path.basename(out_prefix + ".png"), **(extra or {})}
  with open(out_prefix + ".json", "w") as f:
    json.dump(result, f, indent=2)
  return {**result, "clusters": clusters}


def class_names_of(config, source) -> list[str]:
  """The label names of a split: the source's own `class_names`, TFDS's, or the ids."""
  names = getattr(source, "class_names", None)
  if names:
    return list(names)
  try:
    import tensorflow_datasets as tfds

    builder = tfds.builder(config.data.name, data_dir=config.data.data_dir or None)
    return list(builder.info.features["label"].names)
  except Exception:  # noqa: BLE001 - a dataset without label names, or none in TFDS
    return [str(i) for i in range(source.num_classes)]


def embedding_map_run(config, workdir: str, *, split: str = "", max_examples: int = 5000,
                      method: str = "tsne") -> dict[str, Any] | None:
  """The CLI's work (module docstring) on the newest checkpoint in WORKDIR; -> the JSON's
  content (None on processes other than 0, which write nothing)."""
  import jax

  from sslax import assemble, parallel
  from sslax import config as config_lib
  from sslax.evaluate.features import extract_features

  if method not in MAPS:
    raise ConfigError(f"--map: {method!r} is not one of {list(MAPS)}")
  config_lib.validate(config)
  run = assemble.restore_latest(config, workdir, assemble.make_mesh(config))
  state = run.state
  split = split or config.data.test_split
  source = assemble.open_split(config, split)
  variables = run.method.evaluated_variables(config, state.params, state.batch_stats,
                                             state.method_state)
  features, labels = extract_features(
      run.model, variables, source, run.mesh, image_size=config.data.get("image_size", 0),
      mean=run.source.pixel_mean, std=run.source.pixel_std, batch_size=config.eval.batch_size,
      limit=None if max_examples <= 0 else max_examples)
  names = class_names_of(config, source)
  step = int(parallel.to_host(state.step))
  if jax.process_index() != 0:  # every process helped embed; one writes the files
    return None
  np.savez(os.path.join(workdir, f"embeddings_{split}.npz"), features=features, labels=labels,
           class_names=np.asarray(names))
  out_prefix = os.path.join(workdir, f"embedding_map_{split}")
  result = map_and_cluster(
      features, labels, names, out_prefix, method=method, seed=config.seed,
      title=f"{config.method.name} on {config.data.name} {split}, step {step}",
      extra={"dataset": config.data.name, "split": split, "step": step})
  result.pop("clusters")
  return result


def main(argv) -> None:
  del argv
  from absl import flags

  from sslax import cli

  args = flags.FLAGS
  result = cli.run_tool(
      lambda: embedding_map_run(args.config, args.workdir, split=args.split,
                                max_examples=args.max_examples, method=args.map),
      user_errors=(ImportError,))  # --map=umap without umap-learn: the message says what to install
  if result is None:
    return
  where = os.path.join(args.workdir, f"embedding_map_{result['split']}")
  print(f"k-means (k={result['k']}) on {result['examples']} {result['split']} embeddings: "
        f"NMI {result['nmi']:.4f}, ARI {result['ari']:.4f}\nwrote {where}.png, {where}.json, "
        f"{os.path.join(args.workdir, 'embeddings_' + result['split'] + '.npz')}", flush=True)


def define_flags() -> None:
  """Only when run as a program: importing this module must not define flags that clash
  with sslax.main's."""
  from absl import flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "The pretraining run's directory (its checkpoints/).")
  flags.DEFINE_string("split", "", "Which split; empty: config.data.test_split.")
  flags.DEFINE_integer("max_examples", 5000, "Embed the first this many examples; <= 0: all.")
  flags.DEFINE_enum("map", "tsne", list(MAPS), "2-D map: t-SNE (scikit-learn) or UMAP (umap-learn).")
  flags.mark_flags_as_required(["config", "workdir"])


if __name__ == "__main__":
  from absl import app

  define_flags()
  app.run(main)
