"""Frozen-encoder evaluation of a pretraining run, written to WORKDIR/eval.json.

For each encoder (the pretrained one and, as baselines, the same network at its random
initialization and the raw inputs, baselines.py) the protocols config.eval.protocols names
(protocols.py: linear probe, kNN, SGD probe, few-label, diagnostics) run on features of the
whole train and test splits (features.py); the raw inputs get only the protocols marked
`on_raw_inputs`. Every number is a named protocol with its settings recorded beside it.
With config.eval.heads, the pretrained network's head outputs (projector g(f(x)), predictor
q(g(f(x)))) are evaluated too, by the linear probe and kNN only, under "heads".

The online probe logged while pretraining (WORKDIR/metrics.jsonl) is reported on its own,
never mixed with these offline numbers. With config.eval.data set, the encoder is evaluated
on another dataset than it was pretrained on (converted to its channels and size).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from sslax import parallel
from sslax.assemble import open_split
from sslax.data import pipeline
from sslax.errors import ConfigError
from sslax.evaluate import protocols as protocols_lib
from sslax.evaluate.baselines import random_init_variables, raw_features
from sslax.evaluate.features import extract_features
from sslax.methods import get_method

ONLINE_PROBE_PROTOCOL = ("online linear probe on stop-gradient features of the training inputs "
                         "(the first augmented view of images), trained alongside pretraining "
                         "(train-batch accuracy, not comparable to offline)")


# ----------------------------------------------------------------------------- protocols


def _protocols(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  return tuple(config.eval.get("protocols", ("linear_probe", "knn", "few_label", "diagnostics")))


def run_protocols(name: str, train: tuple, test: tuple, num_classes: int,
                  config: ml_collections.ConfigDict, protocols: tuple[str, ...], *,
                  dataset: str, train_split: str) -> dict:
  """The named protocols on (features, labels) of the train and test splits -> their results."""
  start = time.perf_counter()
  context = protocols_lib.Context(num_classes=num_classes, dataset=dataset, train_split=train_split)
  result: dict[str, Any] = {}
  summary = []
  for protocol in protocols_lib.PROTOCOLS.values():  # registry order: eval.json's key order
    if protocol.name not in protocols:
      continue
    entry = protocol.run(config, *train, *test, context)
    if entry is None:
      continue
    result[protocol.name] = entry
    summary.append(protocol.summarize(entry))
    warning = protocol.warning(entry)
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


def _pretraining_input(config: ml_collections.ConfigDict) -> tuple[int, tuple, tuple]:
  """-> (channels, mean, std) of the images the encoder was pretrained on."""
  channels = pipeline.DATASET_INFO.get(config.data.name, {}).get("channels")
  if channels is None:
    channels = open_split(config, config.data.train_split).input_shape[-1]
  return (channels, *pipeline.image_normalization(config.data.name, channels))


def head_output(which: str):
  """The `method` of model.apply that embeds with head `which` of the network (Method.heads),
  in inference mode as the backbone's `encode`."""
  def apply(module, x, train: bool = False):
    return module.head(x, which, train=train)
  return apply


def evaluate_run(config: ml_collections.ConfigDict, model, state, mesh, workdir: str) -> dict:
  """Evaluates the trained encoder in `state`; writes WORKDIR/eval.json and prints a table."""
  ev_config = evaluation_config(config)
  transfer = ev_config is not config
  train_split = config.eval.train_split or ev_config.data.train_split
  test_split = ev_config.data.test_split
  train_source = open_split(ev_config, train_split)
  shares = train_split == ev_config.data.train_split  # the split the vocabulary is built from
  test_source = open_split(ev_config, test_split, train_source if shares else None)
  channels, mean, std = None, train_source.pixel_mean, train_source.pixel_std
  if train_source.input_key == "image" and transfer:
    channels, mean, std = _pretraining_input(config)
  limit = None if config.eval.max_train_examples < 0 else config.eval.max_train_examples
  embed = lambda variables, source, limit=None, head=None: extract_features(  # noqa: E731
      model, variables, source, mesh, image_size=config.data.get("image_size", 0), mean=mean,
      std=std, batch_size=config.eval.batch_size, limit=limit, channels=channels,
      apply_method="encode" if head is None else head_output(head))
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
  heads = tuple(config.eval.get("heads", ()))
  if heads:  # f versus g: the heads' outputs, on the same splits, by the same settings
    on_heads = tuple(p for p in protocols if p in protocols_lib.HEAD_PROTOCOLS)
    results["heads"] = {head: run(f"pretrained {head} output", embed(trained, train_source, limit, head),
                                  embed(trained, test_source, head=head), on_heads)
                        for head in heads}
  if config.eval.random_init_baseline:
    random_init = random_init_variables(model, config, train_source, channels)
    results["random_init"] = run("random-init encoder", embed(random_init, train_source, limit),
                                 embed(random_init, test_source))
  if config.eval.raw_pixel_baseline:
    train_raw, test_raw, description = raw_features(train_source, test_source, limit, config.eval)
    on_raw = tuple(p for p in protocols
                   if p in protocols_lib.PROTOCOLS and protocols_lib.PROTOCOLS[p].on_raw_inputs)
    results["raw_features"] = run(f"raw inputs ({description})", train_raw, test_raw, on_raw)
    results["raw_features"]["input"] = description
  online = online_probe_result(workdir)
  if online is not None:
    results["online_probe"] = online

  if jax.process_index() == 0:
    with open(os.path.join(workdir, "eval.json"), "w") as f:
      json.dump(results, f, indent=2)
    print(format_table(results), flush=True)
  return results


def format_table(results: dict) -> str:
  """eval.json as a table: one row per encoder, the columns of every protocol that ran."""
  entries = {key: results[key] for key in ("pretrained", "random_init", "raw_features")
             if key in results}
  entries.update({f"heads.{h}": entry for h, entry in results.get("heads", {}).items()})
  names = {"pretrained": "pretrained", "random_init": "random init", "raw_features": "raw features"}
  encoders = [(key, names.get(key, f"pretrained {key.removeprefix('heads.')} output"))
              for key in entries]
  # Head rows right after the backbone's: f versus g.
  encoders.sort(key=lambda e: (e[0] != "pretrained", not e[0].startswith("heads.")))
  ran = [p for p in protocols_lib.PROTOCOLS.values() if any(p.name in entries[e] for e, _ in encoders)]
  # Columns in registry order; within a protocol, in the order the encoders first show them.
  cells: dict[str, dict[str, str]] = {key: {} for key, _ in encoders}
  columns: dict[str, None] = {}
  for protocol in ran:
    for key, _ in encoders:
      if protocol.name in entries[key]:
        row = protocol.cells(entries[key][protocol.name])
        cells[key].update(row)
        columns.update(dict.fromkeys(row))
  rows = [("encoder", *columns)]
  rows += [(name, *(cells[key].get(c, "-") for c in columns)) for key, name in encoders]
  width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
  where = results["dataset"]
  if "transfer" in results:
    where = f"{results['transfer']['evaluated_on']} (pretrained on {results['transfer']['pretrained_on']})"
  lines = [f"{where} {results['test_split']} accuracy after {results['step']} steps"]
  lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, width)).rstrip() for row in rows]
  for key, _ in encoders:
    for protocol in ran:
      warning = protocol.name in entries[key] and protocol.warning(entries[key][protocol.name])
      if warning:
        lines.append(f"WARNING ({key}): {warning}")
  if "online_probe" in results:
    online = results["online_probe"]
    lines.append(f"online probe at step {online['step']}: {100 * online['accuracy']:.2f}% "
                 "(train-batch accuracy while pretraining; not comparable to the offline "
                 "numbers above)")
  return "\n".join(lines)
