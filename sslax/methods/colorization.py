"""Colorization (Zhang, Isola & Efros 2016, "Colorful image colorization"), as a regression
of the CIELAB chroma from the lightness.

Each view is taken back to pixels in [0, 1] (view * std + mean), converted from sRGB to
CIELAB (L in [0, 100], a and b roughly in [-110, 110]), and split:
* the network's input is the view's grey image, the sRGB image with the same L and no
  chroma (a = b = 0; R = G = B), on every channel and normalized like the views, so the
  configured encoder keeps its input shape;
* the target is the ab channels / ab_scale (110, the extent of the paper's ab grid), which
  the decoder (sslax/models/decoder.py, 2 output channels) regresses from the encoder's
  pooled features with an L2 (default) or smooth-L1 loss, averaged over the pixels of the
  global batch.

Departures: the paper classifies each pixel's ab into 313 quantized bins with class
rebalancing (its point: L2 regression averages plausible colours into desaturated ones) and
predicts from a fully convolutional network; here the loss is a regression (the paper's own
L2 baseline), with no bin statistics to estimate, and the decoder sees only the pooled
feature vector, the representation that is evaluated.

Evaluation: `encode` feeds the encoder whatever it is given, and the frozen evaluation gives
it normal colour images. The paper's network sees only L, and its linear probes feed it L.
Trained on grey inputs (R = G = B), the encoder's first layer receives the same gradient on
each channel's weights, so on a colour image it computes about what it computes on a grey
one, plus the untrained part of its random initialization applied to the chroma.

Only colour images can be colorized: a 1-channel dataset is refused by `validate` (from
config.data.name) and, for datasets `build` cannot tell, when the loss is traced.

The conversions follow the standard formulas: sRGB (IEC 61966-2-1) gamma, the sRGB-to-XYZ
matrix for the D65 white, and CIE 1976 L*a*b* with f(t) = t^(1/3) above (6/29)^3.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax import losses
from sslax.data import pipeline
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common import encoder_decoder
from sslax.methods.common.encoder_decoder import build_encoder_decoder, normalization
from sslax.models.decoder import EncoderDecoder, decoder_defaults

LOSSES = ("l2", "smooth_l1")
COLOUR_DATASETS = sorted(name for name, info in pipeline.DATASET_INFO.items() if info["channels"] == 3)

# Linear sRGB -> CIE XYZ, D65 white (IEC 61966-2-1). Its row sums are the white point
# (0.95047, 1.0, 1.08883), so RGB white maps to a = b = 0 exactly.
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
WHITE = RGB_TO_XYZ.sum(axis=1)
DELTA = 6.0 / 29.0


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      loss="l2",            # "l2" or "smooth_l1" on the scaled ab
      smooth_l1_beta=0.1,   # smooth_l1: quadratic below this (scaled ab units; 11 in ab)
      ab_scale=110.0,       # ab / ab_scale is the target
      **decoder_defaults(),
  ))


# ----------------------------------------------------------------------------
# sRGB <-> CIELAB
# ----------------------------------------------------------------------------

def srgb_to_linear(c: jax.Array) -> jax.Array:
  # jnp.maximum keeps the unused branch's power finite (no NaN in gradients).
  return jnp.where(c <= 0.04045, c / 12.92, ((jnp.maximum(c, 0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: jax.Array) -> jax.Array:
  return jnp.where(c <= 0.0031308, 12.92 * c, 1.055 * jnp.maximum(c, 0.0031308) ** (1 / 2.4) - 0.055)


def _f(t: jax.Array) -> jax.Array:
  return jnp.where(t > DELTA ** 3, jnp.cbrt(jnp.maximum(t, DELTA ** 3)), t / (3 * DELTA ** 2) + 4 / 29)


def _f_inverse(t: jax.Array) -> jax.Array:
  return jnp.where(t > DELTA, t ** 3, 3 * DELTA ** 2 * (t - 4 / 29))


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
  """sRGB [..., 3] in [0, 1] -> CIELAB [..., 3]: L in [0, 100], a, b (D65 white)."""
  xyz = jnp.einsum("...c,dc->...d", srgb_to_linear(rgb), jnp.asarray(RGB_TO_XYZ, jnp.float32))
  fx, fy, fz = jnp.moveaxis(_f(xyz / jnp.asarray(WHITE, jnp.float32)), -1, 0)
  return jnp.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: jax.Array) -> jax.Array:
  """CIELAB [..., 3] -> sRGB [..., 3], not clipped (out-of-gamut colours leave [0, 1])."""
  lightness, a, b = jnp.moveaxis(lab, -1, 0)
  fy = (lightness + 16) / 116
  xyz = _f_inverse(jnp.stack([fy + a / 500, fy, fy - b / 200], axis=-1)) * jnp.asarray(WHITE, jnp.float32)
  return linear_to_srgb(jnp.einsum("...c,dc->...d", xyz, jnp.asarray(XYZ_TO_RGB, jnp.float32)))


# ----------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------

def require_colour(channels: int, dataset: str) -> None:
  if channels != 3:
    raise ConfigError(
        f"config.data.name: colorization predicts the colour (the CIELAB a, b channels) of RGB "
        f"images from their lightness, but {dataset} has {channels} channel(s); pretrain it on a "
        f"colour dataset ({', '.join(COLOUR_DATASETS)}), e.g. configs/colorization_cifar10.py")


def validate(config: ml_collections.ConfigDict) -> None:
  cfg = config.method
  info = pipeline.DATASET_INFO.get(config.data.name)
  if info is not None:
    require_colour(info["channels"], repr(config.data.name))
  if cfg.loss not in LOSSES:
    raise ConfigError(f"config.method.loss: {cfg.loss!r} is not one of {list(LOSSES)}")
  if not cfg.ab_scale > 0 or not cfg.smooth_l1_beta > 0:
    raise ConfigError(f"config.method.ab_scale and smooth_l1_beta: must be > 0, got "
                      f"{cfg.ab_scale} and {cfg.smooth_l1_beta}")
  encoder_decoder.check(config)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return build_encoder_decoder(config, out_channels=2)


def grey_and_ab(views: jax.Array, mean, std, ab_scale: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Normalized RGB views [B, H, W, 3] -> (the grey views, normalized the same way,
  [B, H, W, 3]; the target ab / ab_scale [B, H, W, 2]; L [B, H, W, 1])."""
  mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
  lab = rgb_to_lab(jnp.clip(views * std + mean, 0.0, 1.0))
  lightness = lab[..., :1]
  grey = lab_to_rgb(jnp.concatenate([lightness, jnp.zeros_like(lab[..., 1:])], axis=-1))
  return (grey - mean) / std, lab[..., 1:] / ab_scale, lightness


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  view = inputs.views[0]
  require_colour(view.shape[-1], "this dataset")
  grey, target, _ = grey_and_ab(view, inputs.pixel_mean, inputs.pixel_std, cfg.ab_scale)
  prediction, new_state = model.apply(variables, grey, train=True, mutable=["batch_stats"])
  beta = cfg.smooth_l1_beta if cfg.loss == "smooth_l1" else 0.0  # 0: the squared error
  value = losses.mean_regression(prediction, target, beta, axis_name)
  return value, LossAux(new_state["batch_stats"], {})


def reconstruct(model: EncoderDecoder, variables: dict, views: jax.Array, keys: jax.Array,
                config: ml_collections.ConfigDict, pixel_mean=None, pixel_std=None) -> dict:
  """The views, their grey version (the network's input) and the colour image made of the
  views' L and the predicted ab (clipped to [0, 1] in sRGB), all normalized like the views.
  No randomness: the keys are unused."""
  cfg = config.method
  mean, std = normalization(model, views.shape[-1], pixel_mean, pixel_std)
  grey, _, lightness = grey_and_ab(views, mean, std, cfg.ab_scale)
  ab = model.apply(variables, grey, train=False) * cfg.ab_scale
  rgb = jnp.clip(lab_to_rgb(jnp.concatenate([lightness, ab], axis=-1)), 0.0, 1.0)
  mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
  return {"input": views, "corrupted": grey, "reconstruction": (rgb - mean) / std}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                reconstruct=reconstruct)
