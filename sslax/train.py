"""The generic pretraining loop: state, sharded step, logging, checkpoints.

It trains whatever method `config.method.name` names (sslax/methods/) and never
knows which: the method turns a list of augmented views into a loss.

One step, per device (run on every device by sslax/parallel.py):
  uint8 images --augment(key(seed, view, global position))--> views
  views --method.loss(axis_name="data")--> global-batch loss and gradients
  gradients --optax--> new parameters --method.update_state--> target network, queue, ...
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils

from sslax import accumulate
from sslax import checkpoint as checkpoint_lib
from sslax import config as config_lib
from sslax import metrics as metrics_lib
from sslax import optim, parallel, preemption
from sslax.data import augment, pipeline
from sslax.methods import Method, get_method
from sslax.methods.base import StepInputs

log = logging.getLogger(__name__)

# Independent streams derived from config.seed: fold_in(seed_key, STREAM) then the
# view index and the example's global stream position.
_INIT_STREAM, _AUGMENT_STREAM, _METHOD_STREAM = 0, 1, 2


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  method_state: Any  # the method's own state (target network, queue, center); {} if none


def dataset_info(config: ml_collections.ConfigDict, source: pipeline.Source) -> dict:
  info = dict(pipeline.DATASET_INFO.get(config.data.name, {}))
  channels = source.image_shape[-1]
  info.setdefault("mean", (0.5,) * channels)
  info.setdefault("std", (0.25,) * channels)
  return info


def init_variables(model: nn.Module, config: ml_collections.ConfigDict, channels: int) -> dict:
  """Same parameters on any device count: initialized on the host from the seed."""
  size = config.data.image_size
  key = jax.random.fold_in(jax.random.key(config.seed), _INIT_STREAM)
  # train=False: BatchNorm must not reach for the mesh axis outside the sharded step.
  variables = jax.jit(lambda k: model.init(k, jnp.zeros((2, size, size, channels)), train=False))(key)
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def make_views_fn(config: ml_collections.ConfigDict, info: dict) -> Callable:
  """(images uint8 [b,H,W,C], positions int [b]) -> list of normalized float views."""
  base = jax.random.fold_in(jax.random.key(config.seed), _AUGMENT_STREAM)
  view_configs = list(config.views.values())

  def views_fn(images, positions):
    views = []
    for index, view_cfg in enumerate(view_configs):
      size = augment.view_size(view_cfg, config.data.image_size)
      x = augment.augment_batch(jax.random.fold_in(base, index), images, positions, view_cfg, size)
      views.append(augment.normalize(x, info["mean"], info["std"]))
    return views
  return views_fn


def make_train_step(method: Method, model: nn.Module, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, config: ml_collections.ConfigDict,
                    views_fn: Callable, info: dict | None = None) -> Callable:
  """The per-device step fn(state, batch) -> (state, metrics), for parallel.sharded_step."""
  axis = parallel.DATA_AXIS
  method_key = jax.random.fold_in(jax.random.key(config.seed), _METHOD_STREAM)
  info = info or {"mean": (0.5,), "std": (0.25,)}

  def per_device_step(state: TrainState, batch: dict):
    inputs = StepInputs(views=views_fn(batch["image"], batch["position"]), labels=batch["label"],
                        step=state.step, state=state.method_state,
                        keys=jax.vmap(lambda p: jax.random.fold_in(method_key, p))(batch["position"]),
                        pixel_mean=tuple(info["mean"]), pixel_std=tuple(info["std"]))

    def grad_fn(inputs: StepInputs, batch_stats):
      def loss_fn(params):
        variables = {"params": params, "batch_stats": batch_stats}
        return method.loss(model, variables, inputs, config.method, axis)
      return jax.value_and_grad(loss_fn, has_aux=True)(state.params)

    # One call, or config.accumulation_steps micro-batches in a scan (sslax/accumulate.py).
    (loss, loss_metrics, aux), grads = accumulate.value_and_grad(
        grad_fn, inputs, state.batch_stats, state.params, config.get("accumulation_steps", 1))
    # grads are already the global-batch gradient: see sslax/parallel.py.
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    params, method_state = method.update_state(config, params, state.method_state, aux.outputs,
                                               state.step)
    metrics = {"loss": loss, "learning_rate": schedule(state.step),
               "grad_norm": optax.tree.norm(grads), **loss_metrics}
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=aux.batch_stats,
                              opt_state=opt_state, method_state=method_state)
    return new_state, metrics

  return per_device_step


def open_split(config: ml_collections.ConfigDict, split: str) -> pipeline.Source:
  """Opens a split; with several processes, process 0 prepares the data first, so
  they do not all build the same TFDS dataset into a shared data_dir at once."""
  def open_source():
    return pipeline.open_source(
        config.data.name, split, data_dir=config.data.data_dir or None,
        image_size=config.data.image_size, in_memory=config.data.in_memory,
        download=config.data.download)
  if jax.process_count() == 1:
    return open_source()
  source = open_source() if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices(f"sslax: {config.data.name}/{split} prepared")
  return source or open_source()


def with_subtrees(variables: dict, init_from: dict) -> dict:
  """variables with the top-level subtrees of init_from["params"] / ["batch_stats"] in place
  of the freshly initialized ones (fine-tuning starts from a pretrained `encoder`)."""
  merged = {}
  for collection, tree in variables.items():
    given = init_from.get(collection, {})
    for name, subtree in given.items():
      fresh = jax.tree.map(jnp.shape, tree.get(name)) if name in tree else None
      if fresh != jax.tree.map(jnp.shape, subtree):
        raise config_lib.ConfigError(
            f"the pretrained {collection}/{name} does not fit this model's: fine-tune with the "
            "config.model of the pretraining run")
    merged[collection] = {**tree, **given}
  return merged


def initial_state(config: ml_collections.ConfigDict, method: Method, model: nn.Module,
                  tx: optax.GradientTransformation, channels: int,
                  init_from: dict | None = None) -> TrainState:
  """The state at step 0, on the host; `init_from`: see `with_subtrees`."""
  variables = init_variables(model, config, channels)
  if init_from is not None:
    variables = with_subtrees(variables, init_from)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                     batch_stats=variables["batch_stats"], opt_state=tx.init(variables["params"]),
                     method_state=method.init_state(config, variables))
  return jax.device_get(state)


def with_num_classes(config: ml_collections.ConfigDict, source: pipeline.Source):
  """config with data.num_classes = the dataset's when it is 0 (the default); a copy."""
  if config.data.get("num_classes", 0) > 0:
    if config.data.num_classes != source.num_classes:
      raise config_lib.ConfigError(
          f"config.data.num_classes: {config.data.num_classes}, but {config.data.name} has "
          f"{source.num_classes} classes; set it to {source.num_classes} or 0 (from the dataset)")
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.num_classes = source.num_classes
  return config


def build(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, init_from: dict | None = None):
  """Everything a run needs, built (not compiled) after the config is validated;
  `init_from`: pretrained subtrees of the initial variables (see `with_subtrees`)."""
  method = get_method(config.method.name)
  source = open_split(config, config.data.train_split)
  info = dataset_info(config, source)
  config = config_lib.with_precision(with_num_classes(config, source))  # dtype policy -> backbone
  model = method.build(config)
  schedule = optim.learning_rate_schedule(config.optimizer, config.batch_size, config.total_steps)
  tx = optim.make_optimizer(config.optimizer, schedule)
  state = parallel.replicate(
      initial_state(config, method, model, tx, source.image_shape[-1], init_from), mesh)
  step_fn = parallel.sharded_step(
      make_train_step(method, model, tx, schedule, config, make_views_fn(config, info), info),
      mesh)
  return method, source, info, model, state, step_fn


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
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
    raise config_lib.ConfigError(str(error)) from None
  return mesh


def train(config: ml_collections.ConfigDict, workdir: str,
          init_from: dict | None = None) -> tuple[TrainState, nn.Module, Any]:
  """Pretrains until config.total_steps, resuming from WORKDIR/checkpoints if any; a
  fresh run starts from `init_from`'s subtrees where given (fine-tuning, see `build`)."""
  config_lib.validate(config)
  mesh = make_mesh(config)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))

  method, source, info, model, state, step_fn = build(config, mesh, init_from)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, keep=config.keep_checkpoints, async_save=config.async_checkpoints)
  state, restored_step = checkpointer.restore_latest(state)
  start_step = int(restored_step or 0)
  if restored_step is not None:
    log.warning("resuming from the checkpoint at step %d in %s", start_step, checkpointer.directory)

  batches = pipeline.host_batches(
      source, global_batch=config.batch_size, seed=config.seed, start_step=start_step)
  device_batches = parallel.device_prefetch(
      ({"image": b["image"], "label": b["label"], "position": b["position"]} for b in batches), mesh)
  writer = metrics_lib.MetricWriter(workdir, start_step=start_step)
  progress = metrics_lib.Progress(config.total_steps, config.batch_size, start_step)
  train_start = time.perf_counter()
  step = start_step
  watch = preemption.PreemptionWatch().start()  # SIGTERM -> checkpoint and stop (sslax/preemption.py)
  preempted = False
  try:
    while step < config.total_steps and not preempted:
      state, step_metrics = step_fn(state, next(device_batches))
      step += 1
      preempted = watch.reached(step)  # the same step on every process
      if step % config.log_every_steps == 0 or step == config.total_steps:
        scalars = {k: float(v) for k, v in parallel.to_host(step_metrics).items()}
        scalars.update(progress.update(step, scalars["loss"]))
        if not np.isfinite(scalars["loss"]):
          raise FloatingPointError(
              f"loss is {scalars['loss']} at step {step}: lower optimizer.base_lr or check the data")
        writer.write(step, scalars)
      if preempted or step % config.checkpoint_every_steps == 0 or step == config.total_steps:
        checkpointer.save(step, state, force=preempted)
  finally:
    watch.stop()
    batches.close()
    checkpointer.close()
    writer.close()
  if jax.process_index() == 0 and step > start_step:
    log.info("trained steps %d..%d in %.1f s", start_step, step, time.perf_counter() - train_start)
  if preempted:  # raised only now: the checkpoint above is written and closed
    raise preemption.Preempted(step, checkpointer.directory)
  return state, model, mesh


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  from sslax.evaluate import frozen  # evaluation pulls in more; keep train importable alone

  state, model, mesh = train(config, workdir)
  results = {}
  if config.eval.enabled:
    results = frozen.evaluate_run(config, model, state, mesh, workdir)
  if "finetune" in config and config.finetune.enabled:
    from sslax.evaluate import finetune
    results["finetune"] = finetune.finetune_run(config, state, workdir)
  return results


def restore_latest(config: ml_collections.ConfigDict, workdir: str, mesh: jax.sharding.Mesh, *,
                   what: str = "checkpoint") -> tuple[nn.Module, TrainState, dict]:
  """`build(config, mesh)` with the state of the newest checkpoint in WORKDIR: -> (model,
  state, dataset info). An empty WORKDIR is a FileNotFoundError that says to pretrain (`what`
  names the checkpoint in it), raised before anything is built."""
  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.keep_checkpoints)
  step = None
  try:
    if checkpointer.all_steps():
      _, _, info, model, state, _ = build(config, mesh)
      state, step = checkpointer.restore_latest(state)
  finally:
    checkpointer.close()
  if step is None:
    raise FileNotFoundError(f"no {what} in {checkpointer.directory}: pretrain first "
                            "(--mode=train_and_evaluate or --mode=train) with this --workdir")
  return model, state, info


def evaluate_latest(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Evaluates the newest checkpoint in WORKDIR without training."""
  from sslax.evaluate import frozen

  config_lib.validate(config)
  mesh = make_mesh(config)
  model, state, _ = restore_latest(config, workdir, mesh)
  return frozen.evaluate_run(config, model, state, mesh, workdir)
