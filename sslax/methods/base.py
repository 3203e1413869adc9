"""What a method file provides to the trainer.

A method answers three questions: which networks it has (`build`), how a batch
of views becomes a loss (`loss`), and which defaults it wants (`defaults`).

`build(config)` returns a Flax module whose `__call__(x, train)` is what `loss`
calls and whose `encode(x, train=False)` returns the representation that is
evaluated (the backbone's features, before any projection head).

`loss(model, variables, views, cfg, axis_name)` returns
`(loss, (new_batch_stats, metrics))`, where `views` is a list of
[local_batch, H, W, C] float arrays, `cfg` is `config.method` and every statistic
over the batch goes through `axis_name` (sslax/parallel.py). `loss` and `metrics`
must be global-batch values.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import parallel
from sslax.models import build_encoder
from sslax.models.heads import MLP


LossFn = Callable[[nn.Module, dict, list[jax.Array], ml_collections.ConfigDict, str | None],
                  tuple[jax.Array, tuple[Any, dict]]]


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  defaults: Callable[[], ml_collections.ConfigDict]
  build: Callable[[ml_collections.ConfigDict], nn.Module]
  loss: LossFn
  num_views: int = 2


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


def encoder_with_projector(config: ml_collections.ConfigDict, *, last_bn: bool = False) -> EncoderWithHead:
  """config.model's encoder + an MLP head of config.method.projector_hidden / projector_dim,
  every BatchNorm synchronized over the mesh axis."""
  axis = parallel.DATA_AXIS
  cfg = config.method
  return EncoderWithHead(
      encoder=build_encoder(config.model, bn_axis_name=axis),
      projector=MLP(hidden_dims=tuple(cfg.projector_hidden), out_dim=cfg.projector_dim,
                    use_bn=True, last_bn=last_bn, bn_axis_name=axis))


def embed_views(model: nn.Module, variables: dict, views: list[jax.Array]):
  """All views through the network in one call, so BatchNorm statistics cover every view
  of the global batch (as the official SimCLR does): -> ([z_view, ...], new batch_stats)."""
  local = views[0].shape[0]
  z, new_state = model.apply(variables, jnp.concatenate(views), train=True, mutable=["batch_stats"])
  return [z[i * local:(i + 1) * local] for i in range(len(views))], new_state["batch_stats"]
