"""Barlow Twins (Zbontar, Jing, Misra, LeCun, Deny 2021): two views, an encoder and
a wide projector, and a loss that drives the cross-correlation matrix of the two
views' standardized embeddings (over the global batch) to the identity:

  L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2,  lambda = 0.0051.

Projector (paper section 2 and the official code, facebookresearch/barlowtwins):
3 layers, 8192 wide, Dense-BN-ReLU on the two hidden layers, a plain Dense on the
output (its bias is removed again by the loss's standardization, which stands in
for the official affine-free BatchNorm on the embeddings).

Each view goes through the network on its own (views_forward="per_view", the source's way),
so each view is normalized by its own BatchNorm statistics over the global batch (synced
over devices); "concatenated" shares them between the views, as SimCLR does.
`scale_loss` multiplies the loss (solo-learn's CIFAR-10 barlow.yaml: 0.1; official: 1).
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from sslax import losses
from sslax.errors import require
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
      lambd=0.0051,                   # off-diagonal weight (paper section 2, ~1/dim)
      projector_hidden=(8192, 8192),  # paper: 3 layers, 8192 wide
      projector_dim=8192,
      scale_loss=1.0,                 # the official code's; solo-learn's CIFAR-10 yaml: 0.1
      views_forward="per_view",       # official main.py: y1 and y2 through the network apart
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  check_views_forward(config)
  require(config.method.scale_loss > 0, "method.scale_loss", "must be > 0 (solo-learn's CIFAR-10: 0.1)")


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return encoder_with_projector(config, last_bn=False)


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  (z1, z2), batch_stats = embed_views(model, variables, inputs.views,
                                      per_view=forwards_per_view(config))
  value = cfg.scale_loss * losses.barlow_twins_loss(z1, z2, cfg.lambd, axis_name=axis_name)
  return value, LossAux(batch_stats, {})


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=2, validate=validate,
                heads=PROJECTOR)
