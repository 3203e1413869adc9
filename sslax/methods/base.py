"""What a method file provides to the trainer.

A method answers: which networks it has (`build`), how a batch of views becomes a
loss (`loss`), which defaults it wants (`defaults`) and, for methods that carry
state between steps (a target network, a queue of negatives, a center), how that
state starts (`init_state`) and moves after each optimizer step (`update_state`).

`build(config)` returns a Flax module whose `__call__(x, train)` initializes every
parameter and whose `encode(x, train=False)` returns the representation that is
evaluated (the backbone's features, before any head). On sequence and text data both take
the padding mask too: `__call__(x, mask, train)`, `encode(x, mask, train=False)`, with
x frames [B, T, F] or tokens [B, T] and mask [B, T] (True = real).

`loss(model, variables, inputs, cfg, axis_name)` returns `(loss, LossAux)`, where
`inputs` is a `StepInputs`, `cfg` is `config.method` and every statistic over the
batch goes through `axis_name` (sslax/parallel.py). `loss` and the metrics must be
global-batch values; `LossAux.outputs` is handed to `update_state`.

`evaluated_variables(config, params, batch_stats, state)` -> the variables the frozen
evaluation embeds with (default: the online network).

`reconstruct(model, variables, views, keys, cfg)` (self-prediction methods only) -> the
input, its corrupted or masked version and the network's reconstruction, as pictures.

`init_state(config, variables)` -> a pytree, replicated on every device and saved in
every checkpoint. `update_state(config, params, state, outputs, step)` -> `(params,
state)` runs inside the step after the optimizer (BYOL averages the *new* online
parameters into its target); it may also project `params` (SwAV normalizes its
prototypes). Everything it returns must be the same on every device.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sslax.errors import ConfigError
from sslax import losses, optim, parallel
from sslax.models import build_encoder
from sslax.models.heads import MLP


@flax.struct.dataclass
class StepInputs:
  """What the trainer hands a method's loss on each device at each step."""
  views: list[jax.Array]  # normalized float views, [local_batch, h, w, c] each, config.views order;
                          # for sequences and text one view: frames [local_batch, T, F] float or
                          # tokens [local_batch, T] int (0 = padding), as the source gives them
  labels: jax.Array       # int32 [local_batch]; only the supervised baseline reads them
  step: jax.Array         # int32 scalar: the index of the optimizer step being taken
  state: Any              # the method's state (see module docstring); {} for stateless methods
  keys: Any = None        # PRNG keys [local_batch], one per example: fold_in(seed stream,
                          # global position), so a method's own randomness (masks, tile
                          # shuffles) does not depend on the device an example lands on
  # How the views were normalized, view = (pixel / 255 - mean) / std per channel: methods that
  # need pixels in [0, 1] (colorization's Lab targets) undo it.
  pixel_mean: tuple = flax.struct.field(pytree_node=False, default=(0.5,))
  pixel_std: tuple = flax.struct.field(pytree_node=False, default=(0.25,))
  mask: Any = None        # sequences and text: bool [local_batch, T], True = a real frame or
                          # token, False = padding; None for images


class LossAux(NamedTuple):
  batch_stats: Any        # the online network's new BatchNorm statistics
  metrics: dict           # extra scalars to log (global-batch values)
  outputs: Any = None     # whatever update_state needs (gathered keys, teacher logits, ...)


LossFn = Callable[[nn.Module, dict, StepInputs, ml_collections.ConfigDict, str | None],
                  tuple[jax.Array, LossAux]]


def no_state(config: ml_collections.ConfigDict, variables: dict) -> Any:
  return {}


def keep_state(config, params, state, outputs, step):
  return params, state


def online_network(config, params, batch_stats, state) -> dict:
  return {"params": params, "batch_stats": batch_stats}


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  defaults: Callable[[], ml_collections.ConfigDict]
  build: Callable[[ml_collections.ConfigDict], nn.Module]
  loss: LossFn
  num_views: int | None = 2  # None: multi-crop, any number >= 2 with the 2 global views first
  init_state: Callable[[ml_collections.ConfigDict, dict], Any] = no_state
  update_state: Callable[..., tuple[Any, Any]] = keep_state
  # (config, params, batch_stats, state) -> the variables whose `encode` is evaluated:
  # the online network, unless the method's paper evaluates another (DINO: the teacher).
  evaluated_variables: Callable[..., dict] = online_network
  # Self-prediction methods: (model, variables, views [B,H,W,C] normalized, keys [B], cfg) ->
  # {"input", "corrupted", "reconstruction"}, each [B,H,W,C] in the views' normalization,
  # for the reconstruction pictures (python -m sslax.reconstruct). None: not a reconstruction.
  reconstruct: Callable[..., dict] | None = None
  # Token methods: (params) -> [vocab_size, D], the learned vector of each token id, the
  # word embeddings `python -m sslax.neighbors` searches. None: the method has no token table.
  token_embeddings: Callable[[Any], jax.Array] | None = None


class EncoderWithHead(nn.Module):
  """A backbone and a projection head: the networks of SimCLR, Barlow Twins, VICReg."""
  encoder: nn.Module
  projector: nn.Module

  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """x: [B, H, W, C] -> head outputs [B, projector_dim]."""
    return self.projector(self.encoder(x, train=train), train=train)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)


class EncoderProjectorPredictor(nn.Module):
  """A backbone, a projector and a predictor on top: SimSiam, BYOL, MoCo v3.
  A momentum target copies only the `encoder` and `projector` and runs `project`."""
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module

  def __call__(self, x: jax.Array, train: bool = True) -> tuple[jax.Array, jax.Array]:
    """x: [B, H, W, C] -> (z, p): projections and predictions, both [B, projector_dim]."""
    z = self.project(x, train=train)
    return z, self.predictor(z, train=train)

  def project(self, x: jax.Array, train: bool = True) -> jax.Array:
    """x: [B, H, W, C] -> projections z [B, projector_dim]; needs no predictor parameters."""
    return self.projector(self.encoder(x, train=train), train=train)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)


TARGET_PARTS = ("encoder", "projector")  # what a momentum target copies of the online network


def encoder_projector_predictor(config: ml_collections.ConfigDict, *,
                                projector_last_bn: bool) -> EncoderProjectorPredictor:
  return EncoderProjectorPredictor(
      encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
      projector=projector_mlp(config.method, last_bn=projector_last_bn),
      predictor=predictor_mlp(config.method))


def projector_mlp(cfg: ml_collections.ConfigDict, *, last_bn: bool = False) -> MLP:
  """An MLP of cfg.projector_hidden / cfg.projector_dim, BatchNorm synced over the mesh axis."""
  return MLP(hidden_dims=tuple(cfg.projector_hidden), out_dim=cfg.projector_dim,
             use_bn=True, last_bn=last_bn, bn_axis_name=parallel.DATA_AXIS)


def predictor_mlp(cfg: ml_collections.ConfigDict) -> MLP:
  """cfg.projector_dim -> cfg.predictor_hidden -> cfg.projector_dim (BYOL, SimSiam, MoCo v3)."""
  return MLP(hidden_dims=tuple(cfg.predictor_hidden), out_dim=cfg.projector_dim,
             use_bn=True, last_bn=False, bn_axis_name=parallel.DATA_AXIS)


def encoder_with_projector(config: ml_collections.ConfigDict, *, last_bn: bool = False) -> EncoderWithHead:
  """config.model's encoder + an MLP head of config.method.projector_hidden / projector_dim,
  every BatchNorm synchronized over the mesh axis."""
  return EncoderWithHead(encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
                         projector=projector_mlp(config.method, last_bn=last_bn))


def apply_to_views(model: nn.Module, variables: dict, views: list[jax.Array], method=None):
  """All views through the network in one call, so BatchNorm statistics cover every view
  of the global batch (as the official SimCLR does): -> ([output_view, ...], new batch_stats).
  The output may be a tuple of arrays (e.g. projections and predictions)."""
  local = views[0].shape[0]
  out, new_state = model.apply(variables, jnp.concatenate(views), train=True,
                               mutable=["batch_stats"], method=method)
  split = [jax.tree.map(lambda a, i=i: a[i * local:(i + 1) * local], out) for i in range(len(views))]
  return split, new_state["batch_stats"]


def group_by_resolution(views: Sequence[jax.Array]) -> list[jax.Array]:
  """Consecutive views of the same spatial size concatenated along the batch (the
  official MultiCropWrapper's torch.unique_consecutive over crop sizes)."""
  groups: list[list[jax.Array]] = []
  for view in views:
    if groups and groups[-1][0].shape[1:] == view.shape[1:]:
      groups[-1].append(view)
    else:
      groups.append([view])
  return [jnp.concatenate(g) if len(g) > 1 else g[0] for g in groups]


def multicrop_apply(model: nn.Module, variables: dict, views: Sequence[jax.Array], **kwargs):
  """-> (outputs [n_views, local_batch, ...], new batch_stats), one backbone call per
  resolution group (see `group_by_resolution`)."""
  local = views[0].shape[0]
  out, new_state = model.apply(variables, group_by_resolution(views), train=True,
                               mutable=["batch_stats"], method=type(model).multicrop, **kwargs)
  out = jax.tree.map(lambda a: a.reshape((len(views), local) + a.shape[1:]), out)
  return out, new_state.get("batch_stats", {})


def embed_views(model: nn.Module, variables: dict, views: list[jax.Array]):
  """apply_to_views for single-array outputs: -> ([z_view, ...], new batch_stats)."""
  return apply_to_views(model, variables, views)


def normalized_std(z: jax.Array, axis_name: str | None) -> jax.Array:
  """Mean over dimensions of the global-batch std of l2-normalized z (paper fig. 2):
  about 1/sqrt(dim) for spread-out outputs, 0 when they collapse to one vector."""
  z = jax.lax.stop_gradient(losses.l2_normalize(z))
  mean = parallel.pmean(jnp.mean(z, axis=0), axis_name)
  var = parallel.pmean(jnp.mean((z - mean) ** 2, axis=0), axis_name)
  return jnp.mean(jnp.sqrt(var))


# ----------------------------------------------------------------------------
# Momentum target networks (BYOL, MoCo, DINO)
# ----------------------------------------------------------------------------

class TargetNetwork(NamedTuple):
  ema: optim.EmaTargetState  # the Optax transform's state: update count and target params
  batch_stats: Any           # the target's own BatchNorm statistics (it runs in train mode)


MOMENTUM_SCHEDULES = ("cosine", "constant")


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
