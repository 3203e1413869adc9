"""What the trainer watches while it pretrains, besides the loss: an online linear probe
and representation diagnostics. Neither changes the method's parameters.

* The online linear probe (config.online_probe): a linear classifier on stop-gradient
  features of the first training view, trained alongside pretraining with its own Adam,
  as BYOL's and solo-learn's online classifier, inside the training step's program
  (sslax/step.py) on the views the step already made. Its accuracy is measured on each training
  batch *before* the probe steps on it. It reads augmented training views and a
  moving encoder, so it is a progress signal, logged as `online_probe/accuracy` and
  reported apart from the offline protocols (sslax/evaluate/frozen.py), never mixed
  with them.
* Diagnostics (config.diagnostics), every `every_steps` steps (0: at each log step): the
  embeddings of the current global batch's first two views go to the host, where
  sslax/evaluate/diagnostics.py computes RankMe, alignment, uniformity and the std of the
  normalized embeddings, logged as `diagnostics/*`, with a warning when they collapse.

The features are the evaluated ones: `method.evaluated_variables` through `model.encode`
(DINO's teacher), in inference mode (BatchNorm running averages).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sslax import parallel

log = logging.getLogger(__name__)


def default_config() -> tuple[ml_collections.ConfigDict, ml_collections.ConfigDict]:
  """-> (config.online_probe, config.diagnostics) defaults: both off; the CPU and paper
  configs switch them on (each costs an extra forward pass)."""
  probe = ml_collections.ConfigDict(dict(enabled=False, learning_rate=1e-3))
  diagnostics = ml_collections.ConfigDict(dict(enabled=False, every_steps=0))
  return probe, diagnostics


def _encoder_args(views: list, batch: dict, index: int) -> tuple:
  mask = batch.get("mask")
  return (views[index],) if mask is None else (views[index], mask)


def features(method, model, config, state, views, batch, index: int) -> jax.Array:
  """Stop-gradient evaluated features of view `index`: what the probe and diagnostics read."""
  variables = method.evaluated_variables(config, state.params, state.batch_stats, state.method_state)
  out = model.apply(variables, *_encoder_args(views, batch, index), train=False, method="encode")
  return jax.lax.stop_gradient(out.astype(jnp.float32))


def init_probe(config: ml_collections.ConfigDict, model, variables: dict, example_inputs: tuple,
               num_classes: int) -> dict:
  """{"params": {"w": [D, K] zeros, "b": [K] zeros}, "opt_state"}; {} when disabled."""
  if not config.online_probe.enabled:
    return {}
  shape = jax.eval_shape(
      lambda v: model.apply(v, *example_inputs, train=False, method="encode"), variables).shape
  params = {"w": jnp.zeros((shape[-1], num_classes)), "b": jnp.zeros((num_classes,))}
  return {"params": params, "opt_state": optax.adam(config.online_probe.learning_rate).init(params)}


def make_probe_update(method, model, config: ml_collections.ConfigDict) -> Callable:
  """-> fn(state, views, batch, axis_name) -> (new probe, metrics), called inside the training
  step on the views it made. Cross-entropy and accuracy are global-batch means."""
  tx = optax.adam(config.online_probe.learning_rate)

  def update(state, views, batch, axis_name):
    x = features(method, model, config, state, views, batch, 0)
    labels = batch["label"]

    def loss_fn(params):
      logits = x @ params["w"] + params["b"]
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      return parallel.global_mean(ce, axis_name), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.probe["params"])
    accuracy = parallel.global_mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32), axis_name)
    updates, opt_state = tx.update(grads, state.probe["opt_state"], state.probe["params"])
    probe = {"params": optax.apply_updates(state.probe["params"], updates), "opt_state": opt_state}
    return probe, {"online_probe/loss": loss, "online_probe/accuracy": accuracy}

  return update


def make_embed_views(method, model, config: ml_collections.ConfigDict, views_fn: Callable,
                     input_key: str, mesh) -> Callable:
  """-> fn(state, device batch) -> [embeddings of view 0, of view 1 if it has view 0's
  shape] as numpy [global batch, D], on every host."""
  def per_device(state, batch):
    views = views_fn(batch[input_key], batch["position"])
    pair = len(views) > 1 and views[1].shape == views[0].shape
    return tuple(features(method, model, config, state, views, batch, i)
                 for i in range(2 if pair else 1))

  mapped = parallel.sharded_apply(per_device, mesh)

  def embed(state, batch) -> list[np.ndarray]:
    return [parallel.gather_to_host(z) for z in mapped(state, batch)]
  return embed


class DiagnosticsLogger:
  """Diagnostics of the current batch's embeddings, as scalars for the metrics log; warns
  once per run when the embeddings look collapsed."""

  def __init__(self, embed: Callable):
    self.embed = embed
    self.warned = False

  def __call__(self, state: Any, batch: dict) -> dict:
    from sslax.evaluate import diagnostics  # sklearn-free, but evaluation code: import late

    z = self.embed(state, batch)
    summary = diagnostics.summary(z[0], z[1] if len(z) > 1 else None)
    warning = diagnostics.collapse_warning(summary)
    if warning and not self.warned:
      log.warning("step %d: %s", int(parallel.to_host(state.step)), warning)
      self.warned = True
    return {f"diagnostics/{k}": float(v) for k, v in summary.items()
            if isinstance(v, (int, float, np.floating, np.integer, bool))}
