"""Denoising autoencoder (Vincent, Larochelle, Bengio & Manzagol 2008; the corruptions
and the emphasized loss of Vincent et al. 2010, JMLR "Stacked denoising autoencoders").

Each image x is corrupted into x~, encoded, decoded, and the reconstruction is compared
with the clean x:

  L = mean over the global batch of || g(f(x~)) - x ||^2   (squared error, per element)

Corruptions (config.method.corruption), drawn from the example's key (`StepInputs.keys`),
so they do not depend on the device an example lands on:
* "masking" (the 2008 paper's): a fixed number round(fraction * H * W) of pixels, chosen
  at random, forced to 0 in pixel space, i.e. to (0 - mean) / std in the views'
  normalization.
* "salt_and_pepper": a fixed number of pixels set to the minimum or maximum pixel value
  (0 or 1 in pixel space), by a fair coin per pixel.
* "gaussian": isotropic additive noise N(0, noise_std^2) in pixel units ([0, 1]) on every
  element, not clipped (the papers' additive Gaussian noise).
The pixel, with all its channels, is the corrupted unit (the papers corrupt input
components independently; on one channel, as Fashion-MNIST, the two agree).

`loss_on`: "all" (default) compares every pixel; "corrupted" only the corrupted ones,
the 2010 paper's fully emphasized variant (alpha = 1, beta = 0; for "gaussian" every
pixel is corrupted, so both agree).

Departures: the papers' one-hidden-layer MLP with tied weights becomes the configured
encoder (convnet, resnet, vit) and a convolutional decoder from its pooled feature vector
(sslax/models/decoder.py); the loss is the squared error on normalized pixels (the papers
also use cross-entropy for [0, 1] inputs). `encode` is the encoder on the clean image, the
evaluated representation.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common import encoder_decoder
from sslax.methods.common.encoder_decoder import build_encoder_decoder, normalization
from sslax.methods.common.pretext import require_keys
from sslax.models.decoder import EncoderDecoder, decoder_defaults

CORRUPTIONS = ("masking", "salt_and_pepper", "gaussian")
LOSS_ON = ("all", "corrupted")


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      corruption="masking",
      fraction=0.25,   # masking / salt_and_pepper: share of pixels corrupted, within the
                       # range the papers explore
      noise_std=0.3,   # gaussian: std in pixel units (pixels in [0, 1]); our choice
      loss_on="all",   # "all" or "corrupted" (the emphasized variant)
      **decoder_defaults(),
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  cfg, size = config.method, config.data.image_size
  if cfg.corruption not in CORRUPTIONS:
    raise ConfigError(f"config.method.corruption: {cfg.corruption!r} is not one of {list(CORRUPTIONS)}")
  if cfg.loss_on not in LOSS_ON:
    raise ConfigError(f"config.method.loss_on: {cfg.loss_on!r} is not one of {list(LOSS_ON)}")
  if cfg.corruption != "gaussian" and not (0.0 < cfg.fraction <= 1.0 and round(cfg.fraction * size ** 2)):
    raise ConfigError(f"config.method.fraction: a share of pixels in (0, 1] that corrupts at least "
                      f"one of the {size}x{size}, got {cfg.fraction}")
  if cfg.corruption == "gaussian" and not cfg.noise_std > 0.0:
    raise ConfigError(f"config.method.noise_std: must be > 0, got {cfg.noise_std}")
  encoder_decoder.check(config)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return build_encoder_decoder(config)


def random_pixels(key: jax.Array, height: int, width: int, fraction: float) -> jax.Array:
  """A mask [H, W] (bool) with exactly round(fraction * H * W) True pixels, uniformly
  chosen (the papers' fixed number of destroyed components)."""
  count = round(fraction * height * width)
  if count == 0:
    return jnp.zeros((height, width), bool)
  _, chosen = jax.lax.top_k(jax.random.uniform(key, (height * width,)), count)
  return jnp.zeros(height * width, bool).at[chosen].set(True).reshape(height, width)


def corrupt_one(key: jax.Array, x: jax.Array, cfg: ml_collections.ConfigDict, mean, std):
  """One normalized image x [H, W, C] -> (corrupted x~ [H, W, C], mask [H, W, 1] float:
  1 where corrupted). mean, std: the views' normalization, one value per channel."""
  mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
  height, width, _ = x.shape
  pick_key, value_key = jax.random.split(key)
  if cfg.corruption == "gaussian":
    noise = cfg.noise_std * jax.random.normal(value_key, x.shape) / std
    return x + noise, jnp.ones((height, width, 1), jnp.float32)
  mask = random_pixels(pick_key, height, width, cfg.fraction)[..., None]
  black = (0.0 - mean) / std   # pixel value 0, normalized: [C]
  if cfg.corruption == "masking":
    replacement = jnp.broadcast_to(black, x.shape)
  else:  # salt and pepper: the max or the min by a fair coin per pixel
    white = (1.0 - mean) / std
    salt = jax.random.bernoulli(value_key, 0.5, (height, width, 1))
    replacement = jnp.where(salt, white, black)
  return jnp.where(mask, replacement, x), mask.astype(jnp.float32)


def corrupt(keys: jax.Array, views: jax.Array, cfg: ml_collections.ConfigDict, mean, std):
  """keys [B], views [B, H, W, C] -> (corrupted [B, H, W, C], mask [B, H, W, 1])."""
  return jax.vmap(lambda k, x: corrupt_one(k, x, cfg, mean, std))(keys, views)


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  clean = inputs.views[0]
  corrupted, mask = corrupt(require_keys(inputs, "denoising_ae"), clean, cfg,
                           inputs.pixel_mean, inputs.pixel_std)
  reconstruction, new_state = model.apply(variables, corrupted, train=True, mutable=["batch_stats"])
  weights = mask if cfg.loss_on == "corrupted" else jnp.ones_like(mask)
  value = losses.weighted_mse(reconstruction, clean, weights, axis_name)
  return value, LossAux(new_state["batch_stats"], {})


def reconstruct(model: EncoderDecoder, variables: dict, views: jax.Array, keys: jax.Array,
                config: ml_collections.ConfigDict, pixel_mean=None, pixel_std=None) -> dict:
  """The clean views, their corruption by the same keys as in training, and the network's
  output on it (eval mode). pixel_mean / pixel_std: the views' normalization, if not the
  one the model was built with (see `normalization`)."""
  cfg = config.method
  mean, std = normalization(model, views.shape[-1], pixel_mean, pixel_std)
  corrupted, _ = corrupt(keys, views, cfg, mean, std)
  return {"input": views, "corrupted": corrupted,
          "reconstruction": model.apply(variables, corrupted, train=False)}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                reconstruct=reconstruct)
