"""MoCo v2 (Chen, Fan, Girshick, He 2020; MoCo: He et al. 2020): a query encoder, a
momentum key encoder, and InfoNCE of each query against its own key and a queue of
keys from earlier batches:

  q = normalize(g(f(view1))), k = normalize(g'(f'(view2))) (momentum encoder, no gradient)
  L = mean_b -log( exp(q.k/T) / (exp(q.k/T) + sum_{n in queue} exp(q.n/T)) )
  f', g' <- m f', g' + (1 - m) f, g after every step;  queue <- [keys of the global batch, queue]

As the official code (facebookresearch/moco, moco/builder.py): the head is a 2-layer MLP
without BatchNorm (Dense(2048)-ReLU-Dense(128)), m = 0.999 constant, T = 0.2, a queue of
65536 normalized keys initialized at random, the loss computed in one direction only
(queries from view 1, keys from view 2).

`symmetric=True` is solo-learn's MoCo v2+ (solo/methods/mocov2plus.py): both views are
queries, L = (ctr(q1, k2, queue_2) + ctr(q2, k1, queue_1)) / 2, with one queue per view,
each fed with that view's keys.

The keys of all devices are gathered and enqueued every step in global-batch order, so
every device holds the same queue, which is method state saved in every checkpoint.
Departure: the official code shuffles the batch across GPUs for the key encoder ("shuffle
BN") because its BatchNorm is per GPU; here BatchNorm statistics are taken over the global
batch on every device, the other remedy SimCLR (appendix and section 2) names for the
same information leak, and the one that keeps 8 devices equal to 1.

`queue_size=0` is this library's "queue 0": the memory holds only the current batch, so the
negatives of a query are the keys (momentum encoder) of the other images of the global batch,
gathered from all devices, and its positive is its own image's key
(`losses.batch_keys_infonce`, MoCo v3's loss without its 2 T factor). There is no queue state.
With K = 0 the official code would have no negatives at all: its logits would hold the
positive alone, a constant loss of 0 and no gradient. This is not the paper's "end-to-end"
mechanism either (He et al. 2020, figure 3: there the keys come from the query encoder, with
gradient); the keys here still come from the momentum encoder, without gradient.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common import networks, target
from sslax.models import build_encoder
from sslax.models.heads import MLP

# The queue's initial random keys come from their own stream of config.seed.
_QUEUE_STREAM = 7


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      temperature=0.2,           # MoCo v2 (Chen et al. 2020, table 1)
      queue_size=65536,          # K (He et al. 2020, section 4.1); 0: the current global batch's keys only
      projector_hidden=(2048,),  # MoCo v2's MLP head, no BN
      projector_dim=128,
      base_momentum=0.999,       # m (He et al. 2020, section 4.1)
      final_momentum=1.0,        # where the cosine schedule ends (unused when "constant")
      momentum_schedule="constant",
      symmetric=False,           # official: one direction; solo-learn's MoCo v2+: True
  ))


def build(config: ml_collections.ConfigDict) -> nn.Module:
  cfg = config.method
  return networks.EncoderWithHead(
      encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
      projector=MLP(hidden_dims=tuple(cfg.projector_hidden), out_dim=cfg.projector_dim, use_bn=False))


def validate(config: ml_collections.ConfigDict) -> None:
  cfg = config.method
  if cfg.queue_size < 0 or cfg.queue_size % config.batch_size:
    raise ConfigError(
        f"config.method.queue_size: {cfg.queue_size} must be 0 (negatives: the current batch's "
        f"keys only) or a positive multiple of config.batch_size = {config.batch_size} (the queue "
        f"takes whole global batches of keys, as the official code asserts); e.g. "
        f"{max(1, cfg.queue_size // config.batch_size) * config.batch_size}")
  target.check_momentum(config)


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  cfg = config.method
  target_network = target.init_target(config, variables["params"], variables["batch_stats"])
  if cfg.queue_size == 0:
    return {"target": target_network}
  key = jax.random.fold_in(jax.random.key(config.seed), _QUEUE_STREAM)
  shape = ((2,) if cfg.symmetric else ()) + (cfg.queue_size, cfg.projector_dim)
  queue = losses.l2_normalize(jax.random.normal(key, shape))
  return {"target": target_network, "queue": queue, "queue_index": jnp.zeros((), jnp.int32)}


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  view1, view2 = inputs.views
  target_variables = target.target_variables(inputs.state["target"])
  queue = inputs.state.get("queue")  # None with queue_size=0

  def contrast(q, k, view):  # view: which queue holds the negatives (symmetric: one per view)
    if queue is None:
      return losses.batch_keys_infonce(q, k, cfg.temperature, axis_name=axis_name)
    return losses.moco_infonce(q, k, queue if view is None else queue[view], cfg.temperature,
                               axis_name=axis_name)

  if cfg.symmetric:  # each view through each network on its own, as solo-learn
    (q1, q2), batch_stats = networks.apply_to_views(model, variables, [view1, view2], per_view=True)
    (k1, k2), target_batch_stats = networks.apply_to_views(model, target_variables, [view1, view2],
                                                           per_view=True)
    value = (contrast(q1, k2, 1) + contrast(q2, k1, 0)) / 2
    keys = jnp.stack([_gathered_keys(k1, axis_name), _gathered_keys(k2, axis_name)])  # queue i: view i
  else:
    (q,), batch_stats = networks.apply_to_views(model, variables, [view1])
    (k,), target_batch_stats = networks.apply_to_views(model, target_variables, [view2])
    value = contrast(q, k, None)
    keys = _gathered_keys(k, axis_name)
  outputs = {"target_batch_stats": target_batch_stats}
  if queue is not None:
    outputs["keys"] = keys
  return value, LossAux(batch_stats, {}, outputs=outputs)


def _gathered_keys(k: jax.Array, axis_name: str | None) -> jax.Array:
  """[local_batch, dim] keys -> [global_batch, dim] normalized, the same on every device."""
  return parallel.all_gather_replicated(jax.lax.stop_gradient(losses.l2_normalize(k)), axis_name)


def update_state(config: ml_collections.ConfigDict, params, state: dict, outputs: dict, step):
  new_target = target.update_target(config, state["target"], params, outputs["target_batch_stats"])
  if "queue" not in state:  # queue_size=0
    return params, {"target": new_target}
  keys = outputs["keys"]  # [(2,) global_batch, dim], global order
  axis = keys.ndim - 2
  queue = jax.lax.dynamic_update_slice_in_dim(state["queue"], keys, state["queue_index"], axis=axis)
  index = (state["queue_index"] + keys.shape[axis]) % state["queue"].shape[axis]
  return params, {"target": new_target, "queue": queue, "queue_index": index}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=2, validate=validate,
                init_state=init_state, update_state=update_state,
                heads=networks.PROJECTOR)
