"""Barlow Twins (Zbontar, Jing, Misra, LeCun, Deny 2021): two views, an encoder and
a wide projector, and a loss that drives the cross-correlation matrix of the two
views' standardized embeddings (over the global batch) to the identity:

  L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2,  lambda = 0.0051.

Projector (paper section 2 and the official code, facebookresearch/barlowtwins):
3 layers, 8192 wide, Dense-BN-ReLU on the two hidden layers, a plain Dense on the
output (its bias is removed again by the loss's standardization, which stands in
for the official affine-free BatchNorm on the embeddings).

Both views go through the network in one call, so BatchNorm statistics cover both
views of the global batch (synced over devices by `bn_axis_name`), as simclr.py does.
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
      name="barlow_twins",
      lambd=0.0051,                   # off-diagonal weight (paper section 2, ~1/dim)
      projector_hidden=(8192, 8192),  # paper: 3 layers, 8192 wide
      projector_dim=8192,
  ))


class BarlowTwinsNetworks(nn.Module):
  encoder: nn.Module
  projector: nn.Module

  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """x: [B, H, W, C] -> embeddings [B, projector_dim]."""
    return self.projector(self.encoder(x, train=train), train=train)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  axis = parallel.DATA_AXIS
  cfg = config.method
  return BarlowTwinsNetworks(
      encoder=build_encoder(config.model, bn_axis_name=axis),
      projector=MLP(hidden_dims=tuple(cfg.projector_hidden), out_dim=cfg.projector_dim,
                    use_bn=True, last_bn=False, bn_axis_name=axis))


def loss(model: nn.Module, variables: dict, views: list[jax.Array],
         cfg: ml_collections.ConfigDict, axis_name: str | None):
  view1, view2 = views
  local = view1.shape[0]
  z, new_state = model.apply(variables, jnp.concatenate([view1, view2]), train=True,
                             mutable=["batch_stats"])
  value = losses.barlow_twins_loss(z[:local], z[local:], cfg.lambd, axis_name=axis_name)
  return value, (new_state["batch_stats"], {})


METHOD = Method(name="barlow_twins", defaults=defaults, build=build, loss=loss, num_views=2)
