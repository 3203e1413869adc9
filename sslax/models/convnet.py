"""A small, fast ConvNet encoder for CPU runs on small images.

Meant for 28x28x1 (Fashion-MNIST) and 32x32x3 (CIFAR) on a couple of CPU cores,
where a ResNet-18 is far too slow. Plain ``conv3x3 -> BN -> ReLU`` layers in
``len(widths)`` stages; stage ``i`` has ``blocks_per_stage`` layers of width
``widths[i]``, and every stage after the first halves the resolution.

Speed: one train-mode fwd+bwd step at batch 512 on 28x28x1 (XLA CPU, NHWC,
float32, jit, compile excluded, median of 24; 2 cores shared with other jobs, so
compare ratios, not absolute times). Accuracy proxy: Fashion-MNIST test accuracy
of encoder + linear layer trained supervised for 2 epochs (AdamW, one seed).

    widths          stem_stride  downsample   ms/step   proxy acc
    (32, 64, 128)   1            conv           608
    (32, 64, 128)   1            maxpool        453      0.860
    (32, 64, 128)   1            avgpool        466
    (32, 64, 128)   2            conv           118      0.864
    (32, 64, 128)   2            maxpool        105      0.871   <- defaults
    (32, 64, 128)   2            avgpool        104      0.858
    (64, 128, 256)  2            conv           349
    (64, 128, 256)  2            maxpool        293      0.886
    (64, 128, 256)  1            maxpool       1516

  * Full-resolution layers dominate: ``stem_stride=2`` is 4-5x faster with no
    loss on the (rough) accuracy proxy, so it is the default.
  * A strided 3x3 conv's backward pass is slower than a 2x2 pool + stride-1
    conv (1.3x at full resolution). The pools are reshape + reduce, 10-20x
    faster than ``nn.max_pool`` (see ``_pool2x2``).
  * bfloat16 compute is not faster on this CPU (117 vs 105 ms).

Output, for input ``[B, H, W, C]``:
  * ``pool="avg"`` (default): ``[B, widths[-1]]``.
  * ``pool="flatten"``: ``[B, h * w * widths[-1]]`` with
    ``h = ceil(H / (stem_stride * 2 ** (len(widths) - 1)))`` (same for ``w``);
    e.g. 28x28 or 32x32 with the defaults: 4 x 4 x 128 = 2048; 28x28 with
    ``stem_stride=1``: 7 x 7 x 128 = 6272. Keeps the spatial layout, which can
    help linear probes on tiny networks, at the cost of a larger feature.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslax.models.resnet import PAD1, conv_init


class ConvNet(nn.Module):
  """Stacked conv-BN-ReLU encoder.

  Attributes:
    widths: channels per stage, e.g. ``(32, 64, 128)``.
    blocks_per_stage: conv-BN-ReLU layers per stage.
    stem_stride: stride of the very first conv (1 or 2). 2 quarters the work of
      every later layer (see the table above).
    downsample: how stages after the first halve the resolution: ``"conv"`` makes
      their first conv stride 2; ``"maxpool"`` / ``"avgpool"`` put a 2x2 pool
      before it.
    pool: ``"avg"`` (global average pool) or ``"flatten"`` (see module doc).
    bn_axis_name: mesh axis for cross-device BN statistics (see ``ResNet``).
    bn_momentum: running-average decay (flax convention).
    dtype: compute dtype; parameters stay float32.
  """

  widths: Sequence[int] = (32, 64, 128)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  downsample: Literal["conv", "maxpool", "avgpool"] = "maxpool"
  pool: Literal["avg", "flatten"] = "avg"
  bn_axis_name: str | None = None
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    """``x``: float ``[B, H, W, C]`` -> float32 ``[B, D]`` (D: see module doc)."""
    if self.downsample not in ("conv", "maxpool", "avgpool"):
      raise ValueError("downsample must be 'conv', 'maxpool' or 'avgpool', got "
                       f"{self.downsample!r}")
    if self.pool not in ("avg", "flatten"):
      raise ValueError(f"pool must be 'avg' or 'flatten', got {self.pool!r}")
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
        epsilon=1e-5, dtype=self.dtype, axis_name=self.bn_axis_name)

    x = x.astype(self.dtype)
    for i, width in enumerate(self.widths):
      for j in range(self.blocks_per_stage):
        strides = 1
        if j == 0 and i == 0:
          strides = self.stem_stride
        elif j == 0 and self.downsample == "conv":
          strides = 2
        elif j == 0:
          x = _pool2x2(x, self.downsample)
        # No conv bias: the following BN's shift makes it redundant.
        x = Conv3x3(width, strides, dtype=self.dtype, name=f"stage{i + 1}_conv{j + 1}")(x)
        x = nn.relu(norm(name=f"stage{i + 1}_bn{j + 1}")(x))

    x = x.astype(jnp.float32)
    if self.pool == "avg":
      return jnp.mean(x, axis=(1, 2))
    return x.reshape(x.shape[0], -1)


class Conv3x3(nn.Module):
  """nn.Conv(features, (3, 3), strides, padding 1, no bias), same parameter ("kernel",
  [3, 3, C_in, C_out]), computed as a patch matmul (im2col) on tiny maps.

  Why: XLA CPU's convolution is pathologically slow when the map is smaller than the
  kernel: a 128->256 3x3 conv on 2x2 maps (batch 512) took 140 ms forward and 267 ms
  forward + backward, against 3.4 / 10.9 ms as nine shifted copies and one matmul; on
  4x4 and larger maps the convolution is faster (16 / 48 ms vs 31 / 73 ms at 4x4).
  Multi-crop local views (12 px) reach 2x2 in the last stage of the default ConvNet.
  """
  features: int
  strides: int = 1
  dtype: Any = jnp.float32
  im2col_max_side: int = 2  # patch matmul when stride 1 and H, W <= this

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", conv_init, (3, 3, x.shape[-1], self.features), jnp.float32)
    kernel = kernel.astype(self.dtype)
    _, height, width, channels = x.shape
    if self.strides == 1 and max(height, width) <= self.im2col_max_side:
      padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
      patches = jnp.concatenate(
          [padded[:, i:i + height, j:j + width, :] for i in range(3) for j in range(3)], axis=-1)
      return patches @ kernel.reshape(9 * channels, self.features)
    return jax.lax.conv_general_dilated(
        x, kernel, (self.strides, self.strides), PAD1, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _pool2x2(x, kind: str):
  """2x2/2 max or mean pool, ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C]``.

  Written as reshape + reduce rather than ``nn.max_pool``: XLA CPU lowers the
  latter's gradient to ``select_and_scatter``, which is slow, whereas the
  gradient of a reshape-reduce is a cheap elementwise mask / broadcast.
  Odd sizes are padded at the end (ceil mode) with -inf (max) or edge values
  (mean), so 7 -> 4 like the strided conv.
  """
  B, H, W, C = x.shape
  if H % 2 or W % 2:  # (padding only when needed: even a no-op edge pad is slow)
    pad = ((0, 0), (0, H % 2), (0, W % 2), (0, 0))
    if kind == "maxpool":
      x = jnp.pad(x, pad, constant_values=-jnp.inf)
    else:
      x = jnp.pad(x, pad, mode="edge")
  x = x.reshape(B, (H + 1) // 2, 2, (W + 1) // 2, 2, C)
  return x.max(axis=(2, 4)) if kind == "maxpool" else x.mean(axis=(2, 4))
