"""Assembly: a validated config and a data source -> everything a run needs, built (not
compiled, not run). The source is opened here unless the caller injects one, so the
benchmarks and the tests build the very step the trainer runs, on synthetic data.
"""

from __future__ import annotations

import logging
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import ml_collections

from sslax import checkpoint as checkpoint_lib
from sslax import config as config_lib
from sslax import online_probe, optim, parallel, step
from sslax.data import datasets, pipeline
from sslax.errors import ConfigError
from sslax.evaluate import few_label
from sslax.methods import Method, get_method
from sslax.models import load_pretrained
from sslax.models.pretrained import as_init_from

log = logging.getLogger(__name__)


def open_split(config: ml_collections.ConfigDict, split: str,
               train: pipeline.Source | None = None) -> pipeline.Source:
  """Opens a split of config.data (`train`: its train split, already open, see
  `datasets.OpenFn`); with several processes, process 0 prepares the data first, so they do
  not all build the same TFDS dataset into a shared data_dir at once."""
  dataset = datasets.get_dataset(config.data.name)
  source = dataset.open(config.data, split, train) if jax.process_index() == 0 else None
  parallel.sync_processes(f"sslax: {config.data.name}/{split} prepared")  # no-op on one process
  return source if source is not None else dataset.open(config.data, split, train)


def training_source(config: ml_collections.ConfigDict) -> pipeline.Source:
  """The pretraining data: config.data's train split, or with config.data.train_subset
  ("1%", "10%", "5 per class") only that labelled subset of it, the very indices the
  few-label evaluation takes for that spec at eval.few_label_seed (few_label.get_subset:
  the saved list where one fits the split). The evaluation still reads the whole split."""
  source = open_split(config, config.data.train_split)
  spec_name = config.data.get("train_subset", "")
  if not spec_name:
    return source
  if source.full_resolution:
    raise ConfigError("config.data.train_subset: the split is read at full resolution, whose "
                      "views are cropped from raw records by index; set data.in_memory=True "
                      "or train_subset to ''")
  indices, where = few_label.get_subset(
      few_label.split_labels(source), few_label.SubsetSpec.parse(spec_name),
      config.eval.get("few_label_seed", 0), dataset=config.data.name,
      split=config.data.train_split, saved=config.eval.get("few_label_saved_subsets", True))
  log.info("pretraining on data.train_subset %r: %d of the %d examples of %s/%s (%s)",
              spec_name, len(indices), len(source), config.data.name, config.data.train_split,
              where)
  return pipeline.SubsetSource(source, indices)


def with_dataset_facts(config: ml_collections.ConfigDict, source: pipeline.Source):
  """config with what 0 leaves to the data, from the training source: data.num_classes and,
  for a token encoder, model.vocab_size (so building the network needs no second read of the
  corpus); a copy. A value set to something else than the source's is a ConfigError."""
  facts = [("data", "num_classes", source.num_classes)]
  if "vocab_size" in config.model and getattr(source, "vocab", None) is not None:
    facts.append(("model", "vocab_size", len(source.vocab)))
  config = config.copy_and_resolve_references()
  for block, key, value in facts:
    given = config[block].get(key, 0)
    if given not in (0, value):
      raise ConfigError(
          f"config.{block}.{key}: {given}, but {config.data.name} has {value}; set it to "
          f"{value} or 0 (from the dataset)")
    with config.unlocked():
      config[block][key] = value
  return config


def pretrained_encoder(config: ml_collections.ConfigDict, source: pipeline.Source) -> dict:
  """config.model.init_from's torchvision / timm weights as `build`'s init_from: the network's
  `encoder` (every method names its backbone so). A checkpoint of another architecture, or of
  other image channels or size, is a ConfigError naming the key."""
  size = config.data.image_size
  variables = load_pretrained(config.model.init_from, config.model,
                              (size, size, source.input_shape[-1]), log=logging.info)
  return as_init_from(variables)


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """The device mesh of config.num_devices; a batch that does not split over it is a ConfigError."""
  try:
    mesh = parallel.make_mesh(None if config.num_devices == -1 else config.num_devices)
    parallel.check_batch_divisible(config.batch_size, mesh)
    steps = config.get("accumulation_steps", 1)
    if config.batch_size % (mesh.devices.size * steps):
      raise ValueError(
          f"batch_size (global) = {config.batch_size} is not divisible by devices x "
          f"accumulation_steps = {mesh.devices.size} x {steps}: each device splits its shard "
          f"into {steps} micro-batches; choose a batch size that is a multiple of "
          f"{mesh.devices.size * steps}")
  except ValueError as error:
    raise ConfigError(str(error)) from None
  return mesh


class Run(NamedTuple):
  """What `build` makes: compiled on first call, nothing run yet."""
  method: Method
  source: pipeline.Source
  mesh: jax.sharding.Mesh
  model: nn.Module
  state: step.TrainState      # replicated over the mesh
  step_fn: Callable           # (state, device batch) -> (state, metrics)
  diagnostics: Callable | None  # (state, device batch) -> scalars to log; None when off


def build(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, *,
          source: pipeline.Source | None = None, init_from: dict | None = None,
          views_fn: Callable | None = None) -> Run:
  """Everything a run needs, after the config is validated. `source`: the training data
  (default: `training_source(config)`, config.data's train split or its train_subset); `init_from`: pretrained subtrees of the
  initial variables (see `step.with_subtrees`; default: config.model.init_from's weights, if
  any); `views_fn`: see `step.make_train_step`."""
  method = get_method(config.method.name)
  source = source or training_source(config)
  if init_from is None and config.model.get("init_from"):
    init_from = pretrained_encoder(config, source)
  config = config_lib.with_precision(with_dataset_facts(config, source))  # dtype policy -> backbone
  model = method.build(config)
  schedule = optim.learning_rate_schedule(config.optimizer, config.batch_size, config.total_steps)
  tx = optim.make_optimizer(config.optimizer, schedule,
                           peak_lr=optim.scaled_learning_rate(config.optimizer, config.batch_size))
  state = parallel.replicate(step.initial_state(config, method, model, tx, source, init_from), mesh)
  views_fn = views_fn or step.make_views_fn(config, source)
  step_fn = parallel.sharded_step(
      step.make_train_step(method, model, tx, schedule, config, source, views_fn), mesh)
  diagnostics = None
  if config.diagnostics.enabled:
    diagnostics = online_probe.DiagnosticsLogger(
        online_probe.make_embed_views(method, model, config, views_fn, source.input_key, mesh))
  return Run(method, source, mesh, model, state, step_fn, diagnostics)


def restore_latest(config: ml_collections.ConfigDict, workdir: str, mesh: jax.sharding.Mesh, *,
                   what: str = "checkpoint") -> Run:
  """`build(config, mesh)` with the state of the newest checkpoint in WORKDIR, read only:
  nothing in WORKDIR/checkpoints is moved, deleted or written. An empty WORKDIR is a
  FileNotFoundError that says to pretrain (`what` names the checkpoint in it), raised before
  anything is built; a checkpoint of another config is a StructureMismatch naming the config
  keys that differ; no readable one, NoReadableCheckpoint (sslax/checkpoint.py)."""
  checkpointer = checkpoint_lib.Checkpointer(workdir, read_only=True)
  try:
    if not checkpointer.all_steps():
      raise FileNotFoundError(f"no {what} in {checkpointer.directory}: pretrain first "
                              "(--mode=train_and_evaluate or --mode=train) with this --workdir")
    run = build(config, mesh)
    checkpointer.check_structure(run.state, config)
    state, _ = checkpointer.restore_latest(run.state)
    return run._replace(state=state)
  finally:
    checkpointer.close()
