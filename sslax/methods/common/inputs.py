"""What a sequence or text method checks of its config: the input its dataset gives and the
encoders it can train (their validate hooks call these)."""

from __future__ import annotations

import ml_collections

from sslax.data import datasets
from sslax.errors import ConfigError

# A dataset's modality -> the input its source gives the network.
INPUTS = {"image": "images", "sequence": "frames", "text": "tokens"}


def require_modality(config: ml_collections.ConfigDict, method: str, modality: str) -> None:
  """A ConfigError unless config.data.name gives `modality` ("frames" or "tokens"); the
  message names the datasets that do."""
  have = INPUTS[datasets.get_dataset(config.data.name).modality]
  if have != modality:
    works = [name for name, d in datasets.DATASETS.items() if INPUTS[d.modality] == modality]
    raise ConfigError(
        f"config.data.name={config.data.name!r} gives {have}, but {method} reads {modality}; "
        f"use one of {works}")


def require_model(config: ml_collections.ConfigDict, method: str, allowed: dict[str, str]) -> None:
  """A ConfigError unless config.model.name is a key of `allowed` (name -> why it fits)."""
  if config.model.name not in allowed:
    raise ConfigError(
        f"config.model.name={config.model.name!r}: {method} needs one of "
        + "; ".join(f"{name!r} ({why})" for name, why in allowed.items()))
