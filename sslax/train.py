"""The generic pretraining loop: state, sharded step, logging, checkpoints.

It trains whatever method `config.method.name` names (sslax/methods/) and never
knows which: the method turns a list of augmented views into a loss.

One step, per device (run on every device by sslax/parallel.py):
  uint8 images --augment(key(seed, view, global position))--> views
  views --method.loss(axis_name="data")--> global-batch loss and gradients
  gradients --optax--> new parameters --method.update_state--> target network, queue, ...
"""

from __future__ import annotations

from sslax.errors import ConfigError
import logging
import os
import sys
import time
from typing import Any, Callable, NamedTuple

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
from sslax import online_probe, optim, parallel, preemption
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
  probe: Any = None  # the online linear probe's params and Adam state (sslax/online_probe.py); {} if off


def input_spec(source: pipeline.Source) -> tuple[str, tuple, type]:
  """-> (batch key, per-example shape, dtype) of what the network reads from `source`:
  ("image", (H, W, C), uint8) for images; sequence and text sources (sslax/data/sequences.py,
  text.py) say theirs: ("frames", (T, F), float32) or ("tokens", (T,), int32), with a
  padding mask [T] beside them."""
  key = getattr(source, "input_key", "image")
  if key == "image":
    return key, tuple(source.image_shape), np.uint8
  return key, tuple(source.input_shape), np.int32 if key == "tokens" else np.float32


def dataset_info(config: ml_collections.ConfigDict, source: pipeline.Source) -> dict:
  info = dict(pipeline.DATASET_INFO.get(config.data.name, {}))
  key, shape, _ = input_spec(source)
  if key != "image":  # sources standardize their own frames; tokens are ids
    return {**info, "mean": (0.0,), "std": (1.0,)}
  channels = shape[-1]
  info.setdefault("mean", (0.5,) * channels)
  info.setdefault("std", (0.25,) * channels)
  return info


def example_inputs(config: ml_collections.ConfigDict, data: int | pipeline.Source,
                   batch: int = 2) -> tuple:
  """Zero inputs the network is initialized (or shape-inferred) with: (images,) for an image
  source or a channel count, (x, mask) for a sequence or text source."""
  if isinstance(data, int):
    size = config.data.image_size
    return (jnp.zeros((batch, size, size, data)),)
  key, shape, dtype = input_spec(data)
  if key == "image":
    size = config.data.image_size
    return (jnp.zeros((batch, size, size, shape[-1])),)
  return jnp.zeros((batch, *shape), dtype), jnp.ones((batch, shape[0]), bool)


def init_variables(model: nn.Module, config: ml_collections.ConfigDict,
                   data: int | pipeline.Source) -> dict:
  """Same parameters on any device count: initialized on the host from the seed. `data`:
  the training source, or an image channel count."""
  key = jax.random.fold_in(jax.random.key(config.seed), _INIT_STREAM)
  inputs = example_inputs(config, data)
  # train=False: BatchNorm must not reach for the mesh axis outside the sharded step.
  variables = jax.jit(lambda k: model.init(k, *inputs, train=False))(key)
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def make_views_fn(config: ml_collections.ConfigDict, info: dict, input_key: str = "image") -> Callable:
  """(images uint8 [b,H,W,C], positions int [b]) -> list of normalized float views. Frames
  and tokens pass unchanged, as the one view: sequence methods mask or corrupt them
  themselves (sslax/methods/apc.py, masked_frames.py, ...)."""
  if input_key != "image":
    return lambda x, positions: [x]
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
                    views_fn: Callable, info: dict | None = None,
                    input_key: str = "image") -> Callable:
  """The per-device step fn(state, batch) -> (state, metrics), for parallel.sharded_step.
  batch: {input_key: [b, ...], "label", "position"} and, for sequences and text, "mask" [b, T]."""
  axis = parallel.DATA_AXIS
  method_key = jax.random.fold_in(jax.random.key(config.seed), _METHOD_STREAM)
  info = info or {"mean": (0.5,), "std": (0.25,)}

  def per_device_step(state: TrainState, batch: dict):
    inputs = StepInputs(views=views_fn(batch[input_key], batch["position"]), labels=batch["label"],
                        mask=batch.get("mask"),
                        step=state.step, state=state.method_state,
                        keys=jax.vmap(lambda p: jax.random.fold_in(method_key, p))(batch["position"]),
                        pixel_mean=tuple(info["mean"]), pixel_std=tuple(info["std"]))

    def grad_fn(inputs: StepInputs, batch_stats):
      def loss_fn(params):
        variables = {"params": params, "batch_stats": batch_stats}
        return method.loss(model, variables, inputs, config, axis)
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
  they do not all build the same TFDS dataset into a shared data_dir at once. Sequence and
  text datasets (sslax/data/sequences.py, text.py) read their own config.data keys."""
  def open_source():
    from sslax.data import sequences, text  # their readers are needed only by their datasets
    for module in (sequences, text):
      if config.data.name in module.DATASETS:
        return module.open_source(config.data, split)
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
        raise ConfigError(
            f"the pretrained {collection}/{name} does not fit this model's: fine-tune with the "
            "config.model of the pretraining run")
    merged[collection] = {**tree, **given}
  return merged


def initial_state(config: ml_collections.ConfigDict, method: Method, model: nn.Module,
                  tx: optax.GradientTransformation, data: int | pipeline.Source,
                  init_from: dict | None = None) -> TrainState:
  """The state at step 0, on the host; `data`: the training source (or an image channel
  count); `init_from`: see `with_subtrees`."""
  variables = init_variables(model, config, data)
  if init_from is not None:
    variables = with_subtrees(variables, init_from)
  method_state = method.init_state(config, variables, data)
  probe = {}
  if "online_probe" in config and config.online_probe.enabled:
    evaluated = method.evaluated_variables(config, variables["params"], variables["batch_stats"],
                                           method_state)
    probe = online_probe.init_probe(config, model, evaluated, example_inputs(config, data),
                                    config.data.num_classes or getattr(data, "num_classes", 0))
  state = TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                     batch_stats=variables["batch_stats"], opt_state=tx.init(variables["params"]),
                     method_state=method_state, probe=probe)
  return jax.device_get(state)


def with_num_classes(config: ml_collections.ConfigDict, source: pipeline.Source):
  """config with data.num_classes = the dataset's when it is 0 (the default); a copy."""
  if config.data.get("num_classes", 0) > 0:
    if config.data.num_classes != source.num_classes:
      raise ConfigError(
          f"config.data.num_classes: {config.data.num_classes}, but {config.data.name} has "
          f"{source.num_classes} classes; set it to {source.num_classes} or 0 (from the dataset)")
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.num_classes = source.num_classes
  return config


class Run(NamedTuple):
  """What `build` makes: compiled on first call, nothing run yet."""
  method: Method
  source: pipeline.Source
  info: dict                  # the dataset's normalization and sizes
  model: nn.Module
  state: TrainState           # replicated over the mesh
  step_fn: Callable           # (state, device batch) -> (state, metrics)
  probe_fn: Callable | None   # the online probe's step, the same signature; None when off
  diagnostics: Callable | None  # (state, device batch) -> scalars to log; None when off


def build(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
          init_from: dict | None = None) -> Run:
  """Everything a run needs, built (not compiled) after the config is validated;
  `init_from`: pretrained subtrees of the initial variables (see `with_subtrees`)."""
  method = get_method(config.method.name)
  source = open_split(config, config.data.train_split)
  info = dataset_info(config, source)
  config = config_lib.with_precision(with_num_classes(config, source))  # dtype policy -> backbone
  model = method.build(config)
  schedule = optim.learning_rate_schedule(config.optimizer, config.batch_size, config.total_steps)
  tx = optim.make_optimizer(config.optimizer, schedule)
  state = parallel.replicate(initial_state(config, method, model, tx, source, init_from), mesh)
  input_key = input_spec(source)[0]
  views_fn = make_views_fn(config, info, input_key)
  step_fn = parallel.sharded_step(
      make_train_step(method, model, tx, schedule, config, views_fn, info, input_key), mesh)
  probe_fn = diagnostics = None
  if "online_probe" in config and config.online_probe.enabled:
    probe_fn = parallel.sharded_step(
        online_probe.make_probe_step(method, model, config, views_fn, input_key), mesh)
  if "diagnostics" in config and config.diagnostics.enabled:
    diagnostics = online_probe.DiagnosticsLogger(
        online_probe.make_embed_views(method, model, config, views_fn, input_key, mesh))
  return Run(method, source, info, model, state, step_fn, probe_fn, diagnostics)


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
    raise ConfigError(str(error)) from None
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

  run = build(config, mesh, init_from)
  state, step_fn, model = run.state, run.step_fn, run.model
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, keep=config.keep_checkpoints, async_save=config.async_checkpoints)
  state, restored_step = checkpointer.restore_latest(state)
  start_step = int(restored_step or 0)
  if restored_step is not None:
    log.warning("resuming from the checkpoint at step %d in %s", start_step, checkpointer.directory)

  batches = pipeline.host_batches(
      run.source, global_batch=config.batch_size, seed=config.seed, start_step=start_step)
  keys = (input_spec(run.source)[0], "mask", "label", "position")
  device_batches = parallel.device_prefetch(
      ({k: b[k] for k in keys if k in b} for b in batches), mesh)
  diagnostics_every = config.diagnostics.every_steps or config.log_every_steps if run.diagnostics else 0
  writer = metrics_lib.MetricWriter(workdir, start_step=start_step)
  progress = metrics_lib.Progress(config.total_steps, config.batch_size, start_step)
  train_start = time.perf_counter()
  step = start_step
  watch = preemption.PreemptionWatch().start()  # SIGTERM -> checkpoint and stop (sslax/preemption.py)
  preempted = False
  try:
    while step < config.total_steps and not preempted:
      batch = next(device_batches)
      if run.probe_fn is not None:  # before the step: the probe reads the same parameters the step does
        state, probe_metrics = run.probe_fn(state, batch)
        step_metrics_probe = probe_metrics
      state, step_metrics = step_fn(state, batch)
      step += 1
      preempted = watch.reached(step)  # the same step on every process
      if step % config.log_every_steps == 0 or step == config.total_steps:
        scalars = {k: float(v) for k, v in parallel.to_host(step_metrics).items()}
        if run.probe_fn is not None:
          scalars.update({k: float(v) for k, v in parallel.to_host(step_metrics_probe).items()})
        scalars.update(progress.update(step, scalars["loss"]))
        if not np.isfinite(scalars["loss"]):
          raise FloatingPointError(
              f"loss is {scalars['loss']} at step {step}: lower optimizer.base_lr or check the data")
        if diagnostics_every and step % diagnostics_every == 0:
          scalars.update(run.diagnostics(state, batch))
        writer.write(step, scalars)
      elif diagnostics_every and step % diagnostics_every == 0:
        writer.write(step, run.diagnostics(state, batch))
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
      run = build(config, mesh)
      state, step = checkpointer.restore_latest(run.state)
      model, info = run.model, run.info
  finally:
    checkpointer.close()
  if step is None:
    raise FileNotFoundError(f"no {what} in {checkpointer.directory}: pretrain first "
                            "(--mode=train_and_evaluate or --mode=train) with this --workdir")
  return model, state, info


def run_tool(action: Callable[[], Any], *, user_errors: tuple[type[Exception], ...] = ()) -> Any:
  """The body of a command-line tool that reads a pretraining run (python -m sslax.export,
  sslax.reconstruct, sslax.evaluate.embedding_map): INFO logging to stderr with the
  libraries' chatter at WARNING, then `action()` -> its result. An error the user can fix
  (a bad config value, a missing dataset or checkpoint, or one of `user_errors`) exits with
  its message, which says how: a traceback would bury it."""
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
  for noisy in ("absl", "orbax", "jax", "tensorflow", "tensorflow_datasets"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  try:
    return action()
  except (ConfigError, pipeline.DatasetNotFoundError, FileNotFoundError,
          *user_errors) as error:
    sys.exit(f"error: {error}")


def evaluate_latest(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Evaluates the newest checkpoint in WORKDIR without training."""
  from sslax.evaluate import frozen

  config_lib.validate(config)
  mesh = make_mesh(config)
  model, state, _ = restore_latest(config, workdir, mesh)
  return frozen.evaluate_run(config, model, state, mesh, workdir)
