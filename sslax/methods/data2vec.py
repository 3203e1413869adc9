"""data2vec for images (Baevski, Hsu, Xu, Babu, Gu, Auli 2022): latent masked prediction.

A student ViT sees the image with a random subset of its patches replaced by a learned
mask embedding and regresses, at the masked positions, the teacher's contextualized
representation of the *unmasked* image. The teacher is an exponential moving average
of the student's encoder (the Optax transform `sslax.optim.ema_target`, as BYOL's). The
target of patch i is the average over the top K blocks of each block's feed-forward
output before its last residual connection, each normalized without learned parameters:

  y_i = (1/K) sum_{l = L-K+1..L} norm(ffn_l)(i),

norm = `target_norm`: "instance" (default) normalizes every feature over the image's
patches (the public data2vec code's `instance_norm_target_layer`, its speech setting and
the image setting of data2vec 2.0); "layer" normalizes every patch over its features (the
paper's text for vision). With "layer", our Fashion-MNIST run collapsed: the targets became
nearly the same vector at every patch and image (the logged `target_std`, the features'
std over patches and images, fell to 0.11, and the loss to 0.003 by step 250), so the
task was trivial; instance normalization makes every feature vary over the patches by
construction.

  L = sum_{b, i masked} mean_j (head(student_i)_j - y_ij)^2 / #masked (global batch),

(the paper's smooth L1 with beta -> 0 used for vision is an L2 loss up to scale; here
`loss_beta` = 0 gives the squared error, > 0 the smooth L1 with that beta).

Departures: the paper masks 60% of the patches in blocks (BEiT's block-wise masking);
here a random 60% of patches per image (MAE's masking, from the example's key). The
paper's EMA rate rises linearly from 0.9998 to 0.99999; here it follows the cosine schedule
from `base_momentum` to `final_momentum` the other target methods use.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common import target as targets
from sslax.methods.common.masking import check_mask_ratio, random_masking, require_vit
from sslax.models import build_encoder
from sslax.models.vit import ViT


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      mask_ratio=0.6,          # paper: 60% of the patches (block-wise there)
      top_k_blocks=6,          # K: average of the top 6 blocks (paper, ViT-B)
      target_norm="instance",  # per-block target normalization: "instance" or "layer"
      loss_beta=0.0,           # 0: squared error; > 0: smooth L1 with this beta
      base_momentum=0.9998,    # paper's tau_0 for ViT-B
      final_momentum=0.99999,  # paper's tau_e
      momentum_schedule="cosine",
  ))


class Data2Vec(nn.Module):
  encoder: ViT

  def setup(self):
    self.mask_embedding = self.param("mask_embedding", nn.initializers.normal(stddev=0.02),
                                     (self.encoder.hidden_dim,))
    self.head = nn.Dense(self.encoder.hidden_dim, name="head")

  def student(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    """x [B, H, W, C], mask [B, N] bool (True = masked) -> predictions [B, N, D]."""
    out = self.encoder.transform(self.encoder.embed(x, mask, self.mask_embedding))
    return self.head(out[:, 1:] if self.encoder.pool == "cls" else out)

  def teacher_targets(self, x: jax.Array, top_k: int, target_norm: str = "instance") -> jax.Array:
    """x [B, H, W, C] unmasked -> the regression targets y [B, N, D] (float32)."""
    outputs = self.encoder.block_outputs(self.encoder.embed(x))[-top_k:]
    norm = TARGET_NORMS[target_norm]
    return jnp.mean(jnp.stack([norm(o.astype(jnp.float32)) for o in outputs]), axis=0)

  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    return self.student(x, jnp.zeros(x.shape[:1] + (self.encoder_patches(x),), bool))

  def encoder_patches(self, x: jax.Array) -> int:
    h, w = self.encoder.grid(x)
    return h * w

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.encoder(x, train=train)


def layer_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """[B, N, D]: every position normalized over its features, no learned scale or bias."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  return (x - mean) / jnp.sqrt(jnp.var(x, axis=-1, keepdims=True) + eps)


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """[B, N, D]: every feature normalized over the N positions of its example (torch's
  F.instance_norm on [B, D, N]), no learned scale or bias."""
  mean = jnp.mean(x, axis=1, keepdims=True)
  return (x - mean) / jnp.sqrt(jnp.var(x, axis=1, keepdims=True) + eps)


TARGET_NORMS = {"instance": instance_norm, "layer": layer_norm}


def validate(config: ml_collections.ConfigDict) -> None:
  require_vit(config, "data2vec")
  check_mask_ratio(config)
  targets.check_momentum(config)
  # Constructing the (uninitialized) module only reads config.model: no parameters, no data.
  depth = build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS).depth
  if not 1 <= config.method.top_k_blocks <= depth:
    raise ConfigError(
        f"config.method.top_k_blocks={config.method.top_k_blocks}: must be in [1, {depth}] "
        f"(the ViT has {depth} blocks)")
  if config.method.target_norm not in TARGET_NORMS:
    raise ConfigError(f"config.method.target_norm={config.method.target_norm!r}: use "
                      f"one of {sorted(TARGET_NORMS)}")


def build(config: ml_collections.ConfigDict) -> Data2Vec:
  return Data2Vec(encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS))


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  return {"teacher": targets.init_target(config, targets.subtree(variables["params"], ("encoder",)), {})}


def loss(model: Data2Vec, variables: dict, inputs: StepInputs, config: ml_collections.ConfigDict,
         axis_name: str | None):
  cfg = config.method
  x = inputs.views[0]
  num_patches = model.apply(variables, x, method="encoder_patches")
  _, mask, _ = random_masking(inputs.keys, num_patches, cfg.mask_ratio)
  mask = mask.astype(bool)
  pred = model.apply(variables, x, mask, method="student")
  # The teacher is the student's module with the EMA encoder (its head and mask embedding
  # are not used by teacher_targets; flax's setup only needs them present).
  teacher = {"params": {**variables["params"], **inputs.state["teacher"].ema.target}}
  target = jax.lax.stop_gradient(model.apply(teacher, x, cfg.top_k_blocks, cfg.target_norm,
                                                   method="teacher_targets"))
  value = losses.masked_regression(pred.astype(jnp.float32), target, mask, cfg.loss_beta,
                                   axis_name)
  # Per-feature spread of the targets (mean of per-device stds): near 0 means collapsed targets.
  metrics = {"target_std": parallel.pmean(jnp.mean(jnp.std(target, axis=(0, 1))), axis_name)}
  return value, LossAux(variables.get("batch_stats", {}), metrics)


def update_state(config: ml_collections.ConfigDict, params, state: dict, outputs, step):
  teacher = targets.update_target(config, state["teacher"], targets.subtree(params, ("encoder",)), {})
  return params, {"teacher": teacher}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                init_state=init_state, update_state=update_state)
