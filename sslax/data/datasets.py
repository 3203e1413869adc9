"""The one registry of datasets: for each `config.data.name`, its modality, how a split opens
as a `Source`, and the checks of its config block, run before anything is opened.

Frame sequences (sslax/data/sequences.py) and texts (sslax/data/text.py) are named here; any
other name is an image dataset read through TFDS (sslax/data/pipeline.py).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import ml_collections

from sslax.data import pipeline, sequences, text
from sslax.errors import require

MODALITIES = ("image", "sequence", "text")


class OpenFn(Protocol):
  def __call__(self, data: ml_collections.ConfigDict, split: str,
               train: pipeline.Source | None = None) -> pipeline.Source:
    """config.data, a split name -> the split as a Source (DatasetNotFoundError if missing).
    `train`: the train split, already open, whose statistics (a vocabulary, a standardization)
    another split shares instead of reading the train split again."""


class ValidateFn(Protocol):
  def __call__(self, config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for a config.data setting that cannot work."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  modality: str
  open: OpenFn
  validate: ValidateFn


def open_images(data: ml_collections.ConfigDict, split: str,
                train: pipeline.Source | None = None) -> pipeline.Source:
  del train  # every image split is normalized with the dataset's fixed statistics
  return pipeline.open_source(data.name, split, data_dir=data.data_dir or None,
                              image_size=data.image_size, in_memory=data.in_memory,
                              download=data.download)


def validate_images(config: ml_collections.ConfigDict) -> None:
  require(config.data.get("image_size", 0) > 0, "data.image_size", "must be > 0")


IMAGES = Dataset("image", open_images, validate_images)
DATASETS: dict[str, Dataset] = {
    **{name: Dataset("sequence", sequences.open_source, sequences.validate)
       for name in sequences.DATASETS},
    **{name: Dataset("text", text.open_source, text.validate) for name in text.DATASETS},
}


def get_dataset(name: str) -> Dataset:
  """The registered dataset `name`, or a TFDS image dataset of that name."""
  return DATASETS.get(name, IMAGES)
