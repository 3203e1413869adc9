"""ResNet encoders (v1.5, torchvision layout) with cross-device BatchNorm.

The layout follows torchvision's ``resnet18/34/50`` exactly (stride on the 3x3
conv of the bottleneck, "v1.5"; bias-free convs; 1x1-conv + BN projection
shortcuts), so that parameter counts match torchvision's backbones without the
``fc`` layer: ResNet-18 11,176,512, ResNet-34 21,284,672, ResNet-50 23,508,032.

Self-supervised methods compare embeddings across the whole batch, so BatchNorm
must see the *global* batch: pass ``bn_axis_name="data"`` and call the model
inside ``jax.shard_map`` over that mesh axis; BatchNorm then ``pmean``s its
statistics over the axis (SimCLR's "global BN").

Input is NHWC float ``[B, H, W, C]``; output is globally average-pooled features
``[B, D]`` in float32, with ``D = 512 * w`` (basic) or ``2048 * w`` (bottleneck)
for the default ``num_filters=64`` and width multiplier ``w``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Literal, Sequence

import flax.linen as nn
import jax.numpy as jnp

# torchvision initialises convs with kaiming_normal(mode="fan_out", relu).
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

# Explicit symmetric padding, as in PyTorch. "SAME" would pad (2, 3) / (0, 1) for
# stride-2 layers on even inputs, shifting every feature map by half a pixel.
PAD1 = ((1, 1), (1, 1))
PAD3 = ((3, 3), (3, 3))


class BasicBlock(nn.Module):
  """Two 3x3 convs (ResNet-18/34). ``[B, H, W, C] -> [B, H/s, W/s, filters]``."""

  filters: int
  strides: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]
  zero_init_last_bn: bool = True

  expansion = 1

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (3, 3), self.strides, padding=PAD1)(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, (3, 3), 1, padding=PAD1)(y)
    # Zero-init of the last BN scale makes every block start as the identity,
    # which helps large-batch training (Goyal et al., 2017).
    y = self.norm(scale_init=_last_bn_scale_init(self.zero_init_last_bn))(y)
    residual = _shortcut(residual, y.shape[-1], self.strides, self.conv, self.norm)
    return nn.relu(residual + y)


class BottleneckBlock(nn.Module):
  """1x1 -> 3x3 (strided) -> 1x1 convs (ResNet-50+).

  ``[B, H, W, C] -> [B, H/s, W/s, 4 * filters]``.
  """

  filters: int
  strides: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]
  zero_init_last_bn: bool = True

  expansion = 4

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (1, 1))(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, (3, 3), self.strides, padding=PAD1)(y)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters * self.expansion, (1, 1))(y)
    y = self.norm(scale_init=_last_bn_scale_init(self.zero_init_last_bn))(y)
    residual = _shortcut(residual, y.shape[-1], self.strides, self.conv, self.norm)
    return nn.relu(residual + y)


def _last_bn_scale_init(zero_init: bool):
  return nn.initializers.zeros if zero_init else nn.initializers.ones


def _shortcut(x, features: int, strides: int, conv, norm):
  """Identity, or a 1x1-conv + BN projection when the shape changes."""
  if x.shape[-1] == features and strides == 1:
    return x
  x = conv(features, (1, 1), strides, name="proj_conv")(x)
  return norm(name="proj_bn")(x)


BLOCKS = {"basic": BasicBlock, "bottleneck": BottleneckBlock}


class ResNet(nn.Module):
  """ResNet backbone without the classifier.

  Attributes:
    stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
    block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50+).
    num_filters: width of the first stage before ``width_multiplier``.
    width_multiplier: scales every width, stem included (SimCLR's ResNet-50 (2x),
      (4x)).
    stem: ``"imagenet"``: 7x7/2 conv + 3x3/2 max-pool (224px -> 56px);
      ``"cifar"``: 3x3/1 conv and no pool, as SimCLR / solo-learn do for 32x32
      images, which would otherwise be reduced to 8x8 before the first stage.
    bn_axis_name: mesh axis over which BatchNorm averages its statistics (e.g.
      ``"data"`` under ``jax.shard_map``); ``None`` for per-device statistics.
    bn_momentum: running-average decay (flax convention: 0.9 == PyTorch 0.1).
    zero_init_last_bn: zero-init the last BN scale of each residual block.
    remat: recompute each residual block in the backward pass (``nn.remat``) instead
      of keeping its activations: only block inputs stay in memory, for about one
      more forward pass of compute. Parameters and results are unchanged.
    dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
  """

  stage_sizes: Sequence[int]
  block: Literal["basic", "bottleneck"] = "basic"
  num_filters: int = 64
  width_multiplier: float = 1.0
  stem: Literal["imagenet", "cifar"] = "imagenet"
  bn_axis_name: str | None = None
  bn_momentum: float = 0.9
  zero_init_last_bn: bool = True
  remat: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    """``x``: float ``[B, H, W, C]`` -> float32 features ``[B, D]``."""
    if self.block not in BLOCKS:
      raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {self.block!r}")
    # Per block, not around the whole network: remat of the whole backbone would
    # recompute it all and then hold every activation at once in the backward pass.
    block_cls = nn.remat(BLOCKS[self.block]) if self.remat else BLOCKS[self.block]
    conv = functools.partial(
        nn.Conv, use_bias=False, kernel_init=conv_init, dtype=self.dtype,
        padding="VALID")  # every conv states its padding; 1x1 convs need none.
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
        epsilon=1e-5, dtype=self.dtype, axis_name=self.bn_axis_name)
    width = int(self.num_filters * self.width_multiplier)

    x = x.astype(self.dtype)
    if self.stem == "imagenet":
      x = conv(width, (7, 7), 2, padding=PAD3, name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
      # flax's max_pool pads with -inf, as PyTorch's MaxPool2d(3, 2, padding=1).
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=PAD1)
    elif self.stem == "cifar":
      x = conv(width, (3, 3), 1, padding=PAD1, name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
    else:
      raise ValueError(f"stem must be 'imagenet' or 'cifar', got {self.stem!r}")

    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        # Downsample at the first block of every stage but the first.
        strides = 2 if i > 0 and j == 0 else 1
        x = block_cls(
            filters=width * 2**i, strides=strides, conv=conv, norm=norm,
            zero_init_last_bn=self.zero_init_last_bn,
            name=f"stage{i + 1}_block{j + 1}")(x)

    # Pool in float32: a bf16 sum over 7x7 (or 32x32) positions loses precision.
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


resnet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block="basic")
resnet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="basic")
resnet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck")
