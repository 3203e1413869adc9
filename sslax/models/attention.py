"""Multi-head self-attention: the one attention implementation of the library (the ViT,
MAE's decoder, data2vec and the sequence Transformers all use it).

The scores go through `jax.nn.dot_product_attention`, which XLA fuses on every backend
and which takes `implementation="cudnn"` for cuDNN's flash attention on NVIDIA GPUs
(bf16/fp16 inputs); "xla" (the default when None) runs everywhere, this CPU included.
With bfloat16 inputs the logits are accumulated and the softmax taken in float32 (by
`jax.nn.dot_product_attention` itself), so a bf16 compute policy keeps softmax in fp32.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# Inputs [B, T, D]; heads split D into num_heads x (D / num_heads), as Vaswani et al. 2017.


def _dense_init():
  return nn.initializers.xavier_uniform()  # timm's ViT / MAE init of qkv and projections


class MultiHeadAttention(nn.Module):
  """softmax(Q K^T / sqrt(d_head) + mask) V over num_heads heads, then an output projection.

  Attributes:
    num_heads: heads; the width of x must be a multiple of it.
    causal: each position attends only to itself and earlier ones (GPT, APC-style models).
    implementation: `jax.nn.dot_product_attention`'s: None (XLA), "xla" or "cudnn".
    dtype: compute dtype; parameters stay float32.
  """
  num_heads: int
  causal: bool = False
  implementation: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """x: [B, T, D]; mask: [B, T] bool, True = a real token (padding is never attended to).
    -> [B, T, D]."""
    width = x.shape[-1]
    if width % self.num_heads:
      raise ValueError(f"width {width} is not a multiple of num_heads={self.num_heads}")
    head_dim = width // self.num_heads
    qkv = nn.DenseGeneral((3, self.num_heads, head_dim), kernel_init=_dense_init(),
                          dtype=self.dtype, name="qkv")(x)      # [B, T, 3, H, d]
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    attn_mask = None if mask is None else mask[:, None, None, :]  # [B, 1, 1(query), T(key)]
    out = jax.nn.dot_product_attention(q, k, v, mask=attn_mask, is_causal=self.causal,
                                       implementation=self.implementation)
    return nn.DenseGeneral(width, axis=(-2, -1), kernel_init=_dense_init(), dtype=self.dtype,
                           name="out")(out)
