"""MoCo v3 (Chen, Xie, He 2021): a query network (encoder, projector, predictor), a
momentum key network (encoder, projector) and a symmetric InfoNCE against the keys of
the other view of every image in the global batch (no queue):

  L = ctr(q1, k2) + ctr(q2, k1),  ctr(q, k) = 2 T * CE(q . k_all / T, own index)
  encoder', projector' <- m' + (1 - m) online after every step, m cosine from 0.99 to 1.

As the official code (facebookresearch/moco-v3, moco/builder.py, ResNet-50 settings):
projector 2 layers Dense(4096)-BN-ReLU-Dense(256)-BN (`_build_mlp(2, 2048, 4096, 256)` of
MoCo_ResNet; the 3-layer projector is MoCo_ViT's), predictor Dense(4096)-BN-ReLU-Dense(256),
T = 1.0 (0.2 for ViT), m = 0.99 with the cosine schedule, each view through the networks
apart (per-view BatchNorm statistics).
`losses.moco_v3_infonce` gathers the keys of all devices. The official last projector BN
has no affine parameters; here it keeps a learned scale, as SimSiam's does.
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from sslax import losses
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common import networks, target


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      temperature=1.0,                # ResNet-50 (official README); ViT: 0.2
      projector_hidden=(4096,),       # official MoCo_ResNet: 2-layer projector (ViT: 3)
      projector_dim=256,
      predictor_hidden=(4096,),
      base_momentum=0.99,             # official --moco-m 0.99 with --moco-m-cos
      final_momentum=1.0,             # official: cosine to 1
      momentum_schedule="cosine",
      views_forward="per_view",  # official builder.py: x1 and x2 through the networks apart
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  target.check_momentum(config)
  networks.check_views_forward(config)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return networks.encoder_projector_predictor(config, projector_last_bn=True)


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  return {"target": target.init_target(config, target.subtree(variables["params"], target.TARGET_PARTS),
                                       target.subtree(variables["batch_stats"], target.TARGET_PARTS))}


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  ((_, q1), (_, q2)), batch_stats = networks.apply_to_views(
      model, variables, inputs.views, per_view=networks.forwards_per_view(config))
  (k1, k2), target_batch_stats = networks.apply_to_views(
      model, target.target_variables(inputs.state["target"]), inputs.views, method="project",
      per_view=networks.forwards_per_view(config))
  value = (losses.moco_v3_infonce(q1, k2, cfg.temperature, axis_name=axis_name)
           + losses.moco_v3_infonce(q2, k1, cfg.temperature, axis_name=axis_name))
  return value, LossAux(batch_stats, {}, outputs={"target_batch_stats": target_batch_stats})


def update_state(config: ml_collections.ConfigDict, params, state: dict, outputs: dict, step):
  new_target = target.update_target(config, state["target"], target.subtree(params, target.TARGET_PARTS),
                                    outputs["target_batch_stats"])
  return params, {"target": new_target}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=2, validate=validate,
                init_state=init_state, update_state=update_state,
                heads=networks.PROJECTOR_PREDICTOR)
