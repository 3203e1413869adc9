"""Masked autoencoder (He, Chen, Xie, Li, Dollar, Girshick 2022).

Per image, a random 75% of the patches is hidden; the ViT encoder runs on the visible
25% only (no mask tokens: the source of MAE's speed, benchmarks/mae_speedup.py); a light
decoder gets the encoded visible tokens plus a shared learned mask token at every hidden
position, adds its own position embeddings and predicts every patch's pixels. The loss
is the mean squared error on the hidden patches only,

  L = sum_{b, i} m_bi * mean_j (pred_bij - t_bij)^2 / sum_{b, i} m_bi,

with m_bi = 1 where patch i of image b is hidden, and t the patch's pixels normalized by
the patch's own mean and variance (`norm_pix_loss`, the paper's default for its best
results; t_bij = (x_bij - mean_j x_bij) / sqrt(var_j x_bij + 1e-6)). Both sums run over the
global batch.

The mask of an image is a function of its own key (its global position in the data
stream), so it does not depend on which device the image lands on: uniform noise per
patch, the lowest-noise int(N (1 - ratio)) patches kept (the official random_masking).

`encode` (the frozen evaluation) runs the encoder on all patches and pools (CLS token by
default); fine-tuning (sslax/evaluate/finetune.py) uses layer-wise learning-rate decay.
Departure: the paper's fine-tuning also uses mixup, cutmix, RandAugment and drop path;
they are not implemented.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.masking import check_mask_ratio, random_masking, require_vit
from sslax.methods.common.patches import patchify, unpatchify
from sslax.methods.common.tokens import gather_tokens
from sslax.models import build_encoder
from sslax.models.vit import Block, ViT, sincos_2d


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      mask_ratio=0.75,        # paper section 4: 75% works best for linear probing and fine-tuning
      decoder_dim=512,        # paper's default decoder: 8 blocks, 512 wide (16 heads)
      decoder_depth=8,
      decoder_heads=16,
      norm_pix_loss=True,     # per-patch normalized pixel targets
      encoder_mask_tokens=False,  # True: the paper's slower ablation, encoder on all patches
  ))


class MAEDecoder(nn.Module):
  """Encoded visible tokens -> pixels of every patch [B, N, patch_pixels].

  dtype: the compute dtype, the encoder's (config.precision). The decoder is not a small
  head: with the paper's 8 x 512 decoder on 196 + 1 tokens it does more multiply-adds than
  a ViT-B encoder on the 49 + 1 visible ones, so leaving it in float32 under a bfloat16
  policy would keep over half of the step's matmuls in float32 (the official code runs it
  under the same autocast as the encoder). Parameters stay float32; LayerNorm statistics
  and the attention softmax are computed in float32 by flax and jax."""
  dim: int
  depth: int
  num_heads: int
  dtype: Any = jnp.float32
  attention_impl: str | None = None  # the encoder's (config.model.attention_impl)

  @nn.compact
  def __call__(self, visible: jax.Array, restore: jax.Array, grid: tuple[int, int],
               has_cls: bool, patch_pixels: int) -> jax.Array:
    """visible [B, 1 + n_keep or n_keep, D_enc] (CLS first if has_cls), restore [B, N]."""
    dense = functools.partial(nn.Dense, kernel_init=nn.initializers.xavier_uniform(), dtype=self.dtype)
    x = dense(self.dim, name="embed")(visible)
    cls, x = (x[:, :1], x[:, 1:]) if has_cls else (x[:, :0], x)
    b, n = restore.shape
    mask_token = self.param("mask_token", nn.initializers.normal(stddev=0.02), (1, 1, self.dim))
    mask_tokens = jnp.broadcast_to(mask_token.astype(x.dtype), (b, n - x.shape[1], self.dim))
    x = gather_tokens(jnp.concatenate([x, mask_tokens], axis=1), restore)  # back to patch order
    x = jnp.concatenate([cls, x + jnp.asarray(sincos_2d(*grid, self.dim), x.dtype)], axis=1)
    for i in range(self.depth):
      x, _ = Block(self.num_heads, 4 * self.dim, attention_impl=self.attention_impl, dtype=self.dtype,
                   name=f"block_{i}")(x)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm")(x)
    x = dense(patch_pixels, name="pred")(x)
    return x[:, cls.shape[1]:]


class MAE(nn.Module):
  """encoder_mask_tokens: the paper's ablation (table 1c, "encoder w/ [M]"): the encoder
  sees every patch, the hidden ones replaced by a learned mask token; slower and worse,
  kept to measure what encoding only the visible patches saves."""
  encoder: ViT
  decoder: MAEDecoder
  encoder_mask_tokens: bool = False

  def setup(self):
    if self.encoder_mask_tokens:
      self.encoder_mask_token = self.param("encoder_mask_token", nn.initializers.normal(stddev=0.02),
                                           (self.encoder.hidden_dim,))

  def forward(self, x: jax.Array, keys: jax.Array, mask_ratio: float):
    """x [B, H, W, C], keys [B] -> (predicted pixels [B, N, p*p*C], mask [B, N])."""
    grid = self.encoder.grid(x)
    num_patches = grid[0] * grid[1]
    keep, mask, restore = random_masking(keys, num_patches, mask_ratio)
    if self.encoder_mask_tokens:
      encoded = self.encoder.transform(self.encoder.embed(x, mask > 0, self.encoder_mask_token))
      restore = jnp.broadcast_to(jnp.arange(num_patches, dtype=jnp.int32), mask.shape)
    else:
      visible = gather_tokens(self.encoder.embed(x), keep)
      encoded = self.encoder.transform(visible)
    p = self.encoder.patch_size
    pred = self.decoder(encoded, restore, grid, has_cls=self.encoder.pool == "cls",
                        patch_pixels=p * p * x.shape[-1])
    return pred, mask

  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """Initializes every parameter: the encoder and decoder on all patches (ratio 0)."""
    keys = jax.random.split(jax.random.key(0), x.shape[0])
    return self.forward(x, keys, 0.0)[0]

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x [B, H, W, C] -> the encoder's pooled features on all patches [B, D]."""
    return self.encoder(x, train=train)


def validate(config: ml_collections.ConfigDict) -> None:
  require_vit(config, "MAE")
  check_mask_ratio(config)


def build(config: ml_collections.ConfigDict) -> MAE:
  cfg = config.method
  encoder = build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS)
  return MAE(encoder=encoder,
             decoder=MAEDecoder(cfg.decoder_dim, cfg.decoder_depth, cfg.decoder_heads,
                                dtype=encoder.dtype, attention_impl=encoder.attention_impl),
             encoder_mask_tokens=cfg.encoder_mask_tokens)


def pixel_targets(images: jax.Array, patch: int, norm_pix_loss: bool) -> jax.Array:
  """[B, H, W, C] -> per-patch targets [B, N, p*p*C] (normalized per patch if asked)."""
  target = patchify(images, patch)
  if norm_pix_loss:
    mean = jnp.mean(target, axis=-1, keepdims=True)
    var = jnp.var(target, axis=-1, keepdims=True)
    target = (target - mean) / jnp.sqrt(var + 1e-6)
  return target


def loss(model: MAE, variables: dict, inputs: StepInputs, config: ml_collections.ConfigDict,
         axis_name: str | None):
  cfg = config.method
  x = inputs.views[0]
  pred, mask = model.apply(variables, x, inputs.keys, cfg.mask_ratio, method="forward")
  target = pixel_targets(x, model.encoder.patch_size, cfg.norm_pix_loss)
  value = losses.masked_patch_mse(pred.astype(jnp.float32), target, mask, axis_name)
  return value, LossAux(variables.get("batch_stats", {}), {})


def reconstruct(model: MAE, variables: dict, views: jax.Array, keys: jax.Array,
                config: ml_collections.ConfigDict) -> dict:
  """The image, its visible patches (hidden ones at 0, the dataset mean), and the prediction
  with the visible patches pasted in (as the paper's figures). With norm_pix_loss the
  predicted patches are de-normalized with the true patch's mean and variance (as the
  paper's visualization does; the network predicts only their normalized shape)."""
  cfg = config.method
  patch = model.encoder.patch_size
  pred, mask = model.apply(variables, views, keys, cfg.mask_ratio, method="forward")
  patches = patchify(views, patch)
  if cfg.norm_pix_loss:
    mean = jnp.mean(patches, axis=-1, keepdims=True)
    std = jnp.sqrt(jnp.var(patches, axis=-1, keepdims=True) + 1e-6)
    pred = pred * std + mean
  hidden = mask[:, :, None]
  h, w = views.shape[1:3]
  return {"input": views,
          "corrupted": unpatchify(patches * (1 - hidden), patch, h, w),
          "reconstruction": unpatchify(patches * (1 - hidden) + pred * hidden, patch, h, w)}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                reconstruct=reconstruct)
