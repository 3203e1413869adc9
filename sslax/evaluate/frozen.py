"""Frozen-encoder evaluation of a pretraining run, written to WORKDIR/eval.json.

Every number is a named protocol with its settings recorded beside it. For each encoder
(the pretrained one and, as a baseline, the same network at its random initialization)
the protocols config.eval.protocols names run on features of the whole train and test
splits:

  linear_probe  L-BFGS logistic regression, L2 chosen on a held-out split (linear_probe.py)
  knn           weighted kNN of Wu et al. 2018 (knn.py)
  sgd_probe     SimCLR/BYOL's SGD linear probe (sgd_probe.py)
  few_label     the linear probe on class-balanced 1% / 10% / k-per-class subsets (few_label.py)
  diagnostics   RankMe, uniformity, normalized std, collapse flag on the test features
                (diagnostics.py), with a warning printed on collapse

The raw inputs are a third baseline (linear probe and few-label only): pixels / 255 for
images, the mean frame over real positions for sequences, TF-IDF of the token ids for text.

Features are extracted with the same sharded machinery as training (every device embeds
its slice of each batch) and gathered to every host, so they do not depend on the device
count. The online probe logged while pretraining (WORKDIR/metrics.jsonl) is reported on
its own, never mixed with these offline numbers. With config.eval.data set, the encoder is
evaluated on another dataset than it was pretrained on (converted to its channels and size).
"""

from __future__ import annotations

from sslax.errors import ConfigError
import json
import os
import sys
import time
import types
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from sslax import config as config_lib
from sslax import parallel
from sslax.data import augment, pipeline
from sslax.evaluate import diagnostics as diagnostics_lib
from sslax.evaluate import few_label, sgd_probe
from sslax.evaluate.knn import knn_accuracy
from sslax.evaluate.linear_probe import linear_probe

PROTOCOLS = config_lib.EVAL_PROTOCOLS
RAW_PROTOCOLS = ("linear_probe", "few_label")  # what the raw-input baseline runs
LINEAR_PROBE_PROTOCOL = "linear probe (L-BFGS logistic regression, L2 chosen on a held-out split)"
ONLINE_PROBE_PROTOCOL = ("online linear probe on stop-gradient features of the training inputs "
                         "(the first augmented view of images), trained alongside pretraining "
                         "(train-batch accuracy, not comparable to offline)")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def convert_channels(x: jax.Array, channels: int) -> jax.Array:
  """x float [B, H, W, C] -> [B, H, W, channels]: grayscale repeated to RGB, RGB to luma."""
  have = x.shape[-1]
  if have == channels:
    return x
  if have == 1:
    return jnp.repeat(x, channels, axis=-1)
  if channels == 1 and have == 3:
    return (x @ jnp.asarray(LUMA, x.dtype))[..., None]
  raise ValueError(f"cannot convert {have}-channel images to the encoder's {channels} channels")


class _InputMask(pipeline.Source):
  """A sequence or text source whose padding mask [B, T] is renamed `input_mask`, so it does
  not collide with the per-example `mask` [B] that `pipeline.eval_batches` adds."""

  def __init__(self, source: pipeline.Source):
    self.source = source
    self.num_classes = source.num_classes

  def __len__(self) -> int:
    return len(self.source)

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    batch = dict(self.source.get(indices))
    batch["input_mask"] = batch.pop("mask")
    return batch


def extract_features(model, variables: dict, source: pipeline.Source, mesh, *,
                     image_size: int, mean, std, batch_size: int,
                     limit: int | None = None, apply_method: str | None = "encode",
                     channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Embeds a whole split: -> features float32 [N, D], labels int32 [N] (the first `limit`).

  Images (the default, and any source without `input_key`): center view resized to
  image_size, converted to `channels` if given (transfer), normalized with mean/std, then
  `model.apply(variables, x, train=False, method=apply_method)`. Sequences and text
  (source.input_key "frames" / "tokens"): `model.apply(variables, x, mask, train=False,
  method=apply_method)` on the source's own values, mask bool [B, T]. apply_method=None
  runs `model.__call__` (a fine-tuned classifier's logits).
  """
  input_key = getattr(source, "input_key", "image")
  if input_key == "image":
    def embed(variables, batch):
      x = augment.center_view(batch["image"], image_size)
      x = augment.normalize(x if channels is None else convert_channels(x, channels), mean, std)
      return model.apply(variables, x, train=False, method=apply_method)
    keys = ("image",)
  else:
    def embed(variables, batch):
      return model.apply(variables, batch[input_key], batch["input_mask"], train=False,
                         method=apply_method)
    keys = (input_key, "input_mask")
    source = _InputMask(source)

  apply = parallel.sharded_apply(embed, mesh)
  replicated = parallel.replicate(jax.device_get(variables), mesh)
  features, labels = [], []
  global_batch = batch_size - batch_size % mesh.devices.size or mesh.devices.size
  for batch in pipeline.eval_batches(source, global_batch):
    out = apply(replicated, parallel.shard_host_batch({k: batch[k] for k in keys}, mesh))
    out = np.asarray(multihost_utils.process_allgather(out, tiled=True), np.float32)
    valid = np.asarray(multihost_utils.process_allgather(batch["mask"], tiled=True))
    label = np.asarray(multihost_utils.process_allgather(batch["label"], tiled=True))
    features.append(out[valid])
    labels.append(label[valid])
    if limit is not None and sum(len(f) for f in features) >= limit:
      break
  features, labels = np.concatenate(features), np.concatenate(labels)
  if limit is not None:
    features, labels = features[:limit], labels[:limit]
  return features.astype(np.float32), labels.astype(np.int32)


# ----------------------------------------------------------------------------- raw inputs


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
  key = getattr(source, "input_key", "image")
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


# ----------------------------------------------------------------------------- protocols


def _protocols(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  return tuple(config.eval.get("protocols", ("linear_probe", "knn", "few_label", "diagnostics")))


def run_protocols(name: str, train: tuple, test: tuple, num_classes: int,
                  config: ml_collections.ConfigDict, protocols: tuple[str, ...], *,
                  dataset: str, train_split: str) -> dict:
  """The named protocols on (features, labels) of the train and test splits -> their results."""
  start = time.perf_counter()
  ev = config.eval
  result: dict[str, Any] = {}
  summary = []
  if "linear_probe" in protocols:
    weight_decays = tuple(ev.probe_weight_decays)
    probe = linear_probe(train[0], train[1], test[0], test[1], num_classes,
                         weight_decays=weight_decays, seed=config.seed)
    probe["protocol"] = LINEAR_PROBE_PROTOCOL
    probe["settings"] = {"weight_decays": list(weight_decays), "val_fraction": 0.1,
                         "standardized": True, "max_iters": 100, "tol": 1e-4, "seed": config.seed}
    result["linear_probe"] = probe
    summary.append(f"linear probe {100 * probe['accuracy']:.2f}%")
  if "knn" in protocols:
    result["knn"] = {
        "accuracy": float(knn_accuracy(train[0], train[1], test[0], test[1], num_classes,
                                       k=ev.knn_k, temperature=ev.knn_temperature)),
        "protocol": f"weighted kNN (Wu et al. 2018), cosine, k={ev.knn_k}, T={ev.knn_temperature}",
        "settings": {"k": ev.knn_k, "temperature": ev.knn_temperature}}
    summary.append(f"kNN {100 * result['knn']['accuracy']:.2f}%")
  if "sgd_probe" in protocols:
    result["sgd_probe"] = sgd_probe.sgd_probe(train[0], train[1], test[0], test[1], num_classes,
                                              ev.get("sgd_probe"), seed=config.seed)
    summary.append(f"SGD probe {100 * result['sgd_probe']['accuracy']:.2f}%")
  if "few_label" in protocols and few_label.specs_from_config(ev):
    result["few_label"] = {}
    for spec in few_label.specs_from_config(ev):
      result["few_label"][spec.name] = few_label.few_label_probe(
          train[0], train[1], test[0], test[1], num_classes, spec=spec,
          draws=ev.get("few_label_draws", 1), seed=ev.get("few_label_seed", 0), dataset=dataset,
          split=train_split, weight_decays=tuple(ev.probe_weight_decays),
          per_class_c=ev.get("few_label_per_class_c", 1.0),
          saved=ev.get("few_label_saved_subsets", True))
      summary.append(f"{spec.name} {100 * result['few_label'][spec.name]['accuracy']:.2f}%")
  if "diagnostics" in protocols:
    diag = diagnostics_lib.summary(
        test[0], collapse_threshold=ev.get("collapse_threshold", diagnostics_lib.COLLAPSE_THRESHOLD))
    diag["protocol"] = ("RankMe (Garrido et al. 2023), uniformity (Wang & Isola 2020, t=2), std of "
                        "l2-normalized features (SimSiam) on the first "
                        f"{diag['examples']} test-split features")
    result["diagnostics"] = diag
    summary.append(f"RankMe {diag['rankme']:.1f}")
    warning = diagnostics_lib.collapse_warning(diag)
    if warning:
      print(f"[eval] WARNING, {name}: {warning}", file=sys.stderr, flush=True)
  result["feature_dim"] = int(np.shape(train[0])[1])
  result["seconds"] = round(time.perf_counter() - start, 1)
  print(f"[eval] {name}: " + ", ".join(summary), file=sys.stderr, flush=True)
  return result


def online_probe_result(workdir: str) -> dict | None:
  """The last `online_probe/accuracy` logged in WORKDIR/metrics.jsonl, or None."""
  path = os.path.join(workdir, "metrics.jsonl")
  last = None
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by preemption
          continue
        if "online_probe/accuracy" in row:
          last = row
  if last is None:
    return None
  return {"accuracy": float(last["online_probe/accuracy"]), "step": int(last["step"]),
          "protocol": ONLINE_PROBE_PROTOCOL}


# ----------------------------------------------------------------------------- the run


def evaluation_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """config with config.data replaced by the transfer dataset of config.eval.data (its keys
  over config.data's; data_dir "" keeps config.data's; image_size stays the encoder's), or
  config itself when config.eval.data.name is empty."""
  block = config.eval.get("data")
  if not block or not block.get("name"):
    return config
  if block.get("image_size", config.data.image_size) != config.data.image_size:
    raise ConfigError(
        f"config.eval.data.image_size: {block.image_size}, but the encoder takes "
        f"config.data.image_size = {config.data.image_size}; leave it out (images are resized)")
  merged = config.copy_and_resolve_references()
  with merged.unlocked():
    data = merged.data.to_dict()
    data.update({k: v for k, v in block.to_dict().items() if not (k == "data_dir" and not v)})
    data["image_size"], data["num_classes"] = config.data.image_size, 0
    merged.data = ml_collections.ConfigDict(data)
  return merged


def _pretraining_input(config: ml_collections.ConfigDict, open_split) -> tuple[int, dict]:
  """-> (channels, normalization info) of what the encoder was pretrained on."""
  from sslax.train import dataset_info

  channels = pipeline.DATASET_INFO.get(config.data.name, {}).get("channels")
  if channels is None:
    channels = open_split(config, config.data.train_split).image_shape[-1]
  size = config.data.image_size
  return channels, dataset_info(config, types.SimpleNamespace(image_shape=(size, size, channels)))


def evaluate_run(config: ml_collections.ConfigDict, model, state, mesh, workdir: str) -> dict:
  """Evaluates the trained encoder in `state`; writes WORKDIR/eval.json and prints a table."""
  from sslax.methods import get_method
  from sslax.train import dataset_info, init_variables, open_split

  ev_config = evaluation_config(config)
  transfer = ev_config is not config
  train_split = config.eval.train_split or ev_config.data.train_split
  test_split = ev_config.data.test_split
  train_source = open_split(ev_config, train_split)
  test_source = open_split(ev_config, test_split)
  input_key = getattr(train_source, "input_key", "image")
  channels = None
  if input_key == "image" and transfer:
    channels, info = _pretraining_input(config, open_split)
  else:
    info = dataset_info(config, train_source)
  limit = None if config.eval.max_train_examples < 0 else config.eval.max_train_examples
  embed = lambda variables, source, limit=None: extract_features(  # noqa: E731
      model, variables, source, mesh, image_size=config.data.image_size, mean=info["mean"],
      std=info["std"], batch_size=config.eval.batch_size, limit=limit, channels=channels)
  num_classes = train_source.num_classes
  protocols = _protocols(config)
  run = lambda name, train, test, protocols=protocols: run_protocols(  # noqa: E731
      name, train, test, num_classes, config, protocols, dataset=ev_config.data.name,
      train_split=train_split)

  results = {"step": int(parallel.to_host(state.step)), "dataset": ev_config.data.name,
             "train_split": train_split, "test_split": test_split, "protocols": list(protocols)}
  if transfer:
    results["transfer"] = {"pretrained_on": config.data.name, "evaluated_on": ev_config.data.name}
  method = get_method(config.method.name)
  trained = method.evaluated_variables(config, state.params, state.batch_stats, state.method_state)
  results["pretrained"] = run("pretrained encoder", embed(trained, train_source, limit),
                              embed(trained, test_source))
  if config.eval.random_init_baseline:
    # An image encoder takes its pretraining channel count; sequence ones shape from the source.
    init_from = (channels or train_source.image_shape[-1]) if input_key == "image" else train_source
    random_init = init_variables(model, config, init_from)
    results["random_init"] = run("random-init encoder", embed(random_init, train_source, limit),
                                 embed(random_init, test_source))
  if config.eval.raw_pixel_baseline:
    train_raw, test_raw, description = raw_features(train_source, test_source, limit, config.eval)
    results["raw_features"] = run(f"raw inputs ({description})", train_raw, test_raw,
                                  tuple(p for p in protocols if p in RAW_PROTOCOLS))
    results["raw_features"]["input"] = description
  online = online_probe_result(workdir)
  if online is not None:
    results["online_probe"] = online

  if jax.process_index() == 0:
    with open(os.path.join(workdir, "eval.json"), "w") as f:
      json.dump(results, f, indent=2)
    print(format_table(results), flush=True)
  return results


def _percent(entry: dict | None) -> str:
  if entry is None:
    return "-"
  text = f"{100 * entry['accuracy']:.2f}"
  if entry.get("draws", 1) > 1:
    text += f"±{100 * entry['std']:.2f}"
  return text + "%"


def format_table(results: dict) -> str:
  """eval.json as a table: one row per encoder, one column per protocol that ran."""
  encoders = [(k, n) for k, n in (("pretrained", "pretrained"), ("random_init", "random init"),
                                  ("raw_features", "raw features")) if k in results]
  columns = [(k, n) for k, n in (("linear_probe", "linear probe"), ("knn", "kNN"),
                                 ("sgd_probe", "SGD probe"))
             if any(k in results[e] for e, _ in encoders)]
  few = list(dict.fromkeys(s for e, _ in encoders for s in results[e].get("few_label", {})))
  show_rank = any("diagnostics" in results[e] for e, _ in encoders)
  rows = [("encoder", *(n for _, n in columns), *(f"few-label {s}" for s in few),
           *(("RankMe",) if show_rank else ()))]
  for key, name in encoders:
    r = results[key]
    row = [name, *(_percent(r.get(k)) for k, _ in columns),
           *(_percent(r.get("few_label", {}).get(s)) for s in few)]
    if show_rank:
      row.append(f"{r['diagnostics']['rankme']:.1f}" if "diagnostics" in r else "-")
    rows.append(tuple(row))
  width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
  where = results["dataset"]
  if "transfer" in results:
    where = f"{results['transfer']['evaluated_on']} (pretrained on {results['transfer']['pretrained_on']})"
  lines = [f"{where} {results['test_split']} accuracy after {results['step']} steps"]
  lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, width)).rstrip() for row in rows]
  for key, _ in encoders:
    diag = results[key].get("diagnostics")
    if diag and diag.get("collapsed"):
      lines.append(f"WARNING ({key}): {diagnostics_lib.collapse_warning(diag)}")
  if "online_probe" in results:
    online = results["online_probe"]
    lines.append(f"online probe at step {online['step']}: {100 * online['accuracy']:.2f}% "
                 "(train-batch accuracy while pretraining; not comparable to the offline "
                 "numbers above)")
  return "\n".join(lines)
