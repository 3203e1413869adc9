"""A convolutional decoder from an encoder's pooled feature vector back to an image, and
the encoder + decoder pair of the reconstruction methods (denoising autoencoder,
context encoder, colorization: sslax/methods/).

    z [B, D] --Dense--> [B, s, s, width] --conv3x3-norm-ReLU--> [B, s, s, width/2]
      --(2x nearest upsampling, conv3x3-norm-ReLU) x (n-1)--> [B, s 2^(n-1), s 2^(n-1), width/2^n]
      --conv3x3 to 4C, pixel shuffle--> [B, s 2^n, s 2^n, C] --centre crop--> [B, H, W, C]

(channel counts floored at min_width). The number of upsamplings n is the smallest that
brings the first map to a side s <= 7 (ResNet's last map at 224 px): 28 px: s=7, n=2;
32 px: s=4, n=3; 96 px: s=6, n=4; 224 px: s=7, n=5. When s 2^n overshoots the image (e.g.
30 px from s=4), the centre is cropped. The output size and, by default, channels C are
those of the encoder's input, so the same decoder serves every encoder and image size.

Why this shape, on CPU budgets:
* Each stage convolves at the resolution it receives and the wide convolutions run on the
  small maps (the mirror of the ConvNet's pool-then-conv). On 28x28 with the CPU ConvNet
  and width 128 the decoder costs about 9 M multiply-adds per image, the encoder about 8 M;
  upsampling before every convolution would cost about 30 M.
* The last upsampling is a sub-pixel convolution (Shi et al. 2016): a conv3x3 to 4C channels
  at half resolution whose channels are shuffled into 2x2 pixel blocks, so no wide map ever
  exists at full resolution (on XLA CPU, upsampling a 14x14x32 map to 28x28 and its conv3x3
  to 1 channel took as long as each of the two wide convolutions). Earlier upsamplings are
  nearest-neighbour plus a convolution, which avoids the checkerboard artifacts of strided
  transposed convolutions (Odena, Dumoulin & Olah 2016); the last one can show them faintly.
* The output is linear: targets are normalized pixels (or scaled ab channels), unbounded.

Only the pooled vector reaches the decoder (no skip connections): the representation that
is evaluated is the whole code, as in an autoencoder.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax.errors import ConfigError

MAX_BASE_SIDE = 7


def upsampling_plan(size: int) -> tuple[int, int]:
  """Output side `size` -> (first map side s, number of 2x upsamplings n): the smallest n
  with ceil(size / 2^n) <= MAX_BASE_SIDE, so s * 2^n >= size."""
  n = 0
  while math.ceil(size / 2 ** n) > MAX_BASE_SIDE:
    n += 1
  return math.ceil(size / 2 ** n), n


def upsample2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour [B, H, W, C] -> [B, 2H, 2W, C] (broadcast + reshape: its gradient is a
  cheap reshape-sum)."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)


def depth_to_space(x: jax.Array) -> jax.Array:
  """[B, H, W, 4C] -> [B, 2H, 2W, C]: channel (i * 2 + j) * C + c of pixel (h, w) becomes
  channel c of pixel (2h + i, 2w + j) (the pixel shuffle of Shi et al. 2016)."""
  b, h, w, c4 = x.shape
  c = c4 // 4
  x = x.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c)


def center_crop(x: jax.Array, height: int, width: int) -> jax.Array:
  top, left = (x.shape[1] - height) // 2, (x.shape[2] - width) // 2
  return x[:, top:top + height, left:left + width, :]


class ConvDecoder(nn.Module):
  """Pooled features [B, D] -> image [B, H, W, C] (see the module docstring).

  Attributes:
    width: channels of the first map, halved at each upsampling down to `min_width`.
    min_width: the floor of the channel count.
    out_channels: output channels; 0: those of the image passed to `__call__`'s shape.
    norm: "batch" (statistics synced over `bn_axis_name`, like the encoders) or "group"
      (GroupNorm, per example: no statistic crosses examples or devices).
    bn_axis_name: mesh axis of BatchNorm's statistics.
  """
  width: int = 256
  min_width: int = 32
  out_channels: int = 0
  norm: Literal["batch", "group"] = "batch"
  bn_axis_name: str | None = None
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, z: jax.Array, image_shape: Sequence[int], train: bool = True) -> jax.Array:
    """z [B, D], image_shape (H, W, C) of the target -> [B, H, W, out_channels or C]."""
    height, width, channels = image_shape
    side, stages = upsampling_plan(max(height, width))
    x = nn.Dense(side * side * self.width, name="dense")(z.astype(jnp.float32))
    x = x.reshape(z.shape[0], side, side, self.width)
    for i in range(stages):
      if i > 0:
        x = upsample2x(x)
      features = max(self.width // 2 ** (i + 1), self.min_width)
      # No bias before a normalization: its shift makes it redundant.
      x = nn.Conv(features, (3, 3), padding="SAME", use_bias=False, name=f"conv{i + 1}")(x)
      x = nn.relu(self._norm(f"norm{i + 1}", features, train)(x))
    out = self.out_channels or channels
    if stages > 0:  # the last upsampling is a sub-pixel convolution: see the module docstring
      x = depth_to_space(nn.Conv(4 * out, (3, 3), padding="SAME", name="conv_out")(x))
    else:
      x = nn.Conv(out, (3, 3), padding="SAME", name="conv_out")(x)
    return center_crop(x, height, width)

  def _norm(self, name: str, features: int, train: bool) -> nn.Module:
    if self.norm == "batch":
      return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-5,
                          axis_name=self.bn_axis_name, name=name)
    if self.norm == "group":
      return nn.GroupNorm(num_groups=math.gcd(32, features), name=name)
    raise ValueError(f"decoder norm must be 'batch' or 'group', got {self.norm!r}")


NORMS = ("batch", "group")


def decoder_defaults() -> dict:
  """The decoder's keys in a reconstruction method's config.method."""
  return dict(
      decoder_width=256,     # channels of the first map, halved at each upsampling
      decoder_min_width=32,
      decoder_norm="batch",  # "batch" (synced over devices) or "group"
  )


def check_decoder(cfg: ml_collections.ConfigDict) -> None:
  """A ConfigError for decoder_* keys of config.method that cannot work."""
  if cfg.decoder_norm not in NORMS:
    raise ConfigError(f"config.method.decoder_norm: {cfg.decoder_norm!r} is not one of {list(NORMS)}")
  if not 0 < cfg.decoder_min_width <= cfg.decoder_width:
    raise ConfigError(f"config.method.decoder_min_width: needs 0 < decoder_min_width <= decoder_width, "
                      f"got {cfg.decoder_min_width} and {cfg.decoder_width}")


def build_decoder(cfg: ml_collections.ConfigDict, out_channels: int = 0,
                  bn_axis_name: str | None = None) -> ConvDecoder:
  """A ConvDecoder from config.method's decoder_* keys (see `decoder_defaults`)."""
  check_decoder(cfg)
  return ConvDecoder(width=cfg.decoder_width, min_width=cfg.decoder_min_width,
                     out_channels=out_channels, norm=cfg.decoder_norm, bn_axis_name=bn_axis_name)


class EncoderDecoder(nn.Module):
  """An encoder and a decoder of its pooled features: the network of the reconstruction
  methods. `__call__` reconstructs an image of the input's shape (with the decoder's
  out_channels, if set); `encode` is the encoder alone, the evaluated representation.

  pixel_mean, pixel_std: the training views' normalization per channel (not parameters),
  kept so that pictures made from a checkpoint (`Method.reconstruct`, which is not handed
  the data's statistics) corrupt and convert colours as training did; () if unknown.
  """
  encoder: nn.Module
  decoder: ConvDecoder
  pixel_mean: tuple = ()
  pixel_std: tuple = ()

  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """x [B, H, W, C] -> reconstruction [B, H, W, decoder.out_channels or C]."""
    return self.decoder(self.encoder(x, train=train), x.shape[1:], train=train)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x [B, H, W, C] -> backbone features [B, D]."""
    return self.encoder(x, train=train)
