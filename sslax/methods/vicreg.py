"""VICReg (Bardes, Ponce, LeCun 2022): two views, an encoder and a wide expander,
and a loss of three terms on the expander outputs over the global batch:

  L = 25 * invariance (MSE between the views)
    + 25 * variance   (hinge keeping every dimension's std above 1)
    +  1 * covariance (off-diagonal covariances squared, driven to 0).

Expander (the paper and the official code, facebookresearch/vicreg):
3 layers, 8192 wide, Dense-BN-ReLU on the two hidden layers, a plain Dense on the
output (the official output layer has no bias; here it has one, which the
variance and covariance terms ignore and the invariance term cancels between views).

The three terms are not reported separately: `losses.vicreg_loss` returns their sum,
and recomputing them would repeat its all-gather and [dim, dim] covariance.

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
      name="vicreg",
      sim_coeff=25.0,                 # lambda (paper: 25 / 25 / 1)
      std_coeff=25.0,                 # mu
      cov_coeff=1.0,                  # nu
      projector_hidden=(8192, 8192),  # the paper's "expander": 3 layers, 8192 wide
      projector_dim=8192,
  ))


class VICRegNetworks(nn.Module):
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
  return VICRegNetworks(
      encoder=build_encoder(config.model, bn_axis_name=axis),
      projector=MLP(hidden_dims=tuple(cfg.projector_hidden), out_dim=cfg.projector_dim,
                    use_bn=True, last_bn=False, bn_axis_name=axis))


def loss(model: nn.Module, variables: dict, views: list[jax.Array],
         cfg: ml_collections.ConfigDict, axis_name: str | None):
  view1, view2 = views
  local = view1.shape[0]
  z, new_state = model.apply(variables, jnp.concatenate([view1, view2]), train=True,
                             mutable=["batch_stats"])
  value = losses.vicreg_loss(z[:local], z[local:], sim_coeff=cfg.sim_coeff,
                             std_coeff=cfg.std_coeff, cov_coeff=cfg.cov_coeff,
                             axis_name=axis_name)
  return value, (new_state["batch_stats"], {})


METHOD = Method(name="vicreg", defaults=defaults, build=build, loss=loss, num_views=2)
