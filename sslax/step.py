"""The training state and the per-device step, for any method and any data source.

One step, per device (run on every device by sslax/parallel.py):
  uint8 images --augment(key(seed, view, global position))--> views
  views --method.loss(axis_name="data")--> global-batch loss and gradients
  gradients --optax--> new parameters --method.update_state--> target network, queue, ...
With the online probe on, the same program also steps a linear classifier on the
stop-gradient features of the first view (sslax/online_probe.py), as BYOL's official code does.
Frames and tokens skip augmentation: sequence methods mask or corrupt them themselves.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sslax import accumulate, online_probe, parallel
from sslax.data import augment, pipeline
from sslax.errors import ConfigError
from sslax.methods.base import Method, StepInputs

# Independent streams derived from config.seed: fold_in(seed_key, STREAM) then the
# view index and the example's global stream position.
INIT_STREAM, AUGMENT_STREAM, METHOD_STREAM = 0, 1, 2

# metrics["nonfinite"] has bit i set when NONFINITE_PARTS[i] holds a NaN or an infinity after
# the step: checked on the device every step (a few reductions) and fetched with the metrics,
# so no non-finite state is ever checkpointed (sslax/train.py).
NONFINITE_PARTS = ("loss", "gradient norm", "parameters or optimizer state", "method state",
                   "online probe")


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  method_state: Any  # the method's own state (target network, queue, center); {} if none
  probe: Any = None  # the online linear probe's params and Adam state (sslax/online_probe.py); {} if off


def example_inputs(config: ml_collections.ConfigDict, data: int | pipeline.Source,
                   batch: int = 2) -> tuple:
  """Zero inputs the network is initialized (or shape-inferred) with: (images,) for an image
  source or a channel count, (x, mask) for a sequence or text source."""
  if isinstance(data, int) or data.input_key == "image":
    channels = data if isinstance(data, int) else data.input_shape[-1]
    size = config.data.image_size
    return (jnp.zeros((batch, size, size, channels)),)
  return jnp.zeros((batch, *data.input_shape), data.dtype), jnp.ones((batch, data.input_shape[0]), bool)


def init_variables(model: nn.Module, config: ml_collections.ConfigDict,
                   data: int | pipeline.Source) -> dict:
  """Same parameters on any device count: initialized on the host from the seed. `data`:
  the training source, or an image channel count."""
  key = jax.random.fold_in(jax.random.key(config.seed), INIT_STREAM)
  inputs = example_inputs(config, data)
  # train=False: BatchNorm must not reach for the mesh axis outside the sharded step.
  variables = jax.jit(lambda k: model.init(k, *inputs, train=False))(key)
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


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
  if config.online_probe.enabled:
    evaluated = method.evaluated_variables(config, variables["params"], variables["batch_stats"],
                                           method_state)
    probe = online_probe.init_probe(config, model, evaluated, example_inputs(config, data),
                                    config.data.num_classes or getattr(data, "num_classes", 0))
  state = TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                     batch_stats=variables["batch_stats"], opt_state=tx.init(variables["params"]),
                     method_state=method_state, probe=probe)
  return jax.device_get(state)


def make_views_fn(config: ml_collections.ConfigDict, source: pipeline.Source) -> Callable:
  """(inputs [b, ...], positions int [b]) -> the list of views the method reads: for images,
  each of config.views augmented and normalized with the source's statistics; frames and
  tokens pass unchanged as the one view.

  A full-resolution source (ImageNet-like, `pipeline.FullResolutionSource`) is told here to
  take each view's random resized crop on the host, from the whole image, seeded by
  (config.seed, view, position); its batches then carry the views packed, and the device
  unpacks them and skips its own crop."""
  if source.input_key != "image":
    return lambda x, positions: [x]
  base = jax.random.fold_in(jax.random.key(config.seed), AUGMENT_STREAM)
  view_configs = list(config.views.values())
  sizes = [augment.view_size(view_cfg, config.data.image_size) for view_cfg in view_configs]
  cropped = source.full_resolution
  if cropped:
    source.crop_views_on_host(
        [pipeline.HostView(size, tuple(v.crop_scale), tuple(v.crop_ratio),
                           v.get("interpolation", "bilinear"))
         for size, v in zip(sizes, view_configs)], config.seed)

  def views_fn(images, positions):
    inputs = (pipeline.unpack_views(images, sizes, source.input_shape[-1]) if cropped
              else [images] * len(view_configs))
    views = []
    for index, (view_cfg, size, x) in enumerate(zip(view_configs, sizes, inputs)):
      x = augment.augment_batch(jax.random.fold_in(base, index), x, positions, view_cfg, size,
                                cropped)
      views.append(augment.normalize(x, source.pixel_mean, source.pixel_std))
    return views
  return views_fn


def make_train_step(method: Method, model: nn.Module, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, config: ml_collections.ConfigDict,
                    source: pipeline.Source, views_fn: Callable | None = None) -> Callable:
  """The per-device step fn(state, batch) -> (state, metrics), for parallel.sharded_step.
  batch: {source.input_key: [b, ...], "label", "position"} and, for sequences and text,
  "mask" [b, T]. `views_fn` (default: `make_views_fn`) may be replaced, e.g. by a benchmark."""
  axis = parallel.DATA_AXIS
  method_key = jax.random.fold_in(jax.random.key(config.seed), METHOD_STREAM)
  views_fn = views_fn or make_views_fn(config, source)
  probe_step = online_probe.make_probe_update(method, model, config) if config.online_probe.enabled else None

  def per_device_step(state: TrainState, batch: dict):
    views = views_fn(batch[source.input_key], batch["position"])
    inputs = StepInputs(views=views, labels=batch["label"], mask=batch.get("mask"),
                        step=state.step, state=state.method_state,
                        keys=jax.vmap(lambda p: jax.random.fold_in(method_key, p))(batch["position"]),
                        pixel_mean=tuple(source.pixel_mean), pixel_std=tuple(source.pixel_std))
    probe, probe_metrics = state.probe, {}
    if probe_step is not None:  # reads the parameters before this step's update, on view 0
      probe, probe_metrics = probe_step(state, views, batch, axis)

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
    grad_norm = optax.tree.norm(grads)
    metrics = {"loss": loss, "learning_rate": schedule(state.step),
               "grad_norm": grad_norm, **loss_metrics, **probe_metrics}
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=aux.batch_stats,
                              opt_state=opt_state, method_state=method_state, probe=probe)
    metrics["nonfinite"] = nonfinite_code(
        (loss, loss_metrics), grad_norm, (params, aux.batch_stats, opt_state), method_state,
        (probe, probe_metrics))
    return new_state, metrics

  return per_device_step


def all_finite(tree: Any) -> jax.Array:
  """True when no floating-point leaf of `tree` holds a NaN or an infinity."""
  checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


def nonfinite_code(*parts: Any) -> jax.Array:
  """int32 with bit i set when parts[i] (one per NONFINITE_PARTS) is not all finite."""
  bits = [jnp.where(all_finite(part), 0, 1 << i) for i, part in enumerate(parts)]
  return sum(bits[1:], bits[0]).astype(jnp.int32)


def nonfinite_parts(code: int) -> list[str]:
  """The names of the parts whose bits are set in a `nonfinite_code`."""
  return [name for i, name in enumerate(NONFINITE_PARTS) if int(code) >> i & 1]
