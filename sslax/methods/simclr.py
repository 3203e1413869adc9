"""SimCLR (Chen, Kornblith, Norouzi, Hinton 2020): two augmented views of every image,
an encoder and an MLP projection head, and the NT-Xent loss with the other images
of the global batch as negatives.

Both views go through the network in one call (views_forward="concatenated"), so BatchNorm
statistics cover both views of the global batch (the official implementation does the same
and syncs BN across replicas; here `bn_axis_name` does it); solo-learn forwards each view
apart ("per_view"). The head ends in a BatchNorm with a learned scale and no shift, as the
official v1 and v2 code (`projector_last_bn`); solo-learn's head has none.

`negatives="per_device"` (default "global") scores each anchor only against the images of
its own device's shard, as a data-parallel implementation without the gather would (the
official code gathers the other replicas' projections). BatchNorm stays synced and the loss
is still the mean over the global batch's anchors, so only the number of negatives changes
(2 * local_batch - 2 instead of 2 * global_batch - 2). On one device both are the same.
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from sslax import losses, parallel
from sslax.errors import require
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.networks import (
  PROJECTOR,
  EncoderWithHead,
  check_views_forward,
  embed_views,
  encoder_with_projector,
  forwards_per_view,
)
from sslax.models import build_encoder
from sslax.models.heads import MLP


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      temperature=0.1,          # tau; the paper's 0.1 for large batches (appendix B.9), 0.5 for CIFAR
      projector_hidden=(2048,),  # v1: one hidden layer as wide as the features
      projector_dim=128,
      projector_bn=True,        # BN after the hidden layer (official); solo-learn has none
      projector_last_bn=True,   # the official v1 and v2 heads end in BN (scale, no shift)
      views_forward="concatenated",  # the official code: both views in one batch
      negatives="global",       # both views of the global batch; "per_device": this device's shard only
  ))


NEGATIVES = ("global", "per_device")


def validate(config: ml_collections.ConfigDict) -> None:
  check_views_forward(config)
  cfg = config.method
  require(cfg.get("negatives", "global") in NEGATIVES, "method.negatives",
          f"{cfg.get('negatives')!r} is not one of {list(NEGATIVES)}")
  require(cfg.get("projector_bn", True) or not cfg.projector_last_bn, "method.projector_last_bn",
          "a head without BatchNorm (projector_bn=False, solo-learn's) has no output BN either: "
          "set projector_last_bn=False")


def build(config: ml_collections.ConfigDict) -> nn.Module:
  cfg = config.method
  if cfg.get("projector_bn", True):
    return encoder_with_projector(config, last_bn=cfg.projector_last_bn)
  return EncoderWithHead(  # solo-learn's head: Dense-ReLU-Dense, no BatchNorm
      encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
      projector=MLP(hidden_dims=tuple(cfg.projector_hidden), out_dim=cfg.projector_dim,
                    use_bn=False, last_bn=False))


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  (z1, z2), batch_stats = embed_views(model, variables, inputs.views,
                                      per_view=forwards_per_view(config))
  value = losses.nt_xent(z1, z2, cfg.temperature, axis_name=axis_name,
                         per_device_negatives=cfg.get("negatives", "global") == "per_device")
  return value, LossAux(batch_stats, {})


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=2, validate=validate,
                heads=PROJECTOR)
