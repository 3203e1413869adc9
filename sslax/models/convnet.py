"""A small, fast ConvNet encoder for CPU runs on small images.

Meant for 28x28x1 (Fashion-MNIST) and 32x32x3 (CIFAR) on a couple of CPU cores,
where a ResNet-18 is far too slow. Plain ``conv3x3 -> BN -> ReLU`` layers in
``len(widths)`` stages; stage ``i`` has ``blocks_per_stage`` layers of width
``widths[i]``, and every stage after the first halves the resolution.

Speed notes (XLA CPU, NHWC; see the timings in ``tests/test_models.py``'s
docstring / the PR description): cost is dominated by the full-resolution layers,
so downsampling with a strided conv (the default) beats a max-pool, whose
backward pass (``select_and_scatter``) is slow on CPU, and ``stem_stride=2``
(halving resolution in the first conv) is the largest single speed-up.

Output, for input ``[B, H, W, C]``:
  * ``pool="avg"`` (default): ``[B, widths[-1]]``.
  * ``pool="flatten"``: ``[B, h * w * widths[-1]]`` with
    ``h = ceil(H / (stem_stride * 2 ** (len(widths) - 1)))`` (same for ``w``);
    e.g. 28x28 with the defaults: 7 x 7 x 128 = 6272; with ``stem_stride=2``:
    4 x 4 x 128 = 2048. Keeps spatial layout, which helps linear probes on tiny
    networks at the cost of a larger feature.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, Sequence

import flax.linen as nn
import jax.numpy as jnp

from sslax.models.resnet import PAD1, conv_init


class ConvNet(nn.Module):
  """Stacked conv-BN-ReLU encoder.

  Attributes:
    widths: channels per stage, e.g. ``(32, 64, 128)``.
    blocks_per_stage: conv-BN-ReLU layers per stage.
    stem_stride: stride of the very first conv (1 or 2). 2 quarters the cost of
      every later layer at the price of some accuracy on 28px inputs.
    downsample: how stages after the first halve the resolution: ``"conv"`` makes
      their first conv stride 2, ``"maxpool"`` puts a 2x2 max-pool before it.
    pool: ``"avg"`` (global average pool) or ``"flatten"`` (see module doc).
    bn_axis_name: mesh axis for cross-device BN statistics (see ``ResNet``).
    bn_momentum: running-average decay (flax convention).
    dtype: compute dtype; parameters stay float32.
  """

  widths: Sequence[int] = (32, 64, 128)
  blocks_per_stage: int = 1
  stem_stride: int = 1
  downsample: Literal["conv", "maxpool", "avgpool"] = "conv"
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
        x = nn.Conv(width, (3, 3), strides, padding=PAD1, use_bias=False,
                    kernel_init=conv_init, dtype=self.dtype,
                    name=f"stage{i + 1}_conv{j + 1}")(x)
        x = nn.relu(norm(name=f"stage{i + 1}_bn{j + 1}")(x))

    x = x.astype(jnp.float32)
    if self.pool == "avg":
      return jnp.mean(x, axis=(1, 2))
    return x.reshape(x.shape[0], -1)


def _pool2x2(x, kind: str):
  """2x2/2 max or mean pool, ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C]``.

  Written as reshape + reduce rather than ``nn.max_pool``: XLA CPU lowers the
  latter's gradient to ``select_and_scatter``, which is slow, whereas the
  gradient of a reshape-reduce is a cheap elementwise mask / broadcast.
  Odd sizes are padded at the end (ceil mode) with -inf (max) or edge values
  (mean), so 7 -> 4 like the strided conv.
  """
  B, H, W, C = x.shape
  pad = ((0, 0), (0, H % 2), (0, W % 2), (0, 0))
  if kind == "maxpool":
    x = jnp.pad(x, pad, constant_values=-jnp.inf)
  else:
    x = jnp.pad(x, pad, mode="edge")
  x = x.reshape(B, (H + 1) // 2, 2, (W + 1) // 2, 2, C)
  return x.max(axis=(2, 4)) if kind == "maxpool" else x.mean(axis=(2, 4))
