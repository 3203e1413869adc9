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
      name="simsiam",
      projector_hidden=(2048, 2048),  # paper: 3 layers, 2048 wide, BN on every layer
      projector_dim=2048,
      predictor_hidden=(512,),        # paper: bottleneck 2048 -> 512 -> 2048
  ))


class SimSiamNetworks(nn.Module):
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module

  def __call__(self, x: jax.Array, train: bool = True) -> tuple[jax.Array, jax.Array]:
    """x: [B, H, W, C] -> (z, p): projections and predictions, both [B, projector_dim]."""
    z = self.projector(self.encoder(x, train=train), train=train)
    return z, self.predictor(z, train=train)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  axis = parallel.DATA_AXIS
  cfg = config.method
  return SimSiamNetworks(
      encoder=build_encoder(config.model, bn_axis_name=axis),
      projector=MLP(hidden_dims=tuple(cfg.projector_hidden), out_dim=cfg.projector_dim,
                    use_bn=True, last_bn=True, bn_axis_name=axis),
      predictor=MLP(hidden_dims=tuple(cfg.predictor_hidden), out_dim=cfg.projector_dim,
                    use_bn=True, last_bn=False, bn_axis_name=axis))


def _normalized_std(z: jax.Array, axis_name: str | None) -> jax.Array:
  """Mean over dimensions of the global-batch std of l2-normalized z (paper fig. 2):
  about 1/sqrt(dim) for spread-out outputs, 0 when they collapse to one vector."""
  z = jax.lax.stop_gradient(losses.l2_normalize(z))
  mean = parallel.pmean(jnp.mean(z, axis=0), axis_name)
  var = parallel.pmean(jnp.mean((z - mean) ** 2, axis=0), axis_name)
  return jnp.mean(jnp.sqrt(var))


def loss(model: nn.Module, variables: dict, views: list[jax.Array],
         cfg: ml_collections.ConfigDict, axis_name: str | None):
  view1, view2 = views
  local = view1.shape[0]
  (z, p), new_state = model.apply(variables, jnp.concatenate([view1, view2]), train=True,
                                  mutable=["batch_stats"])
  z1, z2, p1, p2 = z[:local], z[local:], p[:local], p[local:]
  value = (0.5 * losses.simsiam_loss(p1, z2, axis_name=axis_name)
           + 0.5 * losses.simsiam_loss(p2, z1, axis_name=axis_name))
  metrics = {"z_std": _normalized_std(z1, axis_name)}
  return value, (new_state["batch_stats"], metrics)


METHOD = Method(name="simsiam", defaults=defaults, build=build, loss=loss, num_views=2)
