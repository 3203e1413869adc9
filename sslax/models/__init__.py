"""Encoders and heads, and building an encoder from a config.

    cfg = ml_collections.ConfigDict({"name": "resnet18", "stem": "cifar"})
    encoder = build_encoder(cfg, bn_axis_name="data")
    dim = feature_dim(encoder, (32, 32, 3))          # 512
    feats, updates = encoder.apply(variables, images, train=True,
                                   mutable=["batch_stats"])   # inside shard_map
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax.errors import ConfigError
from sslax.models.convnet import ConvNet
from sslax.models.heads import MLP
from sslax.models.pretrained import LOADABLE, load_pretrained
from sslax.models.resnet import ResNet, resnet18, resnet34, resnet50
from sslax.models.sequence import CPCEncoder, GRUStack, SequenceTransformer, SkipGramEmbeddings
from sslax.models.vit import ViT, vit_base, vit_small, vit_tiny

__all__ = [
    "ENCODERS", "ConvNet", "MLP", "ResNet", "build_encoder", "encoder_config", "feature_dim",
    "validate_encoder", "load_pretrained",
    "resnet18", "resnet34", "resnet50", "ViT", "vit_tiny", "vit_small", "vit_base",
    "CPCEncoder", "GRUStack", "SequenceTransformer", "SkipGramEmbeddings",
]

# name -> constructor taking keyword arguments (a Module class or a partial of one).
ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "convnet": ConvNet,
    "vit": ViT,             # every size field in the config (e.g. a small ViT for 28 px images)
    "vit_tiny": vit_tiny,
    "vit_small": vit_small,
    "vit_base": vit_base,
    # Sequences and text (sslax/models/sequence.py): x [B, T, F] or [B, T] with a mask [B, T].
    "gru_stack": GRUStack,
    "sequence_transformer": SequenceTransformer,
    "cpc_encoder": CPCEncoder,
    "skipgram_embeddings": SkipGramEmbeddings,
}

# Set by build_encoder's argument, not by the config: it is a property of how the
# model is run (inside shard_map or not), not of the architecture.
_NOT_FROM_CONFIG = ("parent", "name", "bn_axis_name")
# Keys of config.model that are not the module's: init_from, torchvision / timm weights the
# run starts from (a .safetensors file; sslax/models/pretrained.py), "" for none.
CONFIG_ONLY = {"init_from": ""}


def _config_keys(factory: Callable[..., nn.Module]) -> list[str]:
  """The keyword arguments a config may set for ``factory``."""
  fixed = {}
  if isinstance(factory, functools.partial):
    fixed, factory = factory.keywords, factory.func
  return sorted(f.name for f in dataclasses.fields(factory)
                if f.name not in fixed and f.name not in _NOT_FROM_CONFIG)


def encoder_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """Every configurable field of encoder `name` with its default, then `overrides`.

  Listing all fields in the experiment config lets `--config.model.KEY=VALUE`
  override any of them, and a misspelt KEY fail at flag parsing.
  """
  if name not in ENCODERS:
    raise ValueError(f"Unknown encoder name {name!r}; valid choices: {sorted(ENCODERS)}")
  factory = ENCODERS[name]
  module = factory.func if isinstance(factory, functools.partial) else factory
  defaults = {f.name: f.default for f in dataclasses.fields(module)}
  fields = {"name": name, **CONFIG_ONLY}
  for key in _config_keys(factory):
    if key == "dtype":  # the precision policy is not a per-encoder config field
      continue
    if defaults[key] is dataclasses.MISSING:
      raise ValueError(f"encoder {name!r} field {key!r} has no default; pass it in overrides")
    fields[key] = defaults[key]
  for key, value in overrides.items():
    if key not in fields:
      raise ValueError(f"Unknown config key {key!r} for encoder {name!r}; valid keys: {sorted(fields)}")
    fields[key] = tuple(value) if isinstance(value, list) else value
  return ml_collections.ConfigDict(fields)


def validate_encoder(cfg: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for config.model: an unknown encoder, a key it does not take, or a
  value of another kind than the field's default (a string for a tuple of widths, say)."""
  name = cfg.get("name")
  if name not in ENCODERS:
    raise ConfigError(f"config.model.name: {name!r} is not one of {sorted(ENCODERS)}")
  valid = _config_keys(ENCODERS[name])
  unknown = sorted(set(cfg.keys()) - set(valid) - {"name", *CONFIG_ONLY})
  if unknown:
    raise ConfigError(f"config.model: unknown key(s) {unknown} for encoder {name!r}; valid keys: {valid}")
  _validate_init_from(cfg)
  defaults = encoder_config(name)
  for key, value in cfg.items():
    if key == "name" or key not in defaults or defaults[key] is None:
      continue
    expected = defaults[key]
    if isinstance(expected, bool):
      kinds, what = (bool,), "true or false"
    elif isinstance(expected, (int, float)):
      kinds, what = (int, float), "a number"
    elif isinstance(expected, (tuple, list)):
      kinds, what = (tuple, list), "a tuple, e.g. --config.model.%s='%r'" % (key, tuple(expected))
    else:
      kinds, what = (type(expected),), f"a {type(expected).__name__}"
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
      raise ConfigError(f"config.model.{key}: {value!r} is not {what} (encoder {name!r})")
    if isinstance(expected, (tuple, list)) and expected and isinstance(expected[0], (int, float)):
      # A command-line override such as widths=abc arrives as the tuple ('abc',).
      if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"config.model.{key}: {value!r} is not a tuple of numbers, e.g. "
                          f"--config.model.{key}='{tuple(expected)!r}' (encoder {name!r})")


def _validate_init_from(cfg: ml_collections.ConfigDict) -> None:
  path = cfg.get("init_from", "")
  if not path:
    return
  if not isinstance(path, str):
    raise ConfigError(f"config.model.init_from: {path!r} is not a path (a .safetensors file)")
  if cfg.name not in LOADABLE:
    raise ConfigError(f"config.model.init_from: encoder {cfg.name!r} cannot read torchvision or "
                      f"timm weights; those that can: {list(LOADABLE)}")
  if not os.path.isfile(path):
    raise ConfigError(f"config.model.init_from: no file {path}")


def build_encoder(cfg: ml_collections.ConfigDict,
                  bn_axis_name: str | None = None) -> nn.Module:
  """Builds ``ENCODERS[cfg.name](**other cfg fields, bn_axis_name=bn_axis_name)``.

  Raises:
    ValueError: unknown ``cfg.name``, or a field the chosen encoder does not take
      (the message lists the valid names / keys).
  """
  kwargs = cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else dict(cfg)
  name = kwargs.pop("name", None)
  for key in CONFIG_ONLY:
    kwargs.pop(key, None)
  if name not in ENCODERS:
    raise ValueError(
        f"Unknown encoder name {name!r}; valid choices: {sorted(ENCODERS)}")
  factory = ENCODERS[name]
  valid = _config_keys(factory)
  for key in kwargs:
    if key not in valid:
      raise ValueError(
          f"Unknown config key {key!r} for encoder {name!r}; valid keys: {valid}")
  # Lists (from a plain dict, JSON or a command-line override) become tuples:
  # module fields such as `widths` are compared and hashed by flax.
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
  if "dtype" in kwargs:  # the precision policy's name ("bfloat16"), set by config.with_precision
    kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
  return factory(**kwargs, bn_axis_name=bn_axis_name)


def feature_dim(module: nn.Module, input_shape: Sequence[int]) -> int:
  """Output width ``D`` of ``module`` for inputs of ``input_shape``, no FLOPs spent.

  ``input_shape`` is one example's ``(H, W, C)`` or a batch's ``(B, H, W, C)``.
  """
  shape = tuple(input_shape)
  if len(shape) == 3:
    shape = (1,) + shape
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  out, _ = jax.eval_shape(
      lambda x: module.init_with_output(jax.random.key(0), x, train=False), x)
  return int(out.shape[-1])
