"""SimCLR (Chen, Kornblith, Norouzi, Hinton 2020): two augmented views of every image,
an encoder and an MLP projection head, and the NT-Xent loss with the other images
of the global batch as negatives.

Both views go through the network in one call, so BatchNorm statistics cover both
views of the global batch (the official implementation does the same and syncs BN
across replicas; here `bn_axis_name` does it).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.methods.base import Method
from sslax.models import build_encoder
from sslax.models.heads import MLP


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name="simclr",
      temperature=0.1,          # tau; the paper's 0.1 for large batches (appendix B.9), 0.5 for CIFAR
      projector_hidden=(2048,),  # v1: one hidden layer as wide as the features
      projector_dim=128,
      projector_last_bn=False,
  ))


class SimCLRNetworks(nn.Module):
  encoder: nn.Module
  projector: nn.Module

  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """x: [B, H, W, C] -> projections [B, projector_dim]."""
    return self.projector(self.encoder(x, train=train), train=train)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  axis = parallel.DATA_AXIS
  cfg = config.method
  return SimCLRNetworks(
      encoder=build_encoder(config.model, bn_axis_name=axis),
      projector=MLP(hidden_dims=tuple(cfg.projector_hidden), out_dim=cfg.projector_dim,
                    use_bn=True, last_bn=cfg.projector_last_bn, bn_axis_name=axis))


def loss(model: nn.Module, variables: dict, views: list[jax.Array],
         cfg: ml_collections.ConfigDict, axis_name: str | None):
  view1, view2 = views
  local = view1.shape[0]
  z, new_state = model.apply(variables, jnp.concatenate([view1, view2]), train=True,
                             mutable=["batch_stats"])
  value = losses.nt_xent(z[:local], z[local:], cfg.temperature, axis_name=axis_name)
  return value, (new_state["batch_stats"], {})


METHOD = Method(name="simclr", defaults=defaults, build=build, loss=loss, num_views=2)
