"""SimSiam (Chen & He 2021): two views, one encoder + projector f, a predictor h,
and the symmetric negative-cosine loss with a stop-gradient on the targets:

  L = 0.5 * D(p1, sg(z2)) + 0.5 * D(p2, sg(z1)),  D(p, z) = -cos(p, z),
  z = f(x) (projector output), p = h(z) (predictor output).

No negatives, no momentum encoder: the stop-gradient alone prevents collapse
(paper section 4.1). The stop-gradient lives in `losses.simsiam_loss`.

Architecture (paper section 3 and the official code, facebookresearch/simsiam):
  projector: 3 layers, Dense-BN-ReLU, Dense-BN-ReLU, Dense-BN, all 2048 wide;
  predictor: bottleneck Dense(512)-BN-ReLU, Dense(2048), no BN on the output.
One departure: the official projector's last BN has no affine parameters at all;
`MLP(last_bn=True)` keeps a learned scale (no shift), as SimCLR v2's heads do.

Each view goes through the network on its own (views_forward="per_view", the source's way),
so each view is normalized by its own BatchNorm statistics over the global batch (synced
over devices); "concatenated" shares them between the views, as SimCLR does.

Ablation switches (all True by default, the method as published): `predictor=False` builds
no predictor, p = z (paper table 1, "no pred.", which collapses); `stop_gradient=False` lets
the gradient flow through the targets z too (paper figure 2, "w/o stop-grad", which collapses);
`projector_output_bn=False` ends the projector in a plain Dense (paper table 3, "hidden-only"
BN: 67.4% against 68.1%, no collapse). The output BN standardizes each dimension of z over the
batch, so with it z cannot become one constant vector; the switch shows what the other parts
do without that guard.
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from sslax import losses
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.monitors import normalized_std
from sslax.methods.common.networks import (
  PROJECTOR_PREDICTOR,
  apply_to_views,
  check_views_forward,
  encoder_projector_predictor,
  forwards_per_view,
)


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      projector_hidden=(2048, 2048),  # paper: 3 layers, 2048 wide, BN on every layer
      projector_dim=2048,
      predictor_hidden=(512,),        # paper: bottleneck 2048 -> 512 -> 2048
      views_forward="per_view",       # official builder.py: x1 and x2 through the network apart
      predictor=True,                 # False: no predictor, p = z (paper table 1, "no pred.")
      stop_gradient=True,             # False: gradient through the targets (paper figure 2)
      projector_output_bn=True,       # False: no BN on z (paper table 3, "hidden-only")
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  check_views_forward(config)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return encoder_projector_predictor(config, projector_last_bn=config.method.get("projector_output_bn", True),
                                     predictor=config.method.get("predictor", True))


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  ((z1, p1), (z2, p2)), batch_stats = apply_to_views(model, variables, inputs.views,
                                                    per_view=forwards_per_view(config))
  stop_gradient = config.method.get("stop_gradient", True)
  value = (0.5 * losses.simsiam_loss(p1, z2, axis_name=axis_name, stop_gradient=stop_gradient)
           + 0.5 * losses.simsiam_loss(p2, z1, axis_name=axis_name, stop_gradient=stop_gradient))
  metrics = {"z_std": normalized_std(z1, axis_name)}
  return value, LossAux(batch_stats, metrics)


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=2, validate=validate,
                heads=PROJECTOR_PREDICTOR)
