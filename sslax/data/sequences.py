"""Real, offline sequence data (frames of features over time) as random-access `Source`s.

Three datasets, each opened with `open_source(data_cfg, split)`:

  japanese_vowels     12 LPC cepstral coefficients per 10 ms frame of a Japanese vowel
                      utterance, 7-29 frames, labelled with one of 9 speakers; 270 train /
                      370 test. Read from the .ts files that ship in the PyPI package aeon
                      (`pip install --no-deps aeon`: only the data files are used, aeon itself
                      is never imported, so its heavy dependencies need not be installed).
  fashion_mnist_rows  each Fashion-MNIST image read top to bottom as 28 frames of 28 pixels,
                      from the same local TFDS dataset the image methods use.
  speech_commands     TFDS audio (16 kHz keyword clips, 12 classes) through a log-mel front end.

Every source pads (or crops) to config.data.max_length frames, so a batch's arrays depend only
on the examples in it, never on the batch's composition. Frames are standardized with
per-feature statistics of the TRAIN split (fashion_mnist_rows: the image pipeline's pixel
mean/std), so the test split is never looked at to normalize it; padded frames are exactly 0.
"""

from __future__ import annotations

import logging
import math
import os
from importlib.util import find_spec  # module-level name, so tests can fake a missing aeon

import ml_collections
import numpy as np

from sslax.data import pipeline
from sslax.errors import ConfigError

log = logging.getLogger(__name__)

DATASETS = ("japanese_vowels", "fashion_mnist_rows", "speech_commands")
TOO_LONG = ("crop", "error")

AEON_INSTALL = ".venv/bin/python -m pip install --no-deps aeon"

# Per dataset: default config.data.max_length and splits. speech_commands' 1 s clips give
# 98 frames (25 ms window, 10 ms hop); 100 leaves room without a second bucket.
_DEFAULTS = {
  "japanese_vowels": dict(max_length=32, train_split="train", test_split="test"),
  "fashion_mnist_rows": dict(max_length=28, train_split="train", test_split="test"),
  "speech_commands": dict(max_length=100, train_split="train", test_split="test"),
}

# Log-mel front end of speech_commands.
SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
FFT_LENGTH = 512
NUM_MEL_BINS = 40
MEL_LOW_HZ, MEL_HIGH_HZ = 20.0, 8000.0
LOG_OFFSET = 1e-6


def data_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """The full config.data block for sequence dataset `name`, every field with its default."""
  if name not in DATASETS:
    raise ConfigError(f"config.data.name: {name!r} is not a sequence dataset; choose one of {list(DATASETS)}")
  cfg = dict(
    name=name,
    data_dir="",  # "" = default: aeon's data folder (japanese_vowels) / TFDS's data dir
    too_long="error",  # a sequence longer than max_length: "error" or "crop" (keep the first frames)
    download=False,  # speech_commands only: let TFDS download and prepare it
    num_classes=0,  # 0: the dataset's
    **_DEFAULTS[name],
  )
  return with_overrides(cfg, overrides)


def with_overrides(cfg: dict, overrides: dict) -> ml_collections.ConfigDict:
  unknown = sorted(set(overrides) - set(cfg))
  if unknown:
    raise ConfigError(
      f"config.data: unknown field(s) {unknown} for {cfg['name']!r}; fields are {sorted(cfg)}"
    )
  cfg.update(overrides)
  return ml_collections.ConfigDict(cfg)


# ----------------------------------------------------------------------------- sources


class SequenceSource(pipeline.Source):
  """A split of frame sequences held in memory.

  get(indices int [B]) -> dict(frames float32 [B, T, F], mask bool [B, T] (True = real frame),
  label int32 [B]), T = max_length. Attributes: num_classes, class_names, input_shape (T, F),
  lengths int [N] (real frames per example, after any crop), num_cropped, mean / std float32 [F]
  (the train statistics used to standardize).
  """

  modality = "sequence"
  input_key = "frames"
  dtype = np.float32
  pixel_mean, pixel_std = (0.0,), (1.0,)  # standardized here already, with the train statistics

  def __init__(
    self,
    frames: np.ndarray,
    lengths: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    *,
    mean: np.ndarray,
    std: np.ndarray,
    num_cropped: int = 0,
  ):
    """frames float32 [N, T, F] already standardized, 0 past each length; lengths int [N]; labels int [N]."""
    assert frames.ndim == 3 and len(frames) == len(lengths) == len(labels)
    self.frames = frames.astype(np.float32, copy=False)
    self.lengths = np.asarray(lengths, np.int64)
    self.labels = np.asarray(labels, np.int32)
    self.masks = np.arange(frames.shape[1])[None, :] < self.lengths[:, None]  # [N, T]
    self.class_names = list(class_names)
    self.num_classes = len(self.class_names)
    self.input_shape = tuple(frames.shape[1:])  # (T, F)
    self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    self.num_cropped = int(num_cropped)

  def __len__(self) -> int:
    return len(self.frames)

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    return dict(frames=self.frames[indices], mask=self.masks[indices], label=self.labels[indices])


def mean_pooled(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """The raw-feature baseline: mean over the real frames. frames [N, T, F], mask bool [N, T] -> [N, F]."""
  mask = np.asarray(mask, frames.dtype)[..., None]
  return (frames * mask).sum(1) / np.maximum(mask.sum(1), 1)


# ------------------------------------------------------------------------ length policy


def validate_lengths(data_cfg) -> None:
  """config.data.max_length and too_long, checked before any data is read."""
  max_length, too_long = int(data_cfg.max_length), data_cfg.too_long
  if max_length <= 0:
    raise ConfigError(f"config.data.max_length: must be > 0, got {max_length}")
  if too_long not in TOO_LONG:
    raise ConfigError(f"config.data.too_long: {too_long!r} is not one of {list(TOO_LONG)}")


def validate(config: ml_collections.ConfigDict) -> None:
  """The sequence data block: a known name and a length policy that can work."""
  if config.data.name not in DATASETS:
    raise ConfigError(f"config.data.name: {config.data.name!r} is not one of {list(DATASETS)}")
  validate_lengths(config.data)


def fit_lengths(lengths: np.ndarray, data_cfg, where: str) -> np.ndarray:
  """Lengths after config.data.too_long: int [N] -> int [N] clipped to config.data.max_length.

  Raises ConfigError for too_long = "error" when any is longer, saying what was found and how
  to change either setting; with "crop" logs (once) how many were cropped. `where` names the
  data in messages, e.g. "japanese_vowels split 'train'".
  """
  validate_lengths(data_cfg)
  max_length, too_long = int(data_cfg.max_length), data_cfg.too_long
  lengths = np.asarray(lengths, np.int64)
  longer = lengths > max_length
  if longer.any():
    longest = int(lengths.max())
    if too_long == "error":
      raise ConfigError(
        f"config.data.max_length: {where} has {int(longer.sum())} of {len(lengths)} examples longer "
        f"than config.data.max_length = {max_length} (the longest has length {longest}), and "
        f"config.data.too_long = 'error'. Raise the limit with --config.data.max_length={longest} "
        f"or more, or keep the first {max_length} of each with --config.data.too_long=crop."
      )
    log.warning(
      "%s: cropped %d of %d examples longer than config.data.max_length = %d (longest %d); "
      "config.data.too_long = 'crop'",
      where, int(longer.sum()), len(lengths), max_length, longest,
    )
  return np.minimum(lengths, max_length)


def _stats(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """Per-feature mean and std float32 [F] over every real frame of `series` (NaN = missing, ignored).

  Running float64 sums, one series at a time: all of speech_commands' train frames at once
  would take ~2.6 GB.
  """
  count = total = squares = 0.0
  for s in series:
    s = s.astype(np.float64)
    count = count + (~np.isnan(s)).sum(0)
    total = total + np.nansum(s, 0)
    squares = squares + np.nansum(s * s, 0)
  count = np.maximum(count, 1)
  mean = total / count
  std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
  return mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)  # constant: unscaled


def _padded(series: list[np.ndarray], lengths: np.ndarray, max_length: int, mean, std) -> np.ndarray:
  """Standardized, zero-padded frames float32 [N, max_length, F] of `series` cropped to `lengths`."""
  features = series[0].shape[1] if series else len(mean)
  out = np.zeros((len(series), max_length, features), np.float32)
  for i, (s, n) in enumerate(zip(series, lengths)):
    # Missing values (NaN) become the train mean, i.e. 0 after standardizing.
    out[i, :n] = np.nan_to_num((s[:n] - mean) / std, nan=0.0)
  return out


def _source(series, labels, class_names, data_cfg, where, mean, std) -> SequenceSource:
  lengths = fit_lengths(np.array([len(s) for s in series], np.int64), data_cfg, where)
  frames = _padded(series, lengths, int(data_cfg.max_length), mean, std)
  cropped = int(sum(len(s) > n for s, n in zip(series, lengths)))
  return SequenceSource(frames, lengths, labels, class_names, mean=mean, std=std, num_cropped=cropped)


# --------------------------------------------------------------------------- .ts files


class TSData:
  """Contents of a .ts file: series (list of float32 [T_i, F], NaN = missing), labels (list of str, or
  None without class labels), header (dict of the @ lines, lower-cased keys, e.g. 'dimensions': '12')."""

  def __init__(self, series: list[np.ndarray], labels: list[str] | None, header: dict[str, str]):
    self.series, self.labels, self.header = series, labels, header


def read_ts(path: str) -> TSData:
  """Reads a sktime/aeon .ts file (https://www.aeon-toolkit.org: "ts file format").

  Lines: '#' comments, '@key value' headers up to '@data', then one series per line: its
  dimensions separated by ':', each a ','-separated list of values, then the class label
  (when '@classLabel true'). Series may differ in length; '?' is a missing value (NaN), and
  trailing frames missing in every dimension are dropped (padding of unequal lengths).
  """
  header: dict[str, str] = {}
  series, labels = [], []
  in_data = False
  with open(path, encoding="utf-8") as f:
    for number, raw in enumerate(f, 1):
      line = raw.strip()
      if not line or line.startswith("#"):
        continue
      if not in_data:
        if not line.startswith("@"):
          raise ValueError(f"{path}:{number}: expected an @ header line before @data, got {line[:40]!r}")
        key, _, value = line[1:].partition(" ")
        if key.lower() == "data":
          in_data = True
        else:
          header[key.lower()] = value.strip()
        continue
      if header.get("timestamps", "false").lower() == "true":
        raise ValueError(f"{path}: time-stamped .ts files (@timeStamps true) are not supported")
      has_label = header.get("classlabel", "false").split(" ")[0].lower() == "true"
      parts = line.split(":")
      if has_label:
        labels.append(parts.pop().strip())
      try:
        dims = [[math.nan if v.strip() == "?" else float(v) for v in p.split(",")] for p in parts]
      except ValueError as e:
        raise ValueError(f"{path}:{number}: {e}") from e
      if len({len(d) for d in dims}) != 1:
        raise ValueError(f"{path}:{number}: dimensions have different lengths {[len(d) for d in dims]}")
      frames = np.array(dims, np.float32).T  # [T, F]
      missing = np.isnan(frames).all(1)
      while len(frames) and missing[len(frames) - 1]:
        frames = frames[:-1]
      series.append(frames)
  if not in_data:
    raise ValueError(f"{path}: no @data line")
  dims = {s.shape[1] for s in series}
  if len(dims) > 1:
    raise ValueError(f"{path}: series have different numbers of dimensions {sorted(dims)}")
  if "dimensions" in header and dims and int(header["dimensions"]) not in dims:
    raise ValueError(f"{path}: header says {header['dimensions']} dimensions, the data has {dims.pop()}")
  return TSData(series, labels if labels else None, header)


def sorted_classes(names) -> list[str]:
  """Distinct class names in sorted order; numeric names in numeric order ('2' before '10')."""
  names = set(names)

  def is_number(s: str) -> bool:
    try:
      float(s)
      return True
    except ValueError:
      return False

  if all(is_number(s) for s in names):
    return sorted(names, key=float)
  return sorted(names)


# ------------------------------------------------------------------------ japanese_vowels


def aeon_data_dir() -> str | None:
  """aeon's bundled data folder (.../aeon/datasets/data), found without importing aeon; None if absent."""
  spec = find_spec("aeon")
  if spec is None or not spec.submodule_search_locations:
    return None
  for root in spec.submodule_search_locations:
    folder = os.path.join(root, "datasets", "data")
    if os.path.isdir(folder):
      return folder
  return None


def _japanese_vowels_files(data_cfg) -> dict[str, str]:
  folder = data_cfg.data_dir or aeon_data_dir()
  if folder is None:
    raise pipeline.DatasetNotFoundError(
      "japanese_vowels reads the .ts files bundled with the Python package aeon, which is not "
      f"installed. Install its data (without its heavy dependencies) with `{AEON_INSTALL}`, or "
      "set config.data.data_dir to a folder holding JapaneseVowels/JapaneseVowels_TRAIN.ts and "
      "JapaneseVowels_TEST.ts."
    )
  files = {
    s: os.path.join(folder, "JapaneseVowels", f"JapaneseVowels_{s.upper()}.ts") for s in ("train", "test")
  }
  missing = [p for p in files.values() if not os.path.exists(p)]
  if missing:
    raise pipeline.DatasetNotFoundError(
      f"japanese_vowels: {', '.join(missing)} not found. Reinstall aeon's data with "
      f"`{AEON_INSTALL} --force-reinstall`, or point config.data.data_dir at a folder holding "
      "JapaneseVowels/JapaneseVowels_TRAIN.ts and JapaneseVowels_TEST.ts."
    )
  return files


def _open_japanese_vowels(data_cfg, split: str) -> SequenceSource:
  files = _japanese_vowels_files(data_cfg)
  if split not in files:
    raise ConfigError(f"config.data: japanese_vowels has splits {sorted(files)}, not {split!r}")
  data = {s: read_ts(p) for s, p in files.items()}  # both: train for the statistics, labels from both
  classes = sorted_classes(lb for d in data.values() for lb in d.labels)
  ids = {c: i for i, c in enumerate(classes)}
  mean, std = _stats(data["train"].series)
  d = data[split]
  labels = np.array([ids[lb] for lb in d.labels], np.int32)
  return _source(d.series, labels, classes, data_cfg, f"japanese_vowels split {split!r}", mean, std)


# --------------------------------------------------------------------- fashion_mnist_rows


def _open_fashion_mnist_rows(data_cfg, split: str) -> SequenceSource:
  images = pipeline.open_source(
    "fashion_mnist", split, data_dir=data_cfg.data_dir or None, image_size=28, in_memory=True
  )
  whole = images.get(np.arange(len(images)))
  info = pipeline.DATASET_INFO["fashion_mnist"]
  # The image pipeline's normalization (0.2860 / 0.3530, from the training pixels), one scalar
  # for all 28 features: every row is the same kind of measurement.
  mean = np.full(28, info["mean"][0], np.float32)
  std = np.full(28, info["std"][0], np.float32)
  rows = whole["image"][..., 0].astype(np.float32) / 255.0  # [N, 28 rows, 28 pixels]
  names = _fashion_mnist_names(data_cfg)
  where = f"fashion_mnist_rows split {split!r}"
  return _source(list(rows), whole["label"], names, data_cfg, where, mean, std)


def _fashion_mnist_names(data_cfg) -> list[str]:
  try:
    import tensorflow_datasets as tfds

    builder = tfds.builder("fashion_mnist", data_dir=data_cfg.data_dir or None)
    return list(builder.info.features["label"].names)
  except Exception:  # noqa: BLE001 - names are cosmetic; a fake source in tests has no builder
    return [str(i) for i in range(10)]


# ------------------------------------------------------------------------ speech_commands


def log_mel_tf(audio):
  """int16 or float audio [S] at 16 kHz -> float32 [frames, 40] log-mel energies (TensorFlow ops).

  Hann window of 25 ms (400 samples), hop 10 ms (160), 512-point FFT, power spectrum, 40 mel
  bins (TF's HTK mel scale, 20-8000 Hz), log(x + 1e-6). Clips shorter than one window are
  zero-padded to one, so every clip has at least one frame; 1 s (16000 samples) gives 98.
  """
  import tensorflow as tf

  x = tf.cast(audio, tf.float32)
  if audio.dtype == tf.int16:
    x = x / 32768.0
  x = tf.pad(x, [[0, tf.maximum(0, WINDOW - tf.shape(x)[0])]])
  spec = tf.signal.stft(x, WINDOW, HOP, FFT_LENGTH, window_fn=tf.signal.hann_window, pad_end=False)
  power = tf.math.real(spec) ** 2 + tf.math.imag(spec) ** 2  # [frames, 257]
  mel = tf.signal.linear_to_mel_weight_matrix(
    NUM_MEL_BINS, FFT_LENGTH // 2 + 1, SAMPLE_RATE, MEL_LOW_HZ, MEL_HIGH_HZ
  )  # [257, 40]
  return tf.math.log(tf.matmul(power, mel) + LOG_OFFSET)


def log_mel(audio: np.ndarray) -> np.ndarray:
  """numpy wrapper of `log_mel_tf`: audio [S] -> float32 [frames, 40]."""
  import tensorflow as tf

  return log_mel_tf(tf.constant(audio)).numpy()


def _speech_commands_features(data_cfg, split: str):
  """(list of float32 [T_i, 40], labels int [N], class names) of a TFDS split, in file order."""
  import tensorflow as tf

  builder = pipeline.prepared_builder("speech_commands", data_cfg.data_dir or None, bool(data_cfg.download))
  ds = builder.as_dataset(split=split, shuffle_files=False)
  ds = ds.map(lambda ex: (log_mel_tf(ex["audio"]), ex["label"]), num_parallel_calls=tf.data.AUTOTUNE)
  series, labels = [], []
  for feats, label in ds.as_numpy_iterator():
    series.append(feats)
    labels.append(label)
  if not series:
    raise ValueError(f"split {split!r} of speech_commands in {builder.data_dir} has no examples")
  return series, np.array(labels, np.int32), list(builder.info.features["label"].names)


def _open_speech_commands(data_cfg, split: str, train: SequenceSource | None = None) -> SequenceSource:
  series, labels, names = _speech_commands_features(data_cfg, split)
  if train is not None:  # the train split's statistics, without decoding it again
    mean, std = train.mean, train.std
  elif split == data_cfg.train_split:
    mean, std = _stats(series)
  else:
    mean, std = _stats(_speech_commands_features(data_cfg, data_cfg.train_split)[0])
  return _source(series, labels, names, data_cfg, f"speech_commands split {split!r}", mean, std)


# ------------------------------------------------------------------------- open_source

_OPENERS = {
  "japanese_vowels": _open_japanese_vowels,
  "fashion_mnist_rows": _open_fashion_mnist_rows,
  "speech_commands": _open_speech_commands,
}


def open_source(data_cfg: ml_collections.ConfigDict, split: str,
                train: SequenceSource | None = None) -> SequenceSource:
  """Opens split `split` of sequence dataset data_cfg.name (see `data_config` for the fields);
  `train`: the train split already opened, whose standardization statistics the split shares
  (speech_commands; the others read both splits' small files anyway).

  Raises DatasetNotFoundError (with the install command) when the data is missing and
  ConfigError for settings that cannot work (unknown name, too long with too_long="error").
  """
  if data_cfg.name not in _OPENERS:
    raise ConfigError(f"config.data.name: {data_cfg.name!r} is not one of {list(DATASETS)}")
  if data_cfg.name == "speech_commands":
    source = _open_speech_commands(data_cfg, split, train)
  else:
    source = _OPENERS[data_cfg.name](data_cfg, split)
  if data_cfg.get("num_classes", 0) and data_cfg.num_classes != source.num_classes:
    raise ConfigError(
      f"config.data.num_classes: {data_cfg.num_classes}, but {data_cfg.name} has "
      f"{source.num_classes} classes; set it to 0 (the dataset's) or {source.num_classes}"
    )
  return source


__all__ = [
  "DATASETS",
  "SequenceSource",
  "TSData",
  "aeon_data_dir",
  "data_config",
  "fit_lengths",
  "log_mel",
  "log_mel_tf",
  "mean_pooled",
  "open_source",
  "read_ts",
  "sorted_classes",
]
