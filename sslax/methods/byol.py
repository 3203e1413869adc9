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

Ablation switches (both True by default, the method as published): `predictor=False` builds
no predictor, p = z; `stop_gradient=False` lets the gradient flow through the target branch
too. That is only meaningful when the target *is* the online network, tau = 0 at every step
(paper section 3.2 and table 5 discuss tau = 0, which collapses with the stop-gradient on):
validate refuses it otherwise, and the loss then computes the target branch with the online
parameters (equal in value to the tau = 0 target, which is a copy of them) so the gradient
reaches them. base_momentum=0 with momentum_schedule="constant" runs tau = 0 with either value.
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from sslax import losses
from sslax.errors import require
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
      predictor=True,            # False: no predictor, p = z
      stop_gradient=True,        # False (needs tau = 0 throughout): gradient through the target branch
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  target.check_momentum(config)
  networks.check_views_forward(config)
  cfg = config.method
  target_is_online = cfg.base_momentum == 0 and (
      cfg.momentum_schedule == "constant" or cfg.get("final_momentum", 1.0) == 0)
  require(cfg.get("stop_gradient", True) or target_is_online, "method.stop_gradient",
          "False needs a target network equal to the online one at every step (tau = 0): set "
          "base_momentum=0 and momentum_schedule='constant' (or final_momentum=0), or keep "
          f"stop_gradient=True (now base_momentum={cfg.base_momentum}, momentum_schedule="
          f"{cfg.momentum_schedule!r}, final_momentum={cfg.get('final_momentum', 1.0)})")


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return networks.encoder_projector_predictor(config, projector_last_bn=False,
                                              predictor=config.method.get("predictor", True))


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  return {"target": target.init_target(config, target.subtree(variables["params"], target.TARGET_PARTS),
                                       target.subtree(variables["batch_stats"], target.TARGET_PARTS))}


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  stop_gradient = config.method.get("stop_gradient", True)
  ((z1, p1), (z2, p2)), batch_stats = networks.apply_to_views(
      model, variables, inputs.views, per_view=networks.forwards_per_view(config))
  target_variables = target.target_variables(inputs.state["target"])
  if not stop_gradient:  # tau = 0 (validate): the target's params are the online ones; use those
    target_variables = {**target_variables, "params": variables["params"]}
  (t1, t2), target_batch_stats = networks.apply_to_views(
      model, target_variables, inputs.views, method="project",
      per_view=networks.forwards_per_view(config))
  value = (losses.byol_loss(p1, t2, axis_name=axis_name, stop_gradient=stop_gradient)
           + losses.byol_loss(p2, t1, axis_name=axis_name, stop_gradient=stop_gradient))
  metrics = {"z_std": monitors.normalized_std(z1, axis_name)}
  return value, LossAux(batch_stats, metrics, outputs={"target_batch_stats": target_batch_stats})


def update_state(config: ml_collections.ConfigDict, params, state: dict, outputs: dict, step):
  new_target = target.update_target(config, state["target"], target.subtree(params, target.TARGET_PARTS),
                                    outputs["target_batch_stats"])
  return params, {"target": new_target}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=2, validate=validate,
                init_state=init_state, update_state=update_state,
                heads=networks.PROJECTOR_PREDICTOR)
