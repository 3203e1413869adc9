"""Frozen-encoder evaluation of a pretraining run: linear probe and weighted kNN on
the test split, next to the same linear probe on a randomly initialized encoder
and on raw pixels, so the gain from pretraining is visible.

Features are extracted with the same sharded machinery as training (every device
embeds its slice of each batch) and gathered to every host.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from sslax import parallel
from sslax.data import augment, pipeline
from sslax.evaluate.knn import knn_accuracy
from sslax.evaluate.linear_probe import linear_probe


def extract_features(model, variables: dict, source: pipeline.Source, mesh, *,
                     image_size: int, mean, std, batch_size: int,
                     limit: int | None = None,
                     apply_method: str | None = "encode") -> tuple[np.ndarray, np.ndarray]:
  """Embeds a whole split with `model.encode`: -> features [N, D] float32, labels [N].
  apply_method=None runs `model.__call__` instead (a fine-tuned classifier's logits)."""
  def embed(variables, batch):
    x = augment.normalize(augment.center_view(batch["image"], image_size), mean, std)
    return model.apply(variables, x, train=False, method=apply_method)

  apply = parallel.sharded_apply(embed, mesh)
  replicated = parallel.replicate(jax.device_get(variables), mesh)
  features, labels = [], []
  global_batch = batch_size - batch_size % mesh.devices.size or mesh.devices.size
  for batch in pipeline.eval_batches(source, global_batch):
    out = apply(replicated, parallel.shard_host_batch({"image": batch["image"]}, mesh))
    out = np.asarray(multihost_utils.process_allgather(out, tiled=True))
    mask = np.asarray(multihost_utils.process_allgather(batch["mask"], tiled=True))
    label = np.asarray(multihost_utils.process_allgather(batch["label"], tiled=True))
    features.append(out[mask])
    labels.append(label[mask])
    if limit is not None and sum(len(f) for f in features) >= limit:
      break
  features, labels = np.concatenate(features), np.concatenate(labels)
  if limit is not None:
    features, labels = features[:limit], labels[:limit]
  return features.astype(np.float32), labels.astype(np.int32)


def _probe(name, train, test, num_classes, config, *, knn: bool) -> dict:
  start = time.perf_counter()
  result = {"linear_probe": linear_probe(
      train[0], train[1], test[0], test[1], num_classes,
      weight_decays=tuple(config.eval.probe_weight_decays), seed=config.seed)}
  if knn:
    result["knn"] = {
        "accuracy": float(knn_accuracy(train[0], train[1], test[0], test[1], num_classes,
                                       k=config.eval.knn_k, temperature=config.eval.knn_temperature)),
        "protocol": f"weighted kNN (Wu et al. 2018), cosine, k={config.eval.knn_k}, "
                    f"T={config.eval.knn_temperature}"}
  result["feature_dim"] = int(train[0].shape[1])
  result["seconds"] = round(time.perf_counter() - start, 1)
  print(f"[eval] {name}: linear probe {100 * result['linear_probe']['accuracy']:.2f}%"
        + (f", kNN {100 * result['knn']['accuracy']:.2f}%" if knn else ""), file=sys.stderr, flush=True)
  return result


def evaluate_run(config: ml_collections.ConfigDict, model, state, mesh, workdir: str) -> dict:
  """Evaluates the trained encoder in `state`; writes WORKDIR/eval.json and prints a table."""
  from sslax.methods import get_method
  from sslax.train import dataset_info, init_variables, open_split

  train_split = config.eval.train_split or config.data.train_split
  train_source = open_split(config, train_split)
  test_source = open_split(config, config.data.test_split)
  info = dataset_info(config, train_source)
  limit = None if config.eval.max_train_examples < 0 else config.eval.max_train_examples
  embed = lambda variables, source, limit=None: extract_features(  # noqa: E731
      model, variables, source, mesh, image_size=config.data.image_size, mean=info["mean"],
      std=info["std"], batch_size=config.eval.batch_size, limit=limit)
  num_classes = train_source.num_classes

  results = {"step": int(parallel.to_host(state.step)), "dataset": config.data.name,
             "train_split": train_split, "test_split": config.data.test_split}
  method = get_method(config.method.name)
  trained = method.evaluated_variables(config, state.params, state.batch_stats, state.method_state)
  results["pretrained"] = _probe(
      "pretrained encoder", embed(trained, train_source, limit), embed(trained, test_source),
      num_classes, config, knn=True)
  if config.eval.random_init_baseline:
    random_init = init_variables(model, config, train_source.image_shape[-1])
    results["random_init"] = _probe(
        "random-init encoder", embed(random_init, train_source, limit), embed(random_init, test_source),
        num_classes, config, knn=True)
  if config.eval.raw_pixel_baseline:
    results["raw_pixels"] = _probe(
        "raw pixels", _pixels(train_source, limit), _pixels(test_source), num_classes, config, knn=False)

  if jax.process_index() == 0:
    with open(os.path.join(workdir, "eval.json"), "w") as f:
      json.dump(results, f, indent=2)
    print(format_table(results), flush=True)
  return results


def _pixels(source: pipeline.Source, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  n = len(source) if limit is None else min(limit, len(source))
  batch = source.get(np.arange(n))
  return batch["image"].reshape(n, -1).astype(np.float32) / 255.0, batch["label"].astype(np.int32)


def format_table(results: dict) -> str:
  rows = [("encoder", "linear probe", "kNN (k=200)")]
  for key, name in (("pretrained", "pretrained"), ("random_init", "random init"), ("raw_pixels", "raw pixels")):
    if key in results:
      r = results[key]
      knn = f"{100 * r['knn']['accuracy']:.2f}%" if "knn" in r else "-"
      rows.append((name, f"{100 * r['linear_probe']['accuracy']:.2f}%", knn))
  width = [max(len(row[i]) for row in rows) for i in range(3)]
  lines = [f"{results['dataset']} {results['test_split']} accuracy after {results['step']} steps"]
  lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, width)) for row in rows]
  return "\n".join(lines)
