"""Real, offline text data: token sequences as random-access `Source`s, and the vocabulary.

Two datasets, each opened with `open_source(data_cfg, split)`:

  fortunes  ~15k short English texts (quotes, jokes, definitions, poems) in 43 files named by
            topic, from the Debian package `fortunes` (/usr/share/games/fortunes). Label = topic
            (file name). There is no official split: "train" / "test" are a split stratified by
            topic with config.data.test_fraction and config.data.split_seed, independent of the
            run's seed so every seed of an experiment shares one split.
  lm1b      One Billion Word benchmark sentences from TFDS, unlabelled (label 0, one class).

Tokens: word level (`tokenize`: lowercase, words and single punctuation marks) with a
`Vocabulary` built from the TRAIN split only, or bytes (`ByteVocabulary`, ids = byte + 3, an
exact round trip). Ids 0, 1, 2 are <pad>, <unk>, <mask> in both. Sequences are padded with
<pad> (0) to config.data.max_length, so a batch's arrays depend only on its examples.
"""

from __future__ import annotations

import collections
import difflib
import logging
import math
import os
import re
import zlib

import ml_collections
import numpy as np

from sslax.data import pipeline
from sslax.data.sequences import fit_lengths, validate_lengths, with_overrides
from sslax.errors import ConfigError

log = logging.getLogger(__name__)

DATASETS = ("fortunes", "lm1b")
TOKENIZERS = ("word", "bytes")

PAD, UNK, MASK = "<pad>", "<unk>", "<mask>"
SPECIALS = (PAD, UNK, MASK)
PAD_ID, UNK_ID, MASK_ID = 0, 1, 2
BYTE_OFFSET = len(SPECIALS)  # byte b has id b + 3

FORTUNES_DIR = "/usr/share/games/fortunes"
FORTUNES_INSTALL = "apt-get install fortunes"

# max_length: fortunes' 15,217 texts have a median of 22 word tokens, 95% at most 129, 99% at
# most 235, the longest 590; 128 keeps ~95% whole and crops the rest to their first 128 tokens.
# In bytes they are ~4.5x longer (median 97, 95% <= 597). lm1b sentences average ~27 tokens.
_DEFAULTS = {
  "fortunes": dict(max_length=128, min_count=2, max_vocab=0, path=FORTUNES_DIR),
  "lm1b": dict(max_length=64, min_count=3, max_vocab=32768, path=""),
}


def data_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """The full config.data block for text dataset `name`, every field with its default."""
  if name not in DATASETS:
    raise ConfigError(f"config.data.name: {name!r} is not a text dataset; choose one of {list(DATASETS)}")
  cfg = dict(
    name=name,
    train_split="train",
    test_split="test",
    data_dir="",  # TFDS data dir (lm1b); "" = TFDS's default
    too_long="crop",  # a text longer than max_length: "crop" (keep the first tokens) or "error"
    tokenizer="word",  # "word" (Vocabulary from the train split) or "bytes" (UTF-8 bytes)
    test_fraction=0.2,  # fortunes: share of each topic in "test"
    split_seed=0,  # fortunes: seed of that split; not the run's seed, so all seeds share one split
    download=False,  # lm1b only: let TFDS download and prepare it
    num_classes=0,  # 0: the dataset's
    **_DEFAULTS[name],
  )
  # min_count: words seen fewer times in the train split are <unk>; max_vocab: most ids
  # (specials included), 0 = no limit; path: fortunes' folder (one file per topic).
  return with_overrides(cfg, overrides)


def validate(config: ml_collections.ConfigDict) -> None:
  """The text data block, checked before any text is read: name, tokenizer, vocabulary limits,
  length policy and fortunes' test share."""
  data_cfg = config.data
  if data_cfg.name not in DATASETS:
    raise ConfigError(f"config.data.name: {data_cfg.name!r} is not one of {list(DATASETS)}")
  if data_cfg.tokenizer not in TOKENIZERS:
    raise ConfigError(f"config.data.tokenizer: {data_cfg.tokenizer!r} is not one of {list(TOKENIZERS)}")
  max_vocab = int(data_cfg.max_vocab)
  if max_vocab and max_vocab <= len(SPECIALS):
    raise ConfigError(f"config.data.max_vocab: must be 0 (no limit) or > {len(SPECIALS)}, got {max_vocab}")
  if not 0 < data_cfg.test_fraction < 1:
    raise ConfigError(f"config.data.test_fraction: must be in (0, 1), got {data_cfg.test_fraction}")
  validate_lengths(data_cfg)


# --------------------------------------------------------------------------- tokenizing

# A word (letters/digits/_ with inner apostrophes: "don't", "o'clock") or one other non-space
# character, so punctuation is kept as its own token and "a, b." -> ["a", ",", "b", "."].
_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")
# Overstrike (old man-page emphasis, e.g. "_\bI" or "___\b\b\bnot"): a character then a
# backspace; applied repeatedly it keeps what was typed last, as a terminal shows it.
_OVERSTRIKE = re.compile(r"[^\x08\n]\x08")


def clean(text: str) -> str:
  """Text with overstrikes resolved (backspace removes the character before it), stripped."""
  while "\x08" in text:
    shorter = _OVERSTRIKE.sub("", text, count=0)
    if shorter == text:  # backspaces with nothing before them
      shorter = text.replace("\x08", "")
    text = shorter
  return text.strip()


def tokenize(text: str) -> list[str]:
  """Word-level tokens of `text`: clean, lowercase, then words and single punctuation marks."""
  return _TOKEN.findall(clean(text).lower())


def normalize(text: str) -> str:
  """What a word-level round trip gives back: the tokens joined by single spaces."""
  return " ".join(tokenize(text))


class UnknownWordError(KeyError):
  """A word that is not in the vocabulary; the message names the closest known words."""

  def __init__(self, word: str, suggestions: list[str], size: int):
    self.word, self.suggestions = word, suggestions
    close = f"closest known words: {', '.join(suggestions)}" if suggestions else "no close known word"
    self.message = f"{word!r} is not in the vocabulary ({size} ids); {close}"
    super().__init__(self.message)

  def __str__(self) -> str:  # KeyError would print the repr of the message
    return self.message


class Vocabulary:
  """Word-level ids: <pad>=0, <unk>=1, <mask>=2, then words by descending train count, ties alphabetical.

  words list[str] [V]; counts int64 [V] aligned with ids (specials 0): the unigram counts for
  skip-gram's count^0.75 noise distribution. `encode` maps unknown words to <unk>.
  """

  tokenizer = "word"

  def __init__(self, words: list[str], counts):
    if tuple(words[: len(SPECIALS)]) != SPECIALS:
      raise ValueError(f"a vocabulary starts with {SPECIALS}, got {tuple(words[:3])}")
    self.words = list(words)
    self.counts = np.asarray(counts, np.int64)
    if len(self.counts) != len(self.words) or len(set(self.words)) != len(self.words):
      raise ValueError("words must be distinct and aligned with counts")
    self._ids = {w: i for i, w in enumerate(self.words)}

  @classmethod
  def from_texts(cls, texts, min_count: int = 1, max_vocab: int = 0) -> Vocabulary:
    """Counts tokens of `texts`; keeps those seen >= min_count times, at most max_vocab ids (0: all)."""
    if max_vocab and max_vocab <= len(SPECIALS):
      raise ConfigError(f"config.data.max_vocab: must be 0 (no limit) or > {len(SPECIALS)}, got {max_vocab}")
    counter = collections.Counter(t for text in texts for t in tokenize(text))
    kept = sorted(((-c, w) for w, c in counter.items() if c >= min_count and w not in SPECIALS))
    if max_vocab:
      kept = kept[: max_vocab - len(SPECIALS)]
    return cls(list(SPECIALS) + [w for _, w in kept], [0] * len(SPECIALS) + [-c for c, _ in kept])

  def __len__(self) -> int:
    return len(self.words)

  def __contains__(self, word: str) -> bool:
    return word in self._ids

  def encode(self, text: str) -> list[int]:
    return [self._ids.get(t, UNK_ID) for t in tokenize(text)]

  def decode(self, ids) -> str:
    """Tokens joined by single spaces; <pad> ids are dropped (a padded row decodes to its text)."""
    return " ".join(self.words[i] for i in np.asarray(ids, np.int64).ravel() if i != PAD_ID)

  def id(self, word: str) -> int:
    """The id of `word` (looked up lowercased, as `tokenize` emits it); UnknownWordError if unknown."""
    for key in (word, word.lower()):
      if key in self._ids:
        return self._ids[key]
    close = difflib.get_close_matches(word.lower(), self.words[len(SPECIALS) :], n=5, cutoff=0.6)
    raise UnknownWordError(word, close, len(self))

  def save(self, path: str) -> None:
    """Plain text: a header line, then one 'word<TAB>count' line per id in id order."""
    with open(path, "w", encoding="utf-8") as f:
      f.write(f"# sslax vocabulary tokenizer={self.tokenizer} size={len(self)}\n")
      f.writelines(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts))

  @classmethod
  def load(cls, path: str) -> Vocabulary:
    """Reads `save`'s file; a bytes vocabulary comes back as a ByteVocabulary."""
    with open(path, encoding="utf-8") as f:
      header = f.readline()
      rows = [line.rstrip("\n").split("\t") for line in f]
    match = re.match(r"# sslax vocabulary tokenizer=(\w+) size=(\d+)$", header.strip())
    if not match or len(rows) != int(match.group(2)):
      raise ValueError(f"{path} is not a vocabulary written by Vocabulary.save")
    counts = [int(c) for _, c in rows]
    if match.group(1) == "bytes":
      return ByteVocabulary(counts)
    return Vocabulary([w for w, _ in rows], counts)


class ByteVocabulary(Vocabulary):
  """UTF-8 bytes: id = byte value + 3 after <pad>, <unk>, <mask>; 259 ids; exact round trip.

  Texts are cleaned (overstrikes resolved, stripped) but not lowercased. counts int64 [259] are
  the byte counts of the training texts.
  """

  tokenizer = "bytes"

  def __init__(self, counts=None):
    words = list(SPECIALS) + [f"<0x{b:02x}>" for b in range(256)]
    super().__init__(words, np.zeros(len(words), np.int64) if counts is None else counts)

  @classmethod
  def from_texts(cls, texts, min_count: int = 1, max_vocab: int = 0) -> ByteVocabulary:
    del min_count, max_vocab  # every byte always has an id
    counts = np.zeros(BYTE_OFFSET + 256, np.int64)
    for text in texts:
      counts[BYTE_OFFSET:] += np.bincount(np.frombuffer(clean(text).encode("utf-8"), np.uint8), minlength=256)
    return cls(counts)

  def encode(self, text: str) -> list[int]:
    return (np.frombuffer(clean(text).encode("utf-8"), np.uint8).astype(np.int64) + BYTE_OFFSET).tolist()

  def decode(self, ids) -> str:
    """The UTF-8 text of the byte ids; specials are dropped, invalid UTF-8 is replaced (U+FFFD)."""
    ids = np.asarray(ids, np.int64).ravel()
    return bytes((ids[ids >= BYTE_OFFSET] - BYTE_OFFSET).astype(np.uint8)).decode("utf-8", errors="replace")

  def id(self, word: str) -> int:
    """Id of a special, a '<0xNN>' name, or a character whose UTF-8 encoding is one byte."""
    if word in self._ids:
      return self._ids[word]
    encoded = word.encode("utf-8")
    if len(encoded) == 1:
      return encoded[0] + BYTE_OFFSET
    raise UnknownWordError(word, [f"<0x{b:02x}>" for b in encoded[:5]], len(self))


# ----------------------------------------------------------------------------- sources


class TextSource(pipeline.Source):
  """A split of token sequences held in memory (ragged, padded on `get`).

  get(indices int [B]) -> dict(tokens int32 [B, T] (0 = <pad>), mask bool [B, T] (True = real
  token), label int32 [B]), T = max_length. Attributes: num_classes, class_names, vocab,
  input_shape (T,), lengths int [N] (real tokens per example, after any crop), texts (the
  cleaned texts), skipped_empty (empty texts dropped when reading), num_cropped.
  """

  modality = "text"
  input_key = "tokens"
  dtype = np.int32
  pixel_mean, pixel_std = (0.0,), (1.0,)  # token ids: nothing to normalize

  def __init__(
    self,
    ids: list[list[int]],
    labels,
    class_names: list[str],
    vocab: Vocabulary,
    lengths: np.ndarray,
    max_length: int,
    *,
    texts: list[str] | None = None,
    skipped_empty: int = 0,
  ):
    """ids: each text's token ids (any length); lengths int [N]: how many of them to keep (<= max_length)."""
    assert len(ids) == len(labels) == len(lengths)
    self.lengths = np.asarray(lengths, np.int64)
    self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)  # [N + 1]
    # One flat int32 array: lm1b's 30M sentences padded to T would take several times more.
    self.flat = np.fromiter(
      (t for seq, n in zip(ids, self.lengths) for t in seq[:n]), np.int32, count=int(self.offsets[-1])
    )
    self.labels = np.asarray(labels, np.int32)
    self.class_names = list(class_names)
    self.num_classes = len(self.class_names)
    self.vocab = vocab
    self.max_length = int(max_length)
    self.input_shape = (self.max_length,)
    self.texts = texts
    self.skipped_empty = int(skipped_empty)
    self.num_cropped = int(sum(len(seq) > n for seq, n in zip(ids, self.lengths)))

  def __len__(self) -> int:
    return len(self.labels)

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices, np.int64)
    steps = np.arange(self.max_length)
    mask = steps[None, :] < self.lengths[indices, None]  # [B, T]
    at = np.minimum(self.offsets[indices, None] + steps[None, :], max(len(self.flat) - 1, 0))
    tokens = np.where(mask, self.flat[at] if len(self.flat) else 0, PAD_ID).astype(np.int32)
    return dict(tokens=tokens, mask=mask, label=self.labels[indices])


# ------------------------------------------------------------------------------ fortunes


class FortuneCorpus:
  """All fortunes of a folder: texts (cleaned, non-empty), topics (file name of each), skipped_empty."""

  def __init__(self, texts: list[str], topics: list[str], skipped_empty: int):
    self.texts, self.topics, self.skipped_empty = texts, topics, skipped_empty
    self.class_names = sorted(set(topics))


def fortune_files(path: str) -> list[str]:
  """Topic files of a fortunes folder, sorted: regular files, without strfile's .dat indexes,
  the .u8 links to the same files, hidden files, and subfolders (e.g. off/, the offensive ones)."""
  names = []
  for name in sorted(os.listdir(path)):
    full = os.path.join(path, name)
    if name.startswith(".") or name.endswith((".dat", ".u8")) or not os.path.isfile(full):
      continue
    names.append(name)
  return names


def split_fortunes(text: str) -> list[str]:
  """The raw fortunes of one file: the parts between lines holding only '%'. Text after the last
  '%' is a fortune too when there is any (files normally end with '%')."""
  parts, current = [], []
  for line in text.splitlines(keepends=True):
    if line.rstrip("\r\n") == "%":
      parts.append("".join(current))
      current = []
    else:
      current.append(line)
  if current:
    parts.append("".join(current))
  return parts


def read_fortunes(path: str = FORTUNES_DIR) -> FortuneCorpus:
  """Reads every topic file of `path`; texts empty after `clean` are skipped, counted and logged once."""
  files = fortune_files(path) if os.path.isdir(path) else []
  if not files:
    raise pipeline.DatasetNotFoundError(
      f"No fortune files in {path}. Install the Debian package with `{FORTUNES_INSTALL}` (as root; "
      f"it puts about 40 topic files in {FORTUNES_DIR}), or set config.data.path to a folder of "
      "fortune files (texts separated by lines holding '%')."
    )
  texts, topics, skipped = [], [], 0
  for name in files:
    with open(os.path.join(path, name), encoding="utf-8", errors="replace") as f:
      for raw in split_fortunes(f.read()):
        text = clean(raw)
        if not text:
          skipped += 1
          continue
        texts.append(text)
        topics.append(name)
  if skipped:
    log.info("fortunes in %s: skipped %d empty texts (kept %d)", path, skipped, len(texts))
  return FortuneCorpus(texts, topics, skipped)


def stratified_split(topics: list[str], test_fraction: float, split_seed: int) -> dict[str, np.ndarray]:
  """{"train": int [N_train], "test": int [N_test]} indices into `topics`, each in corpus order.

  Per topic, round(n * test_fraction) texts go to test (at most n - 1, so every topic is in
  train), picked by a generator seeded with (split_seed, crc32(topic)): a topic's split does not
  change when other topics are added or removed.
  """
  if not 0 < test_fraction < 1:
    raise ConfigError(f"config.data.test_fraction: must be in (0, 1), got {test_fraction}")
  topics = np.asarray(topics)
  test = []
  for topic in sorted(set(topics.tolist())):
    members = np.flatnonzero(topics == topic)
    n_test = min(int(math.floor(len(members) * test_fraction + 0.5)), len(members) - 1)
    rng = np.random.default_rng([int(split_seed), zlib.crc32(topic.encode("utf-8"))])
    test.append(rng.permutation(members)[:n_test])
  is_test = np.zeros(len(topics), bool)
  is_test[np.concatenate(test) if test else []] = True
  return {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}


def _fortunes_split(data_cfg, split: str):
  corpus = read_fortunes(data_cfg.path or FORTUNES_DIR)
  parts = stratified_split(corpus.topics, float(data_cfg.test_fraction), int(data_cfg.split_seed))
  if split not in parts:
    raise ConfigError(
      f"config.data: fortunes has splits {sorted(parts)} (made by config.data.split_seed), not {split!r}"
    )
  ids = {c: i for i, c in enumerate(corpus.class_names)}
  texts = [corpus.texts[i] for i in parts[split]]
  labels = np.array([ids[corpus.topics[i]] for i in parts[split]], np.int32)
  return texts, labels, corpus.class_names, corpus.skipped_empty


# ---------------------------------------------------------------------------------- lm1b


def _tfds_split(data_cfg, split: str):
  """lm1b sentences of a TFDS split, in file order; empty ones skipped and counted."""
  import tensorflow as tf

  builder = pipeline.prepared_builder(data_cfg.name, data_cfg.data_dir or None, bool(data_cfg.download))
  ds = builder.as_dataset(split=split, shuffle_files=False).map(lambda ex: ex["text"]).batch(4096)
  texts, skipped = [], 0
  for batch in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
    for raw in batch:
      text = clean(raw.decode("utf-8", errors="replace"))
      if text:
        texts.append(text)
      else:
        skipped += 1
  if skipped:
    log.info("%s split %r: skipped %d empty texts (kept %d)", data_cfg.name, split, skipped, len(texts))
  return texts, np.zeros(len(texts), np.int32), [data_cfg.name], skipped


_READERS = {"fortunes": _fortunes_split, "lm1b": _tfds_split}


def _read_split(data_cfg, split: str):
  """(texts, labels int32 [N], class_names, skipped_empty) of a split."""
  if data_cfg.name not in _READERS:
    raise ConfigError(f"config.data.name: {data_cfg.name!r} is not one of {list(DATASETS)}")
  return _READERS[data_cfg.name](data_cfg, split)


# ------------------------------------------------------------------------- vocabulary

def _vocabulary_of(data_cfg, train_texts: list[str]) -> Vocabulary:
  if data_cfg.tokenizer not in TOKENIZERS:
    raise ConfigError(f"config.data.tokenizer: {data_cfg.tokenizer!r} is not one of {list(TOKENIZERS)}")
  cls = ByteVocabulary if data_cfg.tokenizer == "bytes" else Vocabulary
  return cls.from_texts(train_texts, int(data_cfg.min_count), int(data_cfg.max_vocab))


def build_vocabulary(
  data_cfg: ml_collections.ConfigDict, train_texts: list[str] | None = None
) -> Vocabulary:
  """The vocabulary of data_cfg's TRAIN split (its texts, read here unless given): a function
  of the config alone (and the data files), so a later command (evaluation, nearest words)
  rebuilds the very same ids."""
  if train_texts is None:
    train_texts = _read_split(data_cfg, data_cfg.train_split)[0]
  return _vocabulary_of(data_cfg, train_texts)


# ------------------------------------------------------------------------- open_source


def open_source(data_cfg: ml_collections.ConfigDict, split: str,
                train: TextSource | None = None) -> TextSource:
  """Opens split `split` of text dataset data_cfg.name (see `data_config` for the fields);
  `train`: the train split already opened, whose vocabulary the split shares (else it is
  built from the train split's texts, read again: lm1b's take minutes).

  Raises DatasetNotFoundError (with the install command) when the data is missing and
  ConfigError for settings that cannot work.
  """
  texts, labels, class_names, skipped = _read_split(data_cfg, split)
  if train is not None:
    vocab = train.vocab
  else:
    vocab = build_vocabulary(data_cfg, texts if split == data_cfg.train_split else None)
  ids = [vocab.encode(t) for t in texts]
  where = f"{data_cfg.name} split {split!r}"
  lengths = fit_lengths(np.array([len(x) for x in ids], np.int64), data_cfg, where)
  source = TextSource(
    ids, labels, class_names, vocab, lengths, int(data_cfg.max_length), texts=texts, skipped_empty=skipped
  )
  if data_cfg.get("num_classes", 0) and data_cfg.num_classes != source.num_classes:
    raise ConfigError(
      f"config.data.num_classes: {data_cfg.num_classes}, but {data_cfg.name} has "
      f"{source.num_classes} classes; set it to 0 (the dataset's) or {source.num_classes}"
    )
  return source


__all__ = [
  "DATASETS",
  "MASK_ID",
  "PAD_ID",
  "UNK_ID",
  "ByteVocabulary",
  "FortuneCorpus",
  "TextSource",
  "UnknownWordError",
  "Vocabulary",
  "build_vocabulary",
  "clean",
  "data_config",
  "normalize",
  "open_source",
  "read_fortunes",
  "stratified_split",
  "tokenize",
]
