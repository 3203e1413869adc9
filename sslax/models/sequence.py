"""Networks over sequences: frames x [B, T, F] float (speech features, image rows) or
tokens x [B, T] int (words), each with a padding mask [B, T] bool (True = real; the
padding follows the real positions).

* `GRUStack`: unidirectional multi-layer GRU, APC's network (Chung, Hsu, Tang, Glass 2019:
  3 layers, residual connections between consecutive layers of equal width).
* `SequenceTransformer`: input projection (Dense for frames, Embed for tokens), positions,
  pre-norm `vit.Block`s, final LayerNorm. causal=True: GPT-style; False: BERT /
  Mockingjay-style.
* `FrameEncoder`, `CPCEncoder`, `CPCPredictors`: contrastive predictive coding's g_enc
  (per-frame MLP, or strided 1-D convolutions over a raw waveform), g_ar (a GRU) and the
  K linear maps W_k (van den Oord, Li, Vinyals 2018).
* `SkipGramEmbeddings`: word2vec's input and output embedding tables.
* `masked_mean`: the mean over real positions, every model's evaluated representation.

Each encoder's `__call__(x, mask, train)` returns per-position states [B, T, D]
(`CPCEncoder`: (z, c, mask); `SkipGramEmbeddings`: both tables' vectors) and
`encode(x, mask, train)` a masked mean [B, D]. Padding never reaches a real
position: the GRUs are causal and padding follows the real frames; attention never
attends to a padded key. Outputs at padded positions are set to 0. None of these models
has BatchNorm; `bn_axis_name` is accepted so every encoder builds alike.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sslax.models.vit import Block


def masked_mean(h: jax.Array, mask: jax.Array | None) -> jax.Array:
  """h [B, T, D], mask [B, T] bool -> the mean of h over the real positions [B, D]
  (0 for a sequence with none). mask None: every position is real."""
  if mask is None:
    return jnp.mean(h, axis=1)
  weights = mask.astype(h.dtype)[:, :, None]
  # where, not h * weights: a padded position holding inf or NaN must not leak in.
  total = jnp.sum(jnp.where(weights > 0, h, 0), axis=1)
  return total / jnp.maximum(jnp.sum(weights, axis=1), 1)


def _zero_padding(h: jax.Array, mask: jax.Array | None) -> jax.Array:
  return h if mask is None else jnp.where(mask[:, :, None], h, 0)


def _full_mask(x: jax.Array, mask: jax.Array | None) -> jax.Array:
  return jnp.ones(x.shape[:2], bool) if mask is None else mask.astype(bool)


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
  """Vaswani et al. 2017's fixed position encodings [length, dim]: sin on the first half of
  the channels, cos on the second, at frequencies 1 / 10000^(2i / dim)."""
  if dim % 2:
    raise ValueError(f"sinusoidal positions need an even width, got {dim}")
  omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim // 2))
  angles = np.arange(length, dtype=np.float64)[:, None] * omega[None]
  return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


class GRUStack(nn.Module):
  """A unidirectional GRU of num_layers layers, x [B, T, F] -> [B, T, hidden_dim].

  residual: every layer after the first adds its input (the layer below's output, as wide)
  to its output, as APC's official code does.
  vocab_size > 0: x are token ids [B, T], embedded hidden_dim wide first.
  """
  hidden_dim: int = 512
  num_layers: int = 3
  residual: bool = True
  vocab_size: int = 0
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None  # unused: no BatchNorm

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    del train  # no dropout or BatchNorm
    if self.vocab_size:
      x = nn.Embed(self.vocab_size, self.hidden_dim, embedding_init=nn.initializers.normal(0.02),
                   name="token_embed")(x.astype(jnp.int32))
    h = x.astype(self.dtype)
    # Zeros computed from the input (a sum over no frames), not a constant: inside shard_map
    # they are typed device-varying like the carry the scan returns, which check_vma demands.
    carry = jnp.broadcast_to(jnp.sum(h[:, :0, :1], axis=1), (h.shape[0], self.hidden_dim))
    for i in range(self.num_layers):
      # No seq_lengths: the recurrence runs on into the padding, which comes after every
      # real frame, so real positions never see it.
      out = nn.RNN(nn.GRUCell(self.hidden_dim, dtype=self.dtype, name=f"gru_{i}"))(
          h, initial_carry=carry.astype(h.dtype))
      h = out + h if self.residual and i > 0 else out
    return _zero_padding(h.astype(jnp.float32), mask)

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the masked mean of the top layer's states [B, hidden_dim]."""
    return masked_mean(self(x, mask, train=train), mask)


class SequenceTransformer(nn.Module):
  """Pre-norm Transformer over frames or tokens, -> [B, T, hidden_dim] after a final LayerNorm.

  Attributes:
    hidden_dim, depth, num_heads, mlp_dim: width D, blocks, heads, MLP width (0: 4 D).
    causal: position t attends to positions <= t only (GPT); False: to every real one (BERT).
    vocab_size: 0 for frames [B, T, F] (a Dense input projection); > 0 for token ids
      [B, T] (an embedding table, which `logits` reuses as the output layer).
    max_length: the longest sequence the position embeddings cover.
    posemb: "learned" (BERT, GPT) or "sinusoidal" (Vaswani et al. 2017, Mockingjay).
  Parameter layout: `token_embed` or `frame_embed`, `pos_embed`, `block_0` ..
  `block_{depth-1}`, `norm`.
  """
  hidden_dim: int = 256
  depth: int = 4
  num_heads: int = 4
  mlp_dim: int = 0
  causal: bool = False
  vocab_size: int = 0
  max_length: int = 512
  posemb: Literal["learned", "sinusoidal"] = "learned"
  attention_impl: str | None = "xla"
  remat: bool = False
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None  # unused: no BatchNorm

  def setup(self):
    if self.posemb not in ("learned", "sinusoidal"):
      raise ValueError(f"posemb={self.posemb!r}: use 'learned' or 'sinusoidal'")
    if self.vocab_size:
      # BERT's and GPT-2's N(0, 0.02): small logits at the start through the tied output layer.
      self.token_embed = nn.Embed(self.vocab_size, self.hidden_dim,
                                  embedding_init=nn.initializers.normal(0.02))
    else:
      self.frame_embed = nn.Dense(self.hidden_dim, kernel_init=nn.initializers.xavier_uniform(),
                                  dtype=self.dtype)
    if self.posemb == "learned":
      self.pos_embed = self.param("pos_embed", nn.initializers.normal(stddev=0.02),
                                  (self.max_length, self.hidden_dim))
    block = nn.remat(Block) if self.remat else Block
    self.blocks = [block(self.num_heads, self.mlp_dim or 4 * self.hidden_dim, causal=self.causal,
                         attention_impl=self.attention_impl, dtype=self.dtype, name=f"block_{i}")
                   for i in range(self.depth)]
    self.norm = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)

  def embed(self, x: jax.Array) -> jax.Array:
    """Frames [B, T, F] or tokens [B, T] -> inputs with positions [B, T, D]."""
    length = x.shape[1]
    if length > self.max_length:
      raise ValueError(f"sequence of {length} positions is longer than max_length="
                       f"{self.max_length}: raise config.model.max_length")
    if self.vocab_size:
      h = self.token_embed(x.astype(jnp.int32)).astype(self.dtype)
    else:
      h = self.frame_embed(x.astype(self.dtype))
    if self.posemb == "learned":
      return h + self.pos_embed[:length].astype(h.dtype)
    return h + jnp.asarray(sinusoidal_positions(length, self.hidden_dim), h.dtype)

  def transform(self, h: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Embedded inputs [B, T, D] -> the blocks and the final LayerNorm [B, T, D] (float32)."""
    for block in self.blocks:
      h, _ = block(h, mask)
    return _zero_padding(self.norm(h).astype(jnp.float32), mask)

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    del train  # no dropout or BatchNorm
    return self.transform(self.embed(x), mask)

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the masked mean of the final hidden states [B, D]."""
    return masked_mean(self(x, mask, train=train), mask)

  def logits(self, h: jax.Array) -> jax.Array:
    """Hidden states [..., D] -> scores over the vocabulary [..., vocab_size] through the
    input embedding table (tied weights, as BERT and GPT-2)."""
    if not self.vocab_size:
      raise ValueError("logits needs a token model (vocab_size > 0)")
    return self.token_embed.attend(h.astype(jnp.float32))


class FrameEncoder(nn.Module):
  """CPC's g_enc, z_t = g_enc(x_t).

  conv_strides empty: a per-frame MLP (hidden_dims, ReLU, then out_dim) on feature frames
  [B, T, F]. Otherwise strided 1-D convolutions over a waveform [B, T, 1] (the paper's
  audio encoder: strides (5, 4, 2, 2, 2), kernels (10, 8, 4, 4, 4), 512 wide, ReLU; 160x
  downsampling), each hidden_dims[0] wide, then a Dense to out_dim.
  -> (z [B, T', out_dim], mask [B, T']); T' = T for frames.
  """
  hidden_dims: Sequence[int] = (256,)
  out_dim: int = 256
  conv_strides: Sequence[int] = ()
  conv_kernels: Sequence[int] = ()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    mask = _full_mask(x, mask)
    h = x.astype(self.dtype)
    if self.conv_strides:
      if len(self.conv_kernels) != len(self.conv_strides):
        raise ValueError(f"conv_kernels {self.conv_kernels} and conv_strides {self.conv_strides} "
                         "must have one entry per layer")
      width = self.hidden_dims[0] if self.hidden_dims else self.out_dim
      lengths = jnp.sum(mask, axis=1)
      for i, (k, s) in enumerate(zip(self.conv_kernels, self.conv_strides)):
        h = nn.relu(nn.Conv(width, (k,), strides=(s,), padding="VALID", dtype=self.dtype,
                            name=f"conv_{i}")(h))
        # An output is real when its whole window is: the padding follows the real samples.
        lengths = jnp.maximum((lengths - k) // s + 1, 0)
      mask = jnp.arange(h.shape[1])[None] < lengths[:, None]
    else:
      for i, width in enumerate(self.hidden_dims):
        h = nn.relu(nn.Dense(width, dtype=self.dtype, name=f"dense_{i}")(h))
    z = nn.Dense(self.out_dim, dtype=self.dtype, name="out")(h)
    return _zero_padding(z.astype(jnp.float32), mask), mask


class CPCPredictors(nn.Module):
  """The K linear maps W_k of CPC: c [B, T, C] -> preds [B, T, K, D], preds[:, t, k] =
  W_{k+1} c_t, the prediction of z[:, t + k + 1]. One DenseGeneral holds all K maps."""
  num_steps: int = 12
  dim: int = 256

  @nn.compact
  def __call__(self, c: jax.Array) -> jax.Array:
    # No bias: the paper's f_k(x, c) = exp(z^T W_k c) is bilinear.
    return nn.DenseGeneral((self.num_steps, self.dim), use_bias=False, name="w")(c)


class CPCEncoder(nn.Module):
  """g_enc then g_ar: x [B, T, F] -> (z [B, T', D], c [B, T', context_dim], mask [B, T']).

  Attributes: those of FrameEncoder (frame_hidden, dim, conv_strides, conv_kernels) and
  context_dim, context_layers of the GRU (the paper: one layer, 256 wide).
  """
  frame_hidden: Sequence[int] = (256,)
  dim: int = 256
  conv_strides: Sequence[int] = ()
  conv_kernels: Sequence[int] = ()
  context_dim: int = 256
  context_layers: int = 1
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None  # unused: no BatchNorm

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False):
    z, mask = FrameEncoder(tuple(self.frame_hidden), self.dim, tuple(self.conv_strides),
                           tuple(self.conv_kernels), dtype=self.dtype, name="frames")(x, mask)
    c = GRUStack(self.context_dim, self.context_layers, residual=True, dtype=self.dtype,
                 name="context")(z, mask, train=train)
    return z, c, mask

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the masked mean of the context vectors c_t [B, context_dim] (the paper's
    speaker classification reads c_t)."""
    _, c, mask = self(x, mask, train=train)
    return masked_mean(c, mask)


def _word2vec_init(key, shape, dtype=jnp.float32):
  """word2vec.c's syn0: uniform in [-0.5 / dim, 0.5 / dim)."""
  dim = shape[-1]
  return jax.random.uniform(key, shape, dtype, -0.5 / dim, 0.5 / dim)


class SkipGramEmbeddings(nn.Module):
  """word2vec's two tables: input vectors v_w (`input`, uniform in +-0.5/dim) and output
  vectors v'_w (`output`, zeros), as word2vec.c initializes syn0 and syn1neg.

  num_special: ids below it (<pad>, <unk>, <mask>) are left out of `encode`.
  """
  vocab_size: int = 0  # the vocabulary's size; the methods set it from the data
  dim: int = 100
  num_special: int = 3
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None  # unused: no BatchNorm

  def setup(self):
    if self.vocab_size <= 0:
      raise ValueError(f"SkipGramEmbeddings needs vocab_size > 0, got {self.vocab_size}")
    self.input = self.param("input", _word2vec_init, (self.vocab_size, self.dim))
    self.output = self.param("output", nn.initializers.zeros, (self.vocab_size, self.dim))

  def center(self, ids: jax.Array) -> jax.Array:
    """ids [...] -> input vectors [..., dim]."""
    return jnp.take(self.input, ids, axis=0)

  def context(self, ids: jax.Array) -> jax.Array:
    """ids [...] -> output vectors [..., dim]."""
    return jnp.take(self.output, ids, axis=0)

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False):
    """x [B, T] -> (input vectors, output vectors), each [B, T, dim]; touches both tables."""
    del mask, train
    x = x.astype(jnp.int32)
    return self.center(x), self.context(x)

  def encode(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """-> the mean input vector over the real, non-special tokens [B, dim]."""
    del train
    x = x.astype(jnp.int32)
    words = _full_mask(x, mask) & (x >= self.num_special)
    return masked_mean(self.center(x), words)
