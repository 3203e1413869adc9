"""Optimizers, learning-rate schedules and parameter masks, all Optax.

The learning rate is scaled by the global batch (base_lr * global_batch / 256, Goyal
et al. 2017, as SimCLR/BYOL/MoCo do), warmed up linearly, then decayed with a
cosine. Weight decay and the LARS trust ratio skip biases and normalization
parameters (SimCLR appendix B.1; BYOL section 3.3): `optax.lars` would otherwise
decay and trust-scale every leaf. Fine-tuning may lower the learning rate of the
layers near the input (`scale_by_layer_decay`, BEiT / MAE).

LARS comes in the three forms the sources step: optax.lars (official SimCLR and BYOL),
`lars` (solo-learn and apex LARC, optionally clipped) and `pytorch_lars` (official Barlow
Twins, VICReg, MoCo v3); optimizer.lars_variant picks one.
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("sgd", "adamw", "lars")
# optimizer.lars_variant: "optax" is optax.lars, the official SimCLR / BYOL LARS (momentum
# after the learning rate, ratio ||p|| / ||g + wd p||); "solo_learn" is `lars` below, with
# optimizer.clip_lr as solo-learn's `clip_lars_lr`; "pytorch" is `pytorch_lars`, the official
# Barlow Twins / VICReg / MoCo v3 LARS (optax's ratio, momentum before the learning rate).
LARS_VARIANTS = ("optax", "solo_learn", "pytorch")
LR_SCALINGS = ("linear", "sqrt", "none")

# Flax names the parameters of Dense/Conv biases and of BatchNorm/LayerNorm/GroupNorm
# "bias" and "scale"; these are the leaves the papers leave undecayed. The ViT's CLS token,
# position embeddings and mask tokens are not decayed either (timm / MAE's no_weight_decay).
_NO_DECAY_NAMES = ("bias", "scale", "cls", "mask_token", "mask_embedding")
_NO_DECAY_MODULES = ("pos_embed",)


def decay_mask(params: Any) -> Any:
  """True for weights that take weight decay (and the LARS trust ratio), False for
  biases, normalization parameters and the ViT's tokens and position embeddings."""
  def is_weight(path, leaf):
    names = [getattr(p, "key", str(p)) for p in path]
    return (names[-1] not in _NO_DECAY_NAMES and leaf.ndim > 1
            and not any(n in _NO_DECAY_MODULES for n in names))
  return jax.tree_util.tree_map_with_path(is_weight, params)


def scaled_learning_rate(cfg: ml_collections.ConfigDict, global_batch: int) -> float:
  if cfg.lr_scaling == "linear":
    return cfg.base_lr * global_batch / 256
  if cfg.lr_scaling == "sqrt":  # SimCLR appendix B.1 for small batches with LARS
    return cfg.base_lr * (global_batch ** 0.5)
  return cfg.base_lr


def learning_rate_schedule(cfg: ml_collections.ConfigDict, global_batch: int,
                           total_steps: int) -> optax.Schedule:
  """Linear warmup from cfg.warmup_start_lr (0; solo-learn: 3e-5) over cfg.warmup_steps,
  then cosine decay to 0 at total_steps."""
  peak = scaled_learning_rate(cfg, global_batch)
  warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=cfg.get("warmup_start_lr", 0.0), peak_value=peak, warmup_steps=warmup,
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


def make_optimizer(cfg: ml_collections.ConfigDict, schedule: optax.Schedule,
                   peak_lr: float | None = None) -> optax.GradientTransformation:
  """cfg.name in OPTIMIZERS; weight decay masked by `decay_mask`; with
  cfg.clip_grad_per_tensor > 0 the gradients are first clipped per tensor
  (`clip_by_tensor_norm`), before weight decay is added, as in PyTorch; with
  cfg.layer_decay < 1 each layer's update is scaled by `scale_by_layer_decay`.
  The top-level parameter groups named in cfg.fixed_lr_parts (SimSiam's "predictor",
  official `--fix-pred-lr`, solo-learn's `static_lr`) keep `peak_lr` throughout, the same
  optimizer otherwise."""
  fixed = tuple(cfg.get("fixed_lr_parts", ()))
  if fixed:
    if peak_lr is None:
      raise ValueError("optimizer.fixed_lr_parts needs make_optimizer's peak_lr")
    def labels(params):
      unknown = sorted(set(fixed) - set(params))
      if unknown:
        raise ValueError(f"optimizer.fixed_lr_parts {unknown}: no such top-level parameter group; "
                         f"the model has {sorted(params)}")
      return {k: jax.tree.map(lambda _, k=k: "fixed" if k in fixed else "scheduled", v)
              for k, v in params.items()}
    tx = optax.multi_transform(
        {"scheduled": _optimizer(cfg, schedule),
         "fixed": _optimizer(cfg, optax.constant_schedule(peak_lr))}, labels)
  else:
    tx = _optimizer(cfg, schedule)
  layer_decay = cfg.get("layer_decay", 1.0)
  if layer_decay != 1.0:  # after the optimizer: scaling its update is scaling the lr
    tx = optax.chain(tx, scale_by_layer_decay(layer_decay))
  clip = cfg.get("clip_grad_per_tensor", 0.0)
  return optax.chain(clip_by_tensor_norm(clip), tx) if clip > 0 else tx


def _every_parameter(params: Any) -> Any:
  return jax.tree.map(lambda _: True, params)


def _optimizer(cfg: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  # decay_all_parameters: weight decay (and the LARS ratio) on biases and norms too, as the
  # official MoCo v2 and SimSiam SGD, and solo-learn's SGD, do.
  mask = _every_parameter if cfg.get("decay_all_parameters", False) else decay_mask
  if cfg.name == "lars" and cfg.get("lars_variant", "optax") == "solo_learn":
    return lars(schedule, weight_decay=cfg.weight_decay, momentum=cfg.momentum,
                trust_coefficient=cfg.trust_coefficient, clip_lr=cfg.get("clip_lr", False),
                mask=mask)
  if cfg.name == "lars" and cfg.get("lars_variant", "optax") == "pytorch":
    return pytorch_lars(schedule, weight_decay=cfg.weight_decay, momentum=cfg.momentum,
                        trust_coefficient=cfg.trust_coefficient, mask=mask)
  if cfg.name == "lars":
    return optax.lars(
        schedule, weight_decay=cfg.weight_decay, weight_decay_mask=mask,
        trust_coefficient=cfg.trust_coefficient, trust_ratio_mask=mask,
        momentum=cfg.momentum)
  if cfg.name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(cfg.weight_decay, mask=mask),
        optax.sgd(schedule, momentum=cfg.momentum, nesterov=cfg.nesterov))
  if cfg.name == "adamw":
    return optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay, mask=mask)
  raise ValueError(f"optimizer.name={cfg.name!r} is not one of {OPTIMIZERS}")


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name="lars", base_lr=0.3, lr_scaling="linear", warmup_steps=10, weight_decay=1e-6,
      momentum=0.9, nesterov=False, trust_coefficient=0.001, b1=0.9, b2=0.999,
      warmup_start_lr=0.0,   # the warm-up's first learning rate (solo-learn: 3e-5)
      decay_all_parameters=False,  # True: decay biases and norm parameters too
      fixed_lr_parts=(),     # top-level parameter groups kept at the peak lr (SimSiam: predictor)
      lars_variant="optax",  # LARS_VARIANTS: "solo_learn" for solo-learn's configs
      clip_lr=False,         # solo_learn LARS: the layer's rate lr * ratio capped at lr
      clip_grad_per_tensor=0.0,  # > 0: each gradient tensor's norm clipped to it (DINO)
      layer_decay=1.0))  # < 1: layer-wise lr decay, `scale_by_layer_decay` (fine-tuning)


# ----------------------------------------------------------------------------
# solo-learn's LARS (vturrisi/solo-learn, solo/utils/lars.py, from Lightning Bolts).
# ----------------------------------------------------------------------------

class LarsState(NamedTuple):
  count: jax.Array   # int32 scalar: steps taken, the schedule's argument
  momentum: Any      # the momentum buffer, same tree as the parameters


def lars(learning_rate: float | optax.Schedule, *, weight_decay: float = 0.0,
         momentum: float = 0.9, trust_coefficient: float = 0.001, clip_lr: bool = False,
         mask: Any = True, eps: float = 1e-8) -> optax.GradientTransformation:
  """LARS as solo-learn steps it, for each parameter p with gradient g at step t:

    where mask is True and ||p|| > 0 and ||g|| > 0:
      r = trust_coefficient * ||p|| / (||g|| + weight_decay * ||p|| + eps)
      r = min(r / lr_t, 1)            with clip_lr
      d = r * (g + weight_decay * p)
    elsewhere d = g (no decay, no scaling)
    buf = momentum * buf + d          (buf starts at 0, so the first buf is d)
    update = -lr_t * buf

  `mask` is a tree of booleans shaped like the parameters, a callable returning one, or a
  single bool, as Optax masks are. Two differences from `optax.lars`, which follows the
  official SimCLR/BYOL LARS: the ratio's denominator is ||g|| + wd ||p||, not
  ||g + wd p||; and momentum accumulates the update *before* the learning rate, so a
  changing lr_t rescales the whole buffer. With clip_lr the per-layer rate lr_t * r is
  capped at lr_t. Written here because optax has neither the clip nor that order.
  """
  def direction(g, p, lr):
    p_norm = jnp.linalg.norm(p.ravel().astype(jnp.float32))
    g_norm = jnp.linalg.norm(g.ravel().astype(jnp.float32))
    ratio = trust_coefficient * p_norm / (g_norm + weight_decay * p_norm + eps)
    if clip_lr:  # lr_t = 0 (warm-up start): ratio / 0 = inf, clipped to 1
      ratio = jnp.minimum(ratio / lr, 1.0)
    scaled = (ratio * (g + weight_decay * p)).astype(g.dtype)
    return jnp.where((p_norm > 0) & (g_norm > 0), scaled, g)
  return _momentum_before_lr("sslax.optim.lars", learning_rate, momentum, mask, direction)


def pytorch_lars(learning_rate: float | optax.Schedule, *, weight_decay: float = 0.0,
                 momentum: float = 0.9, trust_coefficient: float = 0.001,
                 mask: Any = True) -> optax.GradientTransformation:
  """The LARS of the official Barlow Twins, VICReg and MoCo v3 code (barlowtwins/main.py,
  vicreg/main_vicreg.py, moco-v3/moco/optimizer.py), for each parameter p, gradient g:

    where mask is True: d = g + weight_decay * p,
                        d = d * trust_coefficient ||p|| / ||d||  if ||p|| > 0 and ||d|| > 0
    elsewhere d = g
    buf = momentum * buf + d;  update = -lr_t * buf

  optax.lars has the same ratio but applies momentum after the learning rate."""
  def direction(g, p, lr):
    del lr  # the ratio does not depend on it
    d = g + weight_decay * p
    p_norm = jnp.linalg.norm(p.ravel().astype(jnp.float32))
    d_norm = jnp.linalg.norm(d.ravel().astype(jnp.float32))
    ratio = jnp.where((p_norm > 0) & (d_norm > 0),
                      trust_coefficient * p_norm / jnp.where(d_norm > 0, d_norm, 1.0), 1.0)
    return (ratio * d).astype(g.dtype)
  return _momentum_before_lr("sslax.optim.pytorch_lars", learning_rate, momentum, mask, direction)


def _momentum_before_lr(name: str, learning_rate, momentum: float, mask: Any,
                        direction: Callable) -> optax.GradientTransformation:
  """What both LARS forms above share: where `mask` is True, d = direction(g, p, lr_t),
  elsewhere d = g; buf = momentum * buf + d; update = -lr_t * buf."""
  schedule = learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)

  def init(params):
    return LarsState(count=jnp.zeros([], jnp.int32), momentum=jax.tree.map(jnp.zeros_like, params))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError(f"{name} needs the params (weight decay and the trust ratio)")
    lr = jnp.asarray(schedule(state.count), jnp.float32)
    masks = mask(params) if callable(mask) else mask
    if isinstance(masks, bool):
      masks = jax.tree.map(lambda _: masks, params)
    d = jax.tree.map(lambda g, p, adapt: direction(g, p, lr) if adapt else g, updates, params, masks)
    buf = jax.tree.map(lambda b, x: momentum * b + x, state.momentum, d)
    new_updates = jax.tree.map(lambda b: (-lr * b).astype(b.dtype), buf)
    return new_updates, LarsState(count=optax.safe_increment(state.count), momentum=buf)

  return optax.GradientTransformation(init, update)


# ----------------------------------------------------------------------------
# Layer-wise learning-rate decay (fine-tuning): BEiT (Bao et al. 2022), MAE (He et al. 2022).
# ----------------------------------------------------------------------------

# ViT (sslax/models/vit.py): the patch and position embeddings and the CLS token are layer 0.
_EMBEDDING_NAMES = ("patch_embed", "pos_embed", "cls")


def _encoder_layer(name: str, path: str) -> int | None:
  """The layer of the encoder's top-level entry `name`; None for the final norm, which
  sits with the head in the last layer."""
  if name in _EMBEDDING_NAMES or name.startswith("stem"):  # ResNet's stem_conv / stem_bn too
    return 0
  if name == "norm":
    return None
  match = re.fullmatch(r"block_(\d+)", name)  # ViT block_i -> i + 1
  if match:
    return int(match.group(1)) + 1
  match = re.match(r"stage(\d+)_", name)  # ResNet stage{i}_block{j}, ConvNet stage{i}_conv/bn{j}
  if match:
    return int(match.group(1))  # stages count from 1: a whole stage is one layer
  raise ValueError(
      f"layer-wise lr decay: no layer number for the encoder parameter {path!r}; it knows ViT's "
      "patch_embed / pos_embed / cls / block_i / norm, ResNet's stem* / stage{i}_* and ConvNet's "
      "stage{i}_*. Set layer_decay to 1.0 (optimizer.layer_decay, finetune.layer_decay) for none")


def layer_decay_scales(params: Any, layer_decay: float, encoder_key: str = "encoder") -> Any:
  """Per-leaf learning-rate multipliers layer_decay ** (L + 1 - layer), the tree of `params`.

  The layer of a parameter under params[encoder_key] comes from its top-level name there:
  ViT (MAE's util/lr_decay.py): patch_embed, pos_embed, cls -> 0; block_i -> i + 1; L = depth.
  ResNet and ConvNet, one layer per stage: stem -> 0; stage{i}_* -> i; L = number of stages.
  The encoder's final `norm` and everything outside the encoder (the classifier) -> L + 1,
  which keeps the full learning rate.
  """
  def names(path):
    return [getattr(k, "key", str(k)) for k in path]

  def layer(path):
    keys = names(path)
    if keys[0] != encoder_key or len(keys) < 2:
      return None
    return _encoder_layer(keys[1], "/".join(keys))

  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  last = max([layer(path) for path, _ in leaves if layer(path) is not None], default=0) + 1

  def scale(path, leaf):
    index = layer(path)
    return float(layer_decay) ** (last - (last if index is None else index))
  return jax.tree_util.tree_map_with_path(scale, params)


def scale_by_layer_decay(layer_decay: float, encoder_key: str = "encoder") -> optax.GradientTransformation:
  """Multiplies each update by its `layer_decay_scales` multiplier. Chained after an
  optimizer it sets layer i's learning rate to lr * layer_decay ** (L + 1 - i), as BEiT's
  and MAE's parameter groups do; the decoupled weight decay, inside the update, follows its
  layer's lr as in PyTorch's AdamW. Layers near the input, whose pretrained features are
  most general, move least."""
  def update(updates, state, params=None):
    del params
    scales = layer_decay_scales(updates, layer_decay, encoder_key)
    return jax.tree.map(lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


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
