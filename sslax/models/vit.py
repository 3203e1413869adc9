"""Vision Transformer (Dosovitskiy et al. 2021), pre-norm, as in MAE / timm.

  image [B, H, W, C] --patch_embed (p x p conv, stride p)--> tokens [B, N, D], N = (H/p)(W/p)
  + position embeddings (learned, or fixed 2-D sin-cos as MAE / MoCo v3)
  [CLS token] + tokens --depth x Block--> LayerNorm --pool--> [B, D]

Block (pre-norm): x + MHA(LN(x)), then x + MLP(LN(x)), MLP = Dense(mlp_dim) GELU Dense(D).
Pooling: the CLS token's output ("cls"), the mean of the patch tokens ("avg", without a
CLS token, as big_vision's "gap"), or MAE's fine-tuning pool ("gap": the CLS token stays in
the sequence, the patch tokens' block outputs are averaged, then the final LayerNorm, as
mae/models_vit.py with global_pool: there the norm is a fresh `fc_norm`, here `norm`, which
sslax/evaluate/finetune.py resets to (1, 0) for this pool).

Stochastic depth (drop path; Huang et al. 2016, as timm's `DropPath`): with
`drop_path_rate` p > 0, in training, block i of L drops its attention and its MLP branch
each, per example, with rate p * i / (L - 1) (timm's `torch.linspace(0, p, L)`), and scales
a kept branch by 1 / (1 - rate). The draws come from per-example keys (`drop_keys` [B],
derived from each example's global position by the caller, so a run gives the same result
on any device count) or, without them, from the Flax rng stream "drop_path". Off (p = 0) by
default, and always off outside training.

Parameter layout (what layer-wise learning-rate decay reads): `patch_embed`, `pos_embed`,
`cls`, `block_0` .. `block_{depth-1}`, `norm`.

Beyond `__call__`, the pieces self-prediction methods need: `embed` (patches with
position embeddings), `transform` (CLS + blocks + norm on any subset of tokens: MAE's
encoder sees only the visible ones) and `block_outputs` (every block's MLP output,
data2vec's targets).

Sizes (Dosovitskiy et al. 2021 table 1; Tiny/Small from DeiT, Touvron et al. 2021):
`vit_tiny` 192 wide, 12 deep, 3 heads; `vit_small` 384, 12, 6; `vit_base` 768, 12, 12;
MLP 4x wide. The model has no BatchNorm; `bn_axis_name` is accepted so every encoder
builds alike.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sslax.models.attention import MultiHeadAttention
from sslax.models.layers import gelu


def sincos_2d(height: int, width: int, dim: int) -> np.ndarray:
  """Fixed 2-D sin-cos position embeddings [height * width, dim] (MAE's
  get_2d_sincos_pos_embed): half the channels encode the row, half the column, each as
  sin and cos of the position times 1 / 10000^(2i / (dim/2))."""
  if dim % 4:
    raise ValueError(f"sin-cos position embeddings need a width divisible by 4, got {dim}")
  quarter = dim // 4
  omega = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")

  def encode(pos):
    angles = pos.reshape(-1)[:, None] * omega[None]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
  return np.concatenate([encode(rows), encode(cols)], axis=1).astype(np.float32)


class PositionEmbedding(nn.Module):
  """Adds position embeddings to patch tokens [B, h*w, D] laid out row by row."""
  kind: Literal["learned", "sincos2d"] = "sincos2d"

  @nn.compact
  def __call__(self, tokens: jax.Array, grid: tuple[int, int]) -> jax.Array:
    n, dim = tokens.shape[1:]
    if self.kind == "sincos2d":
      return tokens + jnp.asarray(sincos_2d(*grid, dim), tokens.dtype)
    if self.kind == "learned":
      table = self.param("embedding", nn.initializers.normal(stddev=0.02), (n, dim))
      return tokens + table.astype(tokens.dtype)
    raise ValueError(f"posemb={self.kind!r}: use 'learned' or 'sincos2d'")


class MlpBlock(nn.Module):
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    dense = functools.partial(nn.Dense, kernel_init=nn.initializers.xavier_uniform(),
                              dtype=self.dtype)
    return dense(x.shape[-1], name="fc2")(gelu(dense(self.mlp_dim, name="fc1")(x)))


def drop_path(x: jax.Array, keys: jax.Array | None, rate: float) -> jax.Array:
  """x [B, ...] with each example's branch zeroed with probability `rate` and kept ones
  scaled by 1 / (1 - rate) (timm's drop_path, scale_by_keep); keys [B] one per example,
  None: x unchanged."""
  if keys is None or rate == 0.0:
    return x
  keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - rate))(keys)
  scale = jnp.where(keep, 1.0 / (1.0 - rate), 0.0).astype(x.dtype)
  return x * scale.reshape((-1,) + (1,) * (x.ndim - 1))


class Block(nn.Module):
  """Pre-norm transformer block; -> (output, the MLP's output before its residual add).
  drop_keys [B] (one per example) turn on stochastic depth at rate `drop_path`."""
  num_heads: int
  mlp_dim: int
  causal: bool = False
  attention_impl: str | None = None
  dtype: Any = jnp.float32
  drop_path: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None,
               drop_keys: jax.Array | None = None):
    norm = functools.partial(nn.LayerNorm, epsilon=1e-6, dtype=self.dtype)
    attn_keys = mlp_keys = None
    if drop_keys is not None:
      attn_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(drop_keys)
      mlp_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(drop_keys)
    attn_out = MultiHeadAttention(self.num_heads, causal=self.causal, implementation=self.attention_impl,
                                  dtype=self.dtype, name="attn")(norm(name="norm1")(x), mask)
    x = x + drop_path(attn_out, attn_keys, self.drop_path)
    mlp_out = MlpBlock(self.mlp_dim, dtype=self.dtype, name="mlp")(norm(name="norm2")(x))
    return x + drop_path(mlp_out, mlp_keys, self.drop_path), mlp_out


class ViT(nn.Module):
  """Attributes:
    patch_size: p; the image sides must be multiples of it.
    hidden_dim, depth, num_heads, mlp_dim: width D, blocks, heads, MLP width (0: 4 D).
    pool: "cls" (CLS token output), "avg" (mean of the patch tokens, no CLS token) or
      "gap" (MAE's fine-tuning pool: CLS in the sequence, LayerNorm of the patch tokens' mean).
    posemb: "sincos2d" (fixed) or "learned".
    attention_impl: "xla" (any backend) or "cudnn" (fused flash attention on NVIDIA GPUs).
    remat: recompute each block in the backward pass instead of storing its activations.
    drop_path_rate: stochastic depth of the last block (0: off); block i takes i / (L - 1) of it.
  """
  patch_size: int = 16
  hidden_dim: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_dim: int = 0
  pool: Literal["cls", "avg", "gap"] = "cls"
  posemb: Literal["learned", "sincos2d"] = "sincos2d"
  attention_impl: str = "xla"
  remat: bool = False
  drop_path_rate: float = 0.0
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None  # unused: no BatchNorm

  def setup(self):
    if self.pool not in ("cls", "avg", "gap"):
      raise ValueError(f"pool={self.pool!r}: use 'cls', 'avg' or 'gap'")
    p = self.patch_size
    self.patch_embed = nn.Conv(self.hidden_dim, (p, p), strides=(p, p), padding="VALID",
                               kernel_init=nn.initializers.xavier_uniform(), dtype=self.dtype)
    self.pos_embed = PositionEmbedding(self.posemb)
    if self.has_cls:
      self.cls = self.param("cls", nn.initializers.normal(stddev=0.02), (1, 1, self.hidden_dim))
    block = nn.remat(Block) if self.remat else Block
    # timm's linear stochastic-depth rule: torch.linspace(0, drop_path_rate, depth).
    rates = np.linspace(0.0, self.drop_path_rate, self.depth)
    self.blocks = [block(self.num_heads, self.mlp_dim or 4 * self.hidden_dim,
                         attention_impl=self.attention_impl, dtype=self.dtype,
                         drop_path=float(rates[i]), name=f"block_{i}")
                   for i in range(self.depth)]
    self.norm = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)

  def grid(self, x: jax.Array) -> tuple[int, int]:
    h, w = x.shape[1:3]
    if h % self.patch_size or w % self.patch_size:
      raise ValueError(f"image {h}x{w} is not a multiple of patch_size={self.patch_size}: "
                       "set config.model.patch_size to a divisor of config.data.image_size")
    return h // self.patch_size, w // self.patch_size

  def embed(self, x: jax.Array, mask: jax.Array | None = None,
            mask_token: jax.Array | None = None) -> jax.Array:
    """x [B, H, W, C] -> patch tokens with position embeddings [B, N, D], row by row.
    With mask [B, N] (True = hidden) the hidden patches' embeddings are replaced by
    mask_token [D] before the position embeddings are added (BEiT, data2vec)."""
    self.grid(x)  # a clear error for sides that are not multiples of the patch
    tokens = self.patch_embed(x.astype(self.dtype))
    b, h, w, d = tokens.shape
    tokens = tokens.reshape(b, h * w, d)
    if mask is not None:
      tokens = jnp.where(mask[:, :, None], mask_token.astype(tokens.dtype), tokens)
    return self.pos_embed(tokens, (h, w))

  @property
  def has_cls(self) -> bool:
    return self.pool in ("cls", "gap")

  def with_cls(self, tokens: jax.Array) -> jax.Array:
    if not self.has_cls:
      return tokens
    cls = jnp.broadcast_to(self.cls.astype(tokens.dtype), (tokens.shape[0], 1, tokens.shape[2]))
    return jnp.concatenate([cls, tokens], axis=1)

  def run_blocks(self, tokens: jax.Array, drop_keys: jax.Array | None = None) -> jax.Array:
    """Patch tokens [B, n, D] -> [B, n (+1 CLS first), D] after the blocks, before the
    final LayerNorm; drop_keys [B]: stochastic depth (see the module doc)."""
    x = self.with_cls(tokens)
    for i, block in enumerate(self.blocks):
      keys = None if drop_keys is None else jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(drop_keys)
      x, _ = block(x, None, keys)
    return x

  def transform(self, tokens: jax.Array, drop_keys: jax.Array | None = None) -> jax.Array:
    """Patch tokens [B, n, D] (any subset) -> [B, n (+1 CLS first), D] after the blocks
    and the final LayerNorm."""
    return self.norm(self.run_blocks(tokens, drop_keys))

  def block_outputs(self, tokens: jax.Array) -> list[jax.Array]:
    """Patch tokens [B, N, D] -> every block's MLP output before its residual add (data2vec's
    targets), patch positions only: `depth` arrays [B, N, D]."""
    x, outputs = self.with_cls(tokens), []
    for block in self.blocks:
      x, mlp_out = block(x)
      outputs.append(mlp_out[:, 1:] if self.has_cls else mlp_out)
    return outputs

  def pool_tokens(self, x: jax.Array) -> jax.Array:
    if self.pool == "cls":
      return x[:, 0]
    return jnp.mean(x[:, 1:] if self.has_cls else x, axis=1)

  def __call__(self, x: jax.Array, train: bool = True,
               drop_keys: jax.Array | None = None) -> jax.Array:
    """x [B, H, W, C] -> pooled features [B, D] (float32). drop_keys [B]: the per-example
    keys of stochastic depth (used only when training with drop_path_rate > 0)."""
    if not train or self.drop_path_rate == 0.0:
      drop_keys = None
    elif drop_keys is None:
      drop_keys = jax.random.split(self.make_rng("drop_path"), x.shape[0])
    tokens = self.embed(x)
    if self.pool == "gap":
      return self.norm(jnp.mean(self.run_blocks(tokens, drop_keys)[:, 1:], axis=1)).astype(jnp.float32)
    return self.pool_tokens(self.transform(tokens, drop_keys)).astype(jnp.float32)


vit_tiny = functools.partial(ViT, hidden_dim=192, depth=12, num_heads=3)
vit_small = functools.partial(ViT, hidden_dim=384, depth=12, num_heads=6)
vit_base = functools.partial(ViT, hidden_dim=768, depth=12, num_heads=12)
