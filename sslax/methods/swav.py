"""SwAV (Caron et al. 2020): swapped prediction of online cluster assignments.

Every crop is embedded (backbone, projector MLP, l2-normalization) and scored against
K learnable unit-norm prototypes. The soft codes q of the two global crops come from
the scores by Sinkhorn-Knopp equipartition over the global batch (eq. 3,
`losses.sinkhorn_knopp`, no gradient); each global crop's codes are predicted from
every *other* crop, local ones included, by softmax(scores / temperature):

  L = 1/2 sum_{i in globals} 1/(V-1) sum_{v != i} mean_b -sum_k q_i[b, k] log p_v[b, k].

As the official code (facebookresearch/swav, main_swav.py and src/resnet50.py):
* Projector Linear(D, 2048)-BN-ReLU-Linear(2048, 128), l2-normalize, prototypes
  Linear(128, K, bias=False); crops of one resolution share a backbone call (so
  BatchNorm statistics are per resolution group), the head runs on all crops at once.
* Codes: Sinkhorn with epsilon 0.05 and 3 iterations over the global batch; the loss
  averages as in main_swav.py (over the other V-1 crops, then over the 2 global crops).
* Prototypes frozen for `freeze_prototypes_steps` iterations (official
  `--freeze_prototypes_niters`, gradients set to None): here their gradient is stopped
  and `update_state` puts the pre-step values back, so weight decay does not move them
  either (the optimizer's momentum still sees those zero-gradient steps; PyTorch skips
  them).

Unit-norm prototypes. The official code normalizes the prototype weights in place at
the start of every iteration, so each forward and each gradient sees (and is taken
with respect to) unit-norm prototypes. Here the prototypes are *initialized* with
unit-norm columns (PyTorch's default Linear init, then normalized, which is what the
official step 0 turns its init into) and `update_state` renormalizes them after every
optimizer step: the parameters always hold unit-norm prototypes, every forward uses
them as they are (no normalization inside the forward, which would change the
gradient), and the gradient is the official one at every step, the first included.

Queue (`queue_length` > 0). The official code keeps, per GPU, the l2-normalized
embeddings of its last queue_length / world_size global crops, and uses them only to
compute the codes: Sinkhorn runs over the batch plus the queue, once the queue is full
(`epoch_queue_starts` epochs in, here `queue_start_step`). Here the state is
replicated: one global queue [2, queue_length, dim], newest first, filled with the
gathered embeddings in global order (`parallel.all_gather_replicated`); device d
scores rows d*L/n:(d+1)*L/n of it, so Sinkhorn over all devices sees the batch plus
the whole queue exactly once: the codes do not depend on the number of devices. The
queue is filled from step `queue_start_step` on and used from the step at which it is
full (queue_start_step + queue_length / batch_size), like the official test for a
nonzero last row. queue_length must be a multiple of the global batch (the official
code rounds it down to one).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.networks import multicrop_apply, projector_mlp
from sslax.models import build_encoder


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      projector_hidden=(2048,),      # hidden_mlp 2048
      projector_dim=128,             # --feat_dim 128
      num_prototypes=3000,           # --nmb_prototypes 3000
      temperature=0.1,               # --temperature 0.1
      epsilon=0.05,                  # --epsilon 0.05
      sinkhorn_iterations=3,         # --sinkhorn_iterations 3
      freeze_prototypes_steps=313,   # --freeze_prototypes_niters 313
      queue_length=0,                # --queue_length 0 (3840 in the batch-256 recipes)
      queue_start_step=0,            # --epoch_queue_starts (15 epochs), here in steps
  ))


def unit_norm_columns_init(key, shape, dtype=jnp.float32):
  """PyTorch's default Linear init U(+-1/sqrt(fan_in)), each prototype (column) then
  scaled to unit norm."""
  w = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")(key, shape, dtype)
  return w / jnp.linalg.norm(w, axis=0, keepdims=True)


class SwAVNetworks(nn.Module):
  encoder: nn.Module
  projector: nn.Module
  num_prototypes: int
  embed_dim: int

  def setup(self):
    # [dim, K]: column k is prototype k.
    self.prototypes = self.param("prototypes", unit_norm_columns_init,
                                 (self.embed_dim, self.num_prototypes))

  def _head(self, features, train, freeze_prototypes):
    z = losses.l2_normalize(self.projector(features, train=train))
    w = jnp.where(freeze_prototypes, jax.lax.stop_gradient(self.prototypes), self.prototypes)
    return z, z @ w

  def __call__(self, x: jax.Array, train: bool = True):
    """x: [B, H, W, C] -> (normalized embeddings [B, dim], prototype scores [B, K])."""
    return self._head(self.encoder(x, train=train), train, False)

  def multicrop(self, groups: Sequence[jax.Array], train: bool = True, freeze_prototypes=False):
    """Crops grouped by resolution, one backbone call per group, the head on all."""
    features = jnp.concatenate([self.encoder(x, train=train) for x in groups])
    return self._head(features, train, freeze_prototypes)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  cfg = config.method
  return SwAVNetworks(encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
                      projector=projector_mlp(cfg), num_prototypes=cfg.num_prototypes,
                      embed_dim=cfg.projector_dim)


def validate(config: ml_collections.ConfigDict) -> None:
  cfg = config.method
  if cfg.queue_length < 0 or cfg.queue_start_step < 0:
    raise ConfigError(
        f"config.method.queue_length / queue_start_step: must be >= 0, got "
        f"{cfg.queue_length} / {cfg.queue_start_step}")
  if cfg.queue_length and cfg.queue_length % config.batch_size:
    lower = cfg.queue_length // config.batch_size * config.batch_size
    raise ConfigError(
        f"config.method.queue_length: {cfg.queue_length} is not a multiple of the global "
        f"batch_size {config.batch_size}; use e.g. {max(lower, config.batch_size)} "
        f"(the official code rounds it down the same way), or 0 for no queue")


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  cfg = config.method
  if cfg.queue_length == 0:
    return {}
  return {"queue": jnp.zeros((2, cfg.queue_length, cfg.projector_dim), jnp.float32)}


def queue_in_use(cfg: ml_collections.ConfigDict, step: jax.Array, global_batch: int) -> jax.Array:
  """True from the step at which the queue (filled from queue_start_step on) is full."""
  return step >= cfg.queue_start_step + cfg.queue_length // global_batch


def codes(cfg: ml_collections.ConfigDict, scores: jax.Array, queue: jax.Array | None,
          prototypes: jax.Array, step: jax.Array, axis_name: str | None) -> jax.Array:
  """Sinkhorn codes [local_batch, K] of one global crop's scores, over the global batch
  plus, once it is full, the whole queue (this device's slice of it)."""
  sinkhorn = lambda s: losses.sinkhorn_knopp(s, cfg.epsilon, cfg.sinkhorn_iterations, axis_name)
  batch_only = sinkhorn(scores)
  if queue is None:
    return batch_only
  devices = jax.lax.axis_size(axis_name) if axis_name else 1
  rows = queue.shape[0] // devices
  mine = jax.lax.dynamic_slice_in_dim(queue, parallel.global_offset(rows, axis_name), rows)
  queue_scores = mine @ jax.lax.stop_gradient(prototypes)
  with_queue = sinkhorn(jnp.concatenate([queue_scores, scores]))[rows:]
  # Both are computed and one is selected (Sinkhorn is cheap next to the network): the
  # shapes differ, and a select keeps the collectives out of a lax.cond.
  use = queue_in_use(cfg, step, scores.shape[0] * devices)
  return jnp.where(use, with_queue, batch_only)


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  frozen = inputs.step < cfg.freeze_prototypes_steps
  (z, scores), batch_stats = multicrop_apply(model, variables, inputs.views,
                                             freeze_prototypes=frozen)  # [V, B, d], [V, B, K]
  prototypes = variables["params"]["prototypes"]
  queue = inputs.state.get("queue") if cfg.queue_length > 0 else None
  q = [codes(cfg, scores[i], None if queue is None else queue[i], prototypes, inputs.step, axis_name)
       for i in range(2)]
  value = losses.swapped_prediction(q, scores, cfg.temperature, axis_name)

  outputs = {"prototypes": prototypes}
  metrics = {}
  if queue is not None:
    embeddings = jax.lax.stop_gradient(z[:2])
    outputs["embeddings"] = jnp.stack(
        [parallel.all_gather_replicated(e, axis_name) for e in embeddings])  # [2, B_global, d]
    metrics["queue_in_use"] = queue_in_use(
        cfg, inputs.step, outputs["embeddings"].shape[1]).astype(jnp.float32)
  return value, LossAux(batch_stats, metrics, outputs)


def update_state(config: ml_collections.ConfigDict, params, state, outputs, step):
  cfg = config.method
  w = params["prototypes"]
  if cfg.freeze_prototypes_steps > 0:
    w = jnp.where(step < cfg.freeze_prototypes_steps, outputs["prototypes"], w)
  params = {**params, "prototypes": w / jnp.linalg.norm(w, axis=0, keepdims=True)}
  if cfg.queue_length > 0:
    new = outputs["embeddings"]  # [2, B_global, d], global order
    queue = state["queue"]
    shifted = jnp.concatenate([new, queue[:, :queue.shape[1] - new.shape[1]]], axis=1)
    state = {"queue": jnp.where(step >= cfg.queue_start_step, shifted, queue)}
  return params, state


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=None, validate=validate,
                init_state=init_state, update_state=update_state)
