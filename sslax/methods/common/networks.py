"""The networks of the joint-embedding methods and how a batch of views goes through them:
all views in one call (BatchNorm statistics over every view of the global batch), one call
per view (each view its own statistics), or, for multi-crop, one backbone call per
resolution."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import parallel
from sslax.errors import require
from sslax.models import build_encoder
from sslax.models.heads import MLP


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

  def head(self, x: jax.Array, which: str, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> the output of head `which` ("projector"), for config.eval.heads."""
    assert which == "projector", which
    return self(x, train=train)


class EncoderProjectorPredictor(nn.Module):
  """A backbone, a projector and a predictor on top: SimSiam, BYOL, MoCo v3.
  A momentum target copies only the `encoder` and `projector` and runs `project`.
  predictor=None: no predictor, p = z (SimSiam's "no pred." ablation, table 1)."""
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module | None = None

  def __call__(self, x: jax.Array, train: bool = True) -> tuple[jax.Array, jax.Array]:
    """x: [B, H, W, C] -> (z, p): projections and predictions, both [B, projector_dim]."""
    z = self.project(x, train=train)
    return z, z if self.predictor is None else self.predictor(z, train=train)

  def project(self, x: jax.Array, train: bool = True) -> jax.Array:
    """x: [B, H, W, C] -> projections z [B, projector_dim]; needs no predictor parameters."""
    return self.projector(self.encoder(x, train=train), train=train)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)

  def head(self, x: jax.Array, which: str, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> the output of head `which`, "projector" (z) or "predictor" (p),
    for config.eval.heads."""
    assert which in ("projector", "predictor"), which
    z = self.project(x, train=train)
    return z if which == "projector" else self.predictor(z, train=train)


PROJECTOR = ("projector",)  # Method.heads of a method built on EncoderWithHead
PROJECTOR_PREDICTOR = ("projector", "predictor")  # ... on EncoderProjectorPredictor


def encoder_projector_predictor(config: ml_collections.ConfigDict, *, projector_last_bn: bool,
                                predictor: bool = True) -> EncoderProjectorPredictor:
  """predictor=False builds none: p = z."""
  return EncoderProjectorPredictor(
      encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
      projector=projector_mlp(config.method, last_bn=projector_last_bn),
      predictor=predictor_mlp(config.method) if predictor else None)


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


def apply_to_views(model: nn.Module, variables: dict, views: list[jax.Array], method=None, *,
                   per_view: bool = False):
  """The views through the network: -> ([output_view, ...], new batch_stats). The output
  may be a tuple of arrays (e.g. projections and predictions).

  per_view=False: all views in one call, so BatchNorm statistics cover every view of the
  global batch (the official SimCLR concatenates). per_view=True: one call per view, each
  normalized by its own statistics, the running averages updated once per view in view
  order (the official BYOL, SimSiam, MoCo v3, Barlow Twins, VICReg and solo-learn forward
  each view separately)."""
  if per_view:
    outputs, stats = [], variables.get("batch_stats", {})
    for view in views:
      out, new_state = model.apply({**variables, "batch_stats": stats}, view, train=True,
                                   mutable=["batch_stats"], method=method)
      outputs.append(out)
      stats = new_state["batch_stats"]
    return outputs, stats
  local = views[0].shape[0]
  out, new_state = model.apply(variables, jnp.concatenate(views), train=True,
                               mutable=["batch_stats"], method=method)
  split = [jax.tree.map(lambda a, i=i: a[i * local:(i + 1) * local], out) for i in range(len(views))]
  return split, new_state["batch_stats"]


def forwards_per_view(config: ml_collections.ConfigDict) -> bool:
  """config.method.views_forward: "per_view" (each view its own BatchNorm statistics) or
  "concatenated" (one call, shared statistics)."""
  return config.method.get("views_forward", "concatenated") == "per_view"


VIEWS_FORWARDS = ("per_view", "concatenated")


def check_views_forward(config: ml_collections.ConfigDict) -> None:
  """The validate-time check of config.method.views_forward."""
  value = config.method.get("views_forward", "concatenated")
  require(value in VIEWS_FORWARDS, "method.views_forward",
          f"{value!r} is not one of {list(VIEWS_FORWARDS)}")


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


def embed_views(model: nn.Module, variables: dict, views: list[jax.Array], *,
                per_view: bool = False):
  """apply_to_views for single-array outputs: -> ([z_view, ...], new batch_stats)."""
  return apply_to_views(model, variables, views, per_view=per_view)
