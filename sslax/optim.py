"""Optimizers, learning-rate schedules and parameter masks, all Optax.

The learning rate is scaled by the global batch (base_lr * global_batch / 256, Goyal
et al. 2017, as SimCLR/BYOL/MoCo do), warmed up linearly, then decayed with a
cosine. Weight decay and the LARS trust ratio skip biases and normalization
parameters (SimCLR appendix B.1; BYOL section 3.3): `optax.lars` would otherwise
decay and trust-scale every leaf.
"""

from __future__ import annotations

from typing import Any

import jax
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


def make_optimizer(cfg: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  """cfg.name in OPTIMIZERS; weight decay masked by `decay_mask`."""
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
      momentum=0.9, nesterov=False, trust_coefficient=0.001, b1=0.9, b2=0.999))
