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

Each view goes through the network on its own (views_forward="per_view", the source's way),
so each view is normalized by its own BatchNorm statistics over the global batch (synced
over devices); "concatenated" shares them between the views, as SimCLR does.
`halve_variance`: the official code averages the two views' variance terms (True);
solo-learn sums them (its CIFAR-10 config sets False).
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from sslax import losses
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.networks import (
  PROJECTOR,
  check_views_forward,
  embed_views,
  encoder_with_projector,
  forwards_per_view,
)


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      sim_coeff=25.0,                 # lambda (paper: 25 / 25 / 1)
      std_coeff=25.0,                 # mu
      cov_coeff=1.0,                  # nu
      projector_hidden=(8192, 8192),  # the paper's "expander": 3 layers, 8192 wide
      projector_dim=8192,
      halve_variance=True,            # official main_vicreg.py; solo-learn: False
      views_forward="per_view",       # official main_vicreg.py: x and y through the network apart
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  check_views_forward(config)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return encoder_with_projector(config, last_bn=False)


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  (z1, z2), batch_stats = embed_views(model, variables, inputs.views,
                                      per_view=forwards_per_view(config))
  value = losses.vicreg_loss(z1, z2, sim_coeff=cfg.sim_coeff, std_coeff=cfg.std_coeff,
                             cov_coeff=cfg.cov_coeff, halve_variance=cfg.halve_variance,
                             axis_name=axis_name)
  return value, LossAux(batch_stats, {})


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=2, validate=validate,
                heads=PROJECTOR)
