"""The network of the reconstruction methods (denoising, inpainting, colorization): the
configured encoder and a convolutional decoder of its pooled features, and the views'
normalization the pictures are drawn in."""

from __future__ import annotations

import ml_collections

from sslax import parallel
from sslax.data import pipeline
from sslax.models import build_encoder
from sslax.models.decoder import EncoderDecoder, build_decoder, check_decoder


def check(config: ml_collections.ConfigDict) -> None:
  """The validate-time checks of config.method's decoder_* keys."""
  check_decoder(config.method)


def build_encoder_decoder(config: ml_collections.ConfigDict, out_channels: int = 0) -> EncoderDecoder:
  """config.model's encoder and a decoder from config.method's decoder_* keys, every
  BatchNorm synced over the mesh axis, with the dataset's normalization (what
  the source normalizes the views with: DATASET_INFO's, else the pipeline's fallback)."""
  info = pipeline.DATASET_INFO.get(config.data.name, {})
  return EncoderDecoder(
      encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
      decoder=build_decoder(config.method, out_channels, bn_axis_name=parallel.DATA_AXIS),
      pixel_mean=tuple(info.get("mean", ())), pixel_std=tuple(info.get("std", ())))


def normalization(model: EncoderDecoder, channels: int, pixel_mean=None, pixel_std=None):
  """The views' (mean, std) per channel for pictures: the arguments, else those the model was
  built with, else the pipeline's fallback for a dataset without statistics."""
  mean = pixel_mean or model.pixel_mean or (pipeline.FALLBACK_MEAN,) * channels
  std = pixel_std or model.pixel_std or (pipeline.FALLBACK_STD,) * channels
  return tuple(mean), tuple(std)
