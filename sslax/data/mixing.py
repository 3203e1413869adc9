"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on the device, as timm's `Mixup`
in mode "batch" mixes them for MAE's fine-tuning (mae/main_finetune.py: mixup 0.8, cutmix
1.0, prob 1.0, switch_prob 0.5, label smoothing 0.1; timm/data/mixup.py):

  * one draw per batch: with probability `prob` the batch is mixed; when both alphas are
    > 0, CutMix with probability `switch_prob`, else Mixup; lambda ~ Beta(alpha, alpha) of
    the one chosen;
  * each example is mixed with its partner in the batch reversed (`x.flip(0)`);
  * Mixup: lambda * x + (1 - lambda) * partner;
  * CutMix: a box of sides int(H sqrt(1 - lambda)), int(W sqrt(1 - lambda)) centred on a
    uniform pixel (cy, cx), clipped to the image, takes the partner's pixels; lambda is then
    corrected to the fraction of the image left unboxed, 1 - box area / (H W);
  * targets: lambda * smooth(y) + (1 - lambda) * smooth(y_partner), smooth(y) = (1 - eps)
    onehot(y) + eps / C (timm's on value 1 - eps + eps / C, off value eps / C).

Written here rather than taken from a library: timm's is PyTorch and NumPy on the host,
and neither optax nor dm-pix has Mixup or CutMix. The partner is the reversed *global*
batch (`parallel.reverse_global_batch`), so a step does not depend on the device count.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class MixParams:
  """One batch's draw: lam, the fraction of each target from the example itself (after
  CutMix's correction; 1: not mixed), and the CutMix box [y0, y1) x [x0, x1) (CutMix only)."""
  lam: jax.Array        # float32 scalar
  use_cutmix: jax.Array  # bool scalar
  box: jax.Array        # int32 [4]: y0, y1, x0, x1


def cutmix_box(key: jax.Array, lam: jax.Array, height: int, width: int) -> jax.Array:
  """timm's rand_bbox (margin 0): -> int32 [y0, y1, x0, x1]."""
  ratio = jnp.sqrt(1.0 - lam)
  cut_h = jnp.floor(height * ratio).astype(jnp.int32)
  cut_w = jnp.floor(width * ratio).astype(jnp.int32)
  key_y, key_x = jax.random.split(key)
  cy = jax.random.randint(key_y, (), 0, height)
  cx = jax.random.randint(key_x, (), 0, width)
  return jnp.stack([jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height),
                    jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width)])


def box_lambda(box: jax.Array, height: int, width: int) -> jax.Array:
  """CutMix's corrected lambda: the fraction of the image outside the box."""
  area = (box[1] - box[0]) * (box[3] - box[2])
  return 1.0 - area.astype(jnp.float32) / (height * width)


def sample_mix(key: jax.Array, *, mixup_alpha: float, cutmix_alpha: float, prob: float,
               switch_prob: float, height: int, width: int) -> MixParams:
  """One batch's MixParams (timm's Mixup._params_per_batch and cutmix_bbox_and_lam)."""
  if mixup_alpha <= 0 and cutmix_alpha <= 0:
    return MixParams(jnp.float32(1.0), jnp.bool_(False), jnp.zeros(4, jnp.int32))
  key_apply, key_switch, key_mixup, key_cutmix, key_box = jax.random.split(key, 5)
  if mixup_alpha > 0 and cutmix_alpha > 0:
    use_cutmix = jax.random.uniform(key_switch) < switch_prob
  else:
    use_cutmix = jnp.bool_(cutmix_alpha > 0)
  lam_mixup = jax.random.beta(key_mixup, mixup_alpha, mixup_alpha) if mixup_alpha > 0 else 1.0
  lam_cutmix = jax.random.beta(key_cutmix, cutmix_alpha, cutmix_alpha) if cutmix_alpha > 0 else 1.0
  box = cutmix_box(key_box, lam_cutmix, height, width)
  lam = jnp.where(use_cutmix, box_lambda(box, height, width), lam_mixup)
  applied = jax.random.uniform(key_apply) < prob
  return MixParams(lam=jnp.where(applied, lam, 1.0).astype(jnp.float32),
                   use_cutmix=use_cutmix & applied, box=box)


def mix_images(images: jax.Array, partners: jax.Array, params: MixParams) -> jax.Array:
  """images, partners [B, H, W, C] -> the mixed batch: the box pasted from the partners
  (CutMix) or the lam-weighted average (Mixup; lam 1 leaves the images as they are)."""
  height, width = images.shape[1:3]
  rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
  y0, y1, x0, x1 = params.box
  inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
  cut = jnp.where(inside[None, :, :, None], partners, images)
  blended = params.lam * images + (1.0 - params.lam) * partners
  return jnp.where(params.use_cutmix, cut, blended.astype(images.dtype))


def mixed_targets(labels: jax.Array, partner_labels: jax.Array, lam: jax.Array,
                  num_classes: int, smoothing: float) -> jax.Array:
  """[B] int labels -> [B, num_classes] soft targets (timm's mixup_target)."""
  def smooth(y):
    return jax.nn.one_hot(y, num_classes) * (1.0 - smoothing) + smoothing / num_classes
  return lam * smooth(labels) + (1.0 - lam) * smooth(partner_labels)
