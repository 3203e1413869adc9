"""MLP heads: SimCLR projection heads, BYOL projector / predictor.

* SimCLR v1: ``MLP((2048,), 128)``            (Dense-BN-ReLU, Dense)
* SimCLR v2: ``MLP((2048, 2048), 128, last_bn=True)``
* BYOL projector / predictor: ``MLP((4096,), 256)``

Input ``[B, D_in]`` -> output ``[B, out_dim]``.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
  """``Dense -> BN -> ReLU`` per hidden layer, then ``Dense`` (``-> BN`` if last_bn).

  Attributes:
    hidden_dims: widths of the hidden layers (may be empty: a linear head).
    out_dim: output width.
    use_bn: BatchNorm after each hidden Dense. Dense layers followed by BN have no
      bias, since BN's shift makes it redundant.
    last_bn: BatchNorm on the output too (SimCLR v2). As in SimCLR's code it has a
      learned scale but no shift (``center=False``): a per-feature offset would
      only move every embedding by the same vector.
    bn_axis_name: mesh axis for cross-device BN statistics (see ``ResNet``).
    bn_momentum: running-average decay (flax convention).
    dtype: compute dtype; parameters stay float32.
  """

  hidden_dims: Sequence[int]
  out_dim: int
  use_bn: bool = True
  last_bn: bool = False
  bn_axis_name: str | None = None
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    """``x``: ``[B, D_in]`` -> float32 ``[B, out_dim]``."""
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
        epsilon=1e-5, dtype=self.dtype, axis_name=self.bn_axis_name)
    for i, width in enumerate(self.hidden_dims):
      x = nn.Dense(width, use_bias=not self.use_bn, dtype=self.dtype,
                   name=f"dense{i + 1}")(x)
      if self.use_bn:
        x = norm(name=f"bn{i + 1}")(x)
      x = nn.relu(x)
    x = nn.Dense(self.out_dim, use_bias=not self.last_bn, dtype=self.dtype,
                 name="dense_out")(x)
    if self.last_bn:
      x = norm(use_bias=False, name="bn_out")(x)
    # Losses (cosine similarities, softmax over the batch) want float32.
    return x.astype(jnp.float32)
