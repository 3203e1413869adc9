"""Momentum target networks (BYOL, MoCo, DINO, data2vec): an exponential moving average of
(part of) the online network, the Optax transform `sslax.optim.ema_target`."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from sslax import optim
from sslax.errors import ConfigError, require


class TargetNetwork(NamedTuple):
  ema: optim.EmaTargetState  # the Optax transform's state: update count and target params
  batch_stats: Any           # the target's own BatchNorm statistics (it runs in train mode)


TARGET_PARTS = ("encoder", "projector")  # what a momentum target copies of the online network


MOMENTUM_SCHEDULES = ("cosine", "constant")


def check_momentum(config: ml_collections.ConfigDict) -> None:
  """The validate-time check of config.method.momentum_schedule (see `target_transform`)."""
  require(config.method.momentum_schedule in MOMENTUM_SCHEDULES, "method.momentum_schedule",
          f"{config.method.momentum_schedule!r} is not one of {list(MOMENTUM_SCHEDULES)}")


def target_transform(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The target update with config.method.base_momentum, either cosine-increased to
  config.method.final_momentum (1 if absent) over
  config.total_steps (BYOL section 3.2; MoCo v3, DINO) or constant (MoCo v2's m = 0.999),
  as config.method.momentum_schedule says."""
  cfg = config.method
  if cfg.momentum_schedule == "constant":
    return optim.ema_target(optax.constant_schedule(cfg.base_momentum))
  if cfg.momentum_schedule == "cosine":
    return optim.ema_target(optim.target_momentum_schedule(cfg.base_momentum, config.total_steps,
                                                           cfg.get("final_momentum", 1.0)))
  raise ConfigError(f"config.method.momentum_schedule: {cfg.momentum_schedule!r} is "
                               f"not one of {list(MOMENTUM_SCHEDULES)}")


def init_target(config: ml_collections.ConfigDict, params: Any, batch_stats: Any) -> TargetNetwork:
  """The target starts as a copy of (the part `params` of) the online network."""
  return TargetNetwork(ema=target_transform(config).init(params),
                       batch_stats=jax.tree.map(jnp.copy, batch_stats))


def update_target(config: ml_collections.ConfigDict, target: TargetNetwork, params: Any,
                  batch_stats: Any) -> TargetNetwork:
  """One step of the target recursion towards the new online `params`; the target's
  BatchNorm statistics are the ones its own forward pass just computed."""
  _, ema = target_transform(config).update(None, target.ema, params)
  return TargetNetwork(ema=ema, batch_stats=batch_stats)


def target_variables(target: TargetNetwork) -> dict:
  return {"params": target.ema.target, "batch_stats": target.batch_stats}


def subtree(tree: dict, keys) -> dict:
  """The top-level entries `keys` of a params / batch_stats dict (those that exist)."""
  return {k: tree[k] for k in keys if k in tree}
