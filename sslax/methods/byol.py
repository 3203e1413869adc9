"""BYOL (Grill et al. 2020): an online network (encoder, projector, predictor) learns to
predict a slowly moving target network's projection of another view of the same image:

  L = mean_b [ (2 - 2 cos(p1, sg(z2'))) + (2 - 2 cos(p2, sg(z1'))) ],
  p = predictor(projector(encoder(x))) online, z' = projector'(encoder'(x)) target,
  target' <- tau_k target' + (1 - tau_k) online, after every optimizer step,
  tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2.

As the official JAX implementation (deepmind-research/byol, byol_experiment.py): the two
directions are summed, not averaged (so L is in [0, 8]); the target averages in the
*new* online parameters after the optimizer step; the target runs in training mode
(BatchNorm on the batch's statistics) and keeps its own running statistics.
The target update is the Optax transform `sslax.optim.ema_target` on
`optax.incremental_update`; its state (update count and target parameters) is the
method state, saved in every checkpoint.

Architecture (paper section 3.3): projector and predictor are Dense(4096)-BN-ReLU-Dense(256).
Each view goes through each network on its own (views_forward="per_view"), as the official
code does, so each view has its own BatchNorm statistics over the global batch (synced over
devices); "concatenated" shares them.
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from sslax import losses
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common import monitors, networks, target


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      projector_hidden=(4096,),  # paper section 3.3
      projector_dim=256,
      predictor_hidden=(4096,),
      base_momentum=0.996,       # tau_base (paper section 3.3, batch 4096)
      final_momentum=1.0,        # end of the cosine schedule (BYOL: 1)
      momentum_schedule="cosine",
      views_forward="per_view",  # official byol_experiment.py: each view through the networks apart
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  target.check_momentum(config)
  networks.check_views_forward(config)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return networks.encoder_projector_predictor(config, projector_last_bn=False)


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  return {"target": target.init_target(config, target.subtree(variables["params"], target.TARGET_PARTS),
                                       target.subtree(variables["batch_stats"], target.TARGET_PARTS))}


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  ((z1, p1), (z2, p2)), batch_stats = networks.apply_to_views(
      model, variables, inputs.views, per_view=networks.forwards_per_view(config))
  (t1, t2), target_batch_stats = networks.apply_to_views(
      model, target.target_variables(inputs.state["target"]), inputs.views, method="project",
      per_view=networks.forwards_per_view(config))
  value = (losses.byol_loss(p1, t2, axis_name=axis_name)
           + losses.byol_loss(p2, t1, axis_name=axis_name))
  metrics = {"z_std": monitors.normalized_std(z1, axis_name)}
  return value, LossAux(batch_stats, metrics, outputs={"target_batch_stats": target_batch_stats})


def update_state(config: ml_collections.ConfigDict, params, state: dict, outputs: dict, step):
  new_target = target.update_target(config, state["target"], target.subtree(params, target.TARGET_PARTS),
                                    outputs["target_batch_stats"])
  return params, {"target": new_target}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=2, validate=validate,
                init_state=init_state, update_state=update_state,
                heads=networks.PROJECTOR_PREDICTOR)
