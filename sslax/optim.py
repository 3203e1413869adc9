"""Optimizers, learning-rate schedules and parameter masks, all Optax.

The learning rate is scaled by the global batch (base_lr * global_batch / 256, Goyal
et al. 2017, as SimCLR/BYOL/MoCo do), warmed up linearly, then decayed with a
cosine. Weight decay and the LARS trust ratio skip biases and normalization
parameters (SimCLR appendix B.1; BYOL section 3.3): `optax.lars` would otherwise
decay and trust-scale every leaf.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("sgd", "adamw", "lars")
LR_SCALINGS = ("linear", "sqrt", "none")

# Flax names the parameters of Dense/Conv biases and of BatchNorm/LayerNorm/GroupNorm
# "bias" and "scale"; these are the leaves the papers leave undecayed.
_NO_DECAY_NAMES = ("bias", "scale")


def decay_mask(params: Any) -> Any:
  """True for weights that take weight decay (and the LARS trust ratio), False for
  biases and normalization parameters."""
  def is_weight(path, leaf):
    name = getattr(path[-1], "key", str(path[-1]))
    return name not in _NO_DECAY_NAMES and leaf.ndim > 1
  return jax.tree_util.tree_map_with_path(is_weight, params)


def scaled_learning_rate(cfg: ml_collections.ConfigDict, global_batch: int) -> float:
  if cfg.lr_scaling == "linear":
    return cfg.base_lr * global_batch / 256
  if cfg.lr_scaling == "sqrt":  # SimCLR appendix B.1 for small batches with LARS
    return cfg.base_lr * (global_batch ** 0.5)
  return cfg.base_lr


def learning_rate_schedule(cfg: ml_collections.ConfigDict, global_batch: int,
                           total_steps: int) -> optax.Schedule:
  """Linear warmup from 0 over cfg.warmup_steps, then cosine decay to 0 at total_steps."""
  peak = scaled_learning_rate(cfg, global_batch)
  warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=0.0)


def clip_by_tensor_norm(max_norm: float) -> optax.GradientTransformation:
  """Each gradient tensor g scaled by min(1, max_norm / (||g|| + 1e-6)), every tensor on
  its own: the official DINO's utils.clip_gradients (`--clip_grad 3.0`), unlike
  optax.clip_by_global_norm, which scales all tensors by one factor."""
  def clip(g):
    return g * jnp.minimum(1.0, max_norm / (jnp.linalg.norm(g.ravel()) + 1e-6)).astype(g.dtype)

  def update(updates, state, params=None):
    del params
    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(cfg: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  """cfg.name in OPTIMIZERS; weight decay masked by `decay_mask`; with
  cfg.clip_grad_per_tensor > 0 the gradients are first clipped per tensor
  (`clip_by_tensor_norm`), before weight decay is added, as in PyTorch."""
  tx = _optimizer(cfg, schedule)
  clip = cfg.get("clip_grad_per_tensor", 0.0)
  return optax.chain(clip_by_tensor_norm(clip), tx) if clip > 0 else tx


def _optimizer(cfg: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  if cfg.name == "lars":
    return optax.lars(
        schedule, weight_decay=cfg.weight_decay, weight_decay_mask=decay_mask,
        trust_coefficient=cfg.trust_coefficient, trust_ratio_mask=decay_mask,
        momentum=cfg.momentum)
  if cfg.name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask),
        optax.sgd(schedule, momentum=cfg.momentum, nesterov=cfg.nesterov))
  if cfg.name == "adamw":
    return optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay, mask=decay_mask)
  raise ValueError(f"optimizer.name={cfg.name!r} is not one of {OPTIMIZERS}")


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name="lars", base_lr=0.3, lr_scaling="linear", warmup_steps=10, weight_decay=1e-6,
      momentum=0.9, nesterov=False, trust_coefficient=0.001, b1=0.9, b2=0.999,
      clip_grad_per_tensor=0.0))  # > 0: each gradient tensor's norm clipped to it (DINO)


# ----------------------------------------------------------------------------
# Target networks (BYOL, MoCo, DINO): an exponential moving average of parameters.
# ----------------------------------------------------------------------------

def target_momentum_schedule(base_tau: float, total_steps: int,
                             final_tau: float = 1.0) -> optax.Schedule:
  """BYOL's target decay rate (Grill et al. 2020, section 3.2):
  tau_k = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2, from tau_base at k = 0 to 1 at
  k = K = total_steps, and 1 afterwards (the official code clips k to K). With final_tau
  < 1 it ends there instead (solo-learn's MoCo v2+ goes from 0.99 to 0.999)."""
  def schedule(count):
    k = jnp.minimum(jnp.asarray(count, jnp.float32), total_steps)
    return final_tau - (final_tau - base_tau) * (jnp.cos(jnp.pi * k / total_steps) + 1.0) / 2.0
  return schedule


def update_target(target: Any, params: Any, step: jax.typing.ArrayLike,
                  tau_schedule: optax.Schedule) -> Any:
  """target <- tau_k * target + (1 - tau_k) * params, with tau_k = tau_schedule(step)."""
  tau = tau_schedule(step)
  return optax.incremental_update(new_tensors=params, old_tensors=target, step_size=1.0 - tau)


class EmaTargetState(NamedTuple):
  count: jax.Array  # int32 scalar: how many times the target has been updated
  target: Any  # the target network's parameters, same tree as the online ones


def ema_target(tau_schedule: optax.Schedule) -> optax.GradientTransformation:
  """The target network as an Optax-style transform: the state is the target.

  `init(params)` copies the online parameters; `update(updates, state, params)`
  returns `updates` unchanged and moves the target towards `params`:
  target <- tau_k * target + (1 - tau_k) * params with k = state.count (so the
  first update uses tau_0 = tau_base).

  Which params: BYOL (official byol_experiment.py) averages in the *new* online
  parameters, after the optimizer step. Inside `optax.chain(optimizer, ema_target)`
  the `params` argument would be the parameters *before* the step (chain hands every
  transform the same params, and the updates are not params), so the target would
  lag one step. Use it outside the chain instead, after applying the updates:

      updates, opt_state = optimizer.update(grads, opt_state, params)
      params = optax.apply_updates(params, updates)
      _, target_state = target_tx.update(updates, target_state, params)

  `update_target` is the same rule as a pure function of (target, params, step).

  Why not `optax.ema`: it is an EMA of the *updates* (gradients), started from
  zeros and debiased by 1 - decay^k, and it replaces the updates with that
  average. A target network is an EMA of the *parameters*, started from the
  online parameters, not debiased, and it must not change the updates.
  """
  def init(params):
    # A real copy: the target must not share buffers with the online params, or
    # donating a train state holding both would donate one buffer twice.
    return EmaTargetState(count=jnp.zeros([], jnp.int32),
                          target=jax.tree.map(jnp.copy, params))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("ema_target.update needs the online params to average in")
    target = update_target(state.target, params, state.count, tau_schedule)
    return updates, EmaTargetState(count=optax.safe_increment(state.count), target=target)

  return optax.GradientTransformation(init, update)
