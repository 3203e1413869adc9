"""Sequence and text data: the .ts reader, standardization and padding, the datasets' sources, the
vocabulary, the too-long policy and the missing-data messages.

Never needs the real data: JapaneseVowels and fortunes are tiny synthetic files written here,
Fashion-MNIST a fake in-memory source and the conftest's tiny idx files (the real TFDS
path, read back here with NumPy), speech_commands and lm1b go through
tfds.testing.mock_data.
"""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sslax.data import pipeline, sequences, text
from sslax.errors import ConfigError

# ------------------------------------------------------------------------------ .ts files

_TS_HEADER = """#A comment line
# another
@problemName Tiny
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true 1 2 10
@data
"""


def _ts_line(series, label):
  """series float [T, F] -> a .ts data line: dimensions joined by ':', label last."""
  return ":".join(",".join(repr(float(v)) for v in dim) for dim in np.asarray(series).T) + f":{label}\n"


def _write_ts(path, series, labels):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(_TS_HEADER + "".join(_ts_line(s, lb) for s, lb in zip(series, labels)))


def _random_series(rng, lengths, features=2, shift=0.0):
  scale, offset = np.array([1.0, 3.0]), np.array([2.0, -1.0]) + shift
  return [(rng.normal(size=(n, features)) * scale + offset).astype(np.float32) for n in lengths]


def test_read_ts_variable_lengths_missing_and_labels(tmp_path):
  path = tmp_path / "tiny.ts"
  path.write_text(
    _TS_HEADER + "1.0,2.0,3.0:4.0,5.0,6.0:10\n"
    "0.5,?:1.5,2.5:2\n"  # a missing value inside
    "\n"
    "7,8,9,?,?:1,2,3,?,?:1\n"  # trailing frames missing in every dimension: padding, dropped
  )
  data = sequences.read_ts(str(path))
  assert [s.shape for s in data.series] == [(3, 2), (2, 2), (3, 2)]
  assert all(s.dtype == np.float32 for s in data.series)
  np.testing.assert_array_equal(data.series[0], [[1, 4], [2, 5], [3, 6]])
  assert np.isnan(data.series[1][1, 0]) and data.series[1][1, 1] == 2.5
  assert data.labels == ["10", "2", "1"]
  assert data.header["dimensions"] == "2" and data.header["problemname"] == "Tiny"
  assert sequences.sorted_classes(data.labels) == ["1", "2", "10"]  # numeric order
  assert sequences.sorted_classes(["b", "a", "10"]) == ["10", "a", "b"]

  bad = tmp_path / "bad.ts"
  bad.write_text(_TS_HEADER + "1,2:3:1\n")
  with pytest.raises(ValueError, match="different lengths"):
    sequences.read_ts(str(bad))


@pytest.fixture
def vowels_dir(tmp_path):
  """data_dir with JapaneseVowels/{TRAIN,TEST}.ts: 6 train and 4 test series of 2 features,
  lengths 3..9, labels '1', '2', '10'. Returns (data_dir, {split: (series, labels)})."""
  rng = np.random.default_rng(0)
  splits = {
    "train": (_random_series(rng, [3, 5, 9, 4, 7, 6]), ["1", "2", "10", "1", "2", "10"]),
    "test": (_random_series(rng, [8, 3, 6, 5], shift=5.0), ["10", "10", "2", "1"]),
  }
  for split, (series, labels) in splits.items():
    _write_ts(str(tmp_path / "JapaneseVowels" / f"JapaneseVowels_{split.upper()}.ts"), series, labels)
  return str(tmp_path), splits


def test_japanese_vowels_train_statistics_and_zero_padding(vowels_dir):
  data_dir, raw = vowels_dir
  cfg = sequences.data_config("japanese_vowels", data_dir=data_dir, max_length=10)
  train_frames = np.concatenate(raw["train"][0])
  mean, std = train_frames.mean(0), train_frames.std(0)
  for split in ("train", "test"):
    source = sequences.open_source(cfg, split)
    series, labels = raw[split]
    assert len(source) == len(series) and source.num_classes == 3
    assert (source.modality, source.input_key, source.input_shape) == ("sequence", "frames", (10, 2))
    assert source.class_names == ["1", "2", "10"]
    np.testing.assert_array_equal(source.lengths, [len(s) for s in series])
    batch = source.get(np.arange(len(source)))
    assert batch["frames"].dtype == np.float32 and batch["mask"].dtype == bool
    assert batch["label"].dtype == np.int32
    np.testing.assert_array_equal(batch["label"], [source.class_names.index(lb) for lb in labels])
    np.testing.assert_array_equal(batch["mask"], np.arange(10) < source.lengths[:, None])
    assert (batch["frames"][~batch["mask"]] == 0).all()  # padding exactly 0
    for i, s in enumerate(series):  # the TRAIN statistics, for the test split too
      np.testing.assert_allclose(batch["frames"][i, : len(s)], (s - mean) / std, rtol=1e-5, atol=1e-5)
    if split == "train":
      real = batch["frames"][batch["mask"]]
      np.testing.assert_allclose(real.mean(0), 0, atol=1e-5)
      np.testing.assert_allclose(real.std(0), 1, atol=1e-5)
    else:
      assert batch["frames"][batch["mask"]].mean() > 1  # shifted test data is not re-centred
    # Fixed padding: an example's arrays do not depend on the batch it is in.
    part = source.get(np.array([2, 0, 2]))
    np.testing.assert_array_equal(part["frames"][0], batch["frames"][2])
    np.testing.assert_array_equal(part["frames"][1], batch["frames"][0])
  stream = pipeline.host_batches(source, global_batch=4, seed=0, process_index=0, process_count=1)
  first = next(stream)
  stream.close()
  assert first["frames"].shape == (4, 10, 2) and first["mask"].shape == (4, 10)
  assert first["position"].shape == (4,)
  pooled = sequences.mean_pooled(batch["frames"], batch["mask"])
  np.testing.assert_allclose(pooled[1], batch["frames"][1, :3].mean(0), rtol=1e-6)


def test_too_long_crop_or_error(vowels_dir, caplog):
  data_dir, raw = vowels_dir
  cfg = sequences.data_config("japanese_vowels", data_dir=data_dir, max_length=5, too_long="error")
  with pytest.raises(ConfigError) as err:
    sequences.open_source(cfg, "train")
  message = str(err.value)
  for part in ("length 9", "config.data.max_length = 5", "config.data.too_long = 'error'",
               "--config.data.max_length=9", "--config.data.too_long=crop", "3 of 6"):
    assert part in message, (part, message)
  cfg.too_long = "crop"
  with caplog.at_level("WARNING"):
    source = sequences.open_source(cfg, "train")
  assert sum("cropped 3 of 6" in r.getMessage() for r in caplog.records) == 1  # logged once
  assert source.num_cropped == 3 and source.input_shape == (5, 2)
  np.testing.assert_array_equal(source.lengths, [3, 5, 5, 4, 5, 5])
  full = sequences.open_source(sequences.data_config("japanese_vowels", data_dir=data_dir), "train")
  np.testing.assert_allclose(source.get([2])["frames"][0], full.get([2])["frames"][0, :5])  # the first frames
  with pytest.raises(ConfigError, match="too_long"):
    sequences.fit_lengths(np.array([1]), sequences.data_config("japanese_vowels", too_long="drop"), "x")


def test_missing_aeon_names_the_install_command(monkeypatch):
  monkeypatch.setattr(sequences, "find_spec", lambda name: None)
  assert sequences.aeon_data_dir() is None
  with pytest.raises(pipeline.DatasetNotFoundError) as err:
    sequences.open_source(sequences.data_config("japanese_vowels"), "train")
  assert ".venv/bin/python -m pip install --no-deps aeon" in str(err.value)


def test_data_configs_list_every_field():
  cfg = sequences.data_config("japanese_vowels")
  assert (cfg.max_length, cfg.too_long, cfg.train_split) == (32, "error", "train")
  for fake_image_field in ("image_size", "in_memory"):  # a sequence or text block has no image fields
    assert fake_image_field not in cfg and fake_image_field not in text.data_config("fortunes")
  assert text.data_config("fortunes", split_seed=3).split_seed == 3
  for key in ("tokenizer", "min_count", "max_vocab", "test_fraction", "split_seed", "path", "too_long"):
    assert key in text.data_config("lm1b")
  with pytest.raises(ConfigError, match="max_lenght"):
    sequences.data_config("japanese_vowels", max_lenght=3)
  with pytest.raises(ConfigError, match="fortunes"):
    sequences.data_config("fortunes")


# ------------------------------------------------------------------ fashion_mnist_rows


def test_fashion_mnist_rows_from_a_fake_image_source(monkeypatch):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
  fake = pipeline.InMemorySource(images, np.arange(5) % 10, num_classes=10)
  calls = []

  def fake_open_source(name, split, **kwargs):
    calls.append((name, split, kwargs))
    return fake

  monkeypatch.setattr(pipeline, "open_source", fake_open_source)
  source = sequences.open_source(sequences.data_config("fashion_mnist_rows", data_dir="/somewhere"), "test")
  assert calls == [("fashion_mnist", "test", dict(data_dir="/somewhere", image_size=28, in_memory=True))]
  assert (len(source), source.input_shape, source.num_classes) == (5, (28, 28), 10)
  batch = source.get(np.arange(5))
  expected = (images[..., 0] / 255.0 - 0.2860) / 0.3530
  np.testing.assert_allclose(batch["frames"], expected, rtol=1e-5, atol=1e-6)
  assert batch["mask"].all() and (source.lengths == 28).all()
  np.testing.assert_array_equal(batch["label"], np.arange(5))
  padded = sequences.open_source(sequences.data_config("fashion_mnist_rows", max_length=30), "train")
  assert padded.get([0])["frames"].shape == (1, 30, 28) and (padded.get([0])["frames"][0, 28:] == 0).all()


# ------------------------------------------------------------------------ speech_commands


def test_log_mel_front_end():
  t = np.arange(16000) / 16000
  tone = (0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)  # 1 s of 1 kHz
  feats = sequences.log_mel(tone)
  assert feats.shape == (98, 40) and feats.dtype == np.float32  # 1 + (16000 - 400) // 160 frames
  mel = lambda hz: 2595 * np.log10(1 + hz / 700)  # noqa: E731 - HTK mel, as tf.signal uses
  centers = np.linspace(mel(20.0), mel(8000.0), 42)[1:-1]
  assert abs(int(feats.mean(0).argmax()) - int(np.abs(centers - mel(1000)).argmin())) <= 1
  assert sequences.log_mel(np.zeros(100, np.int16)).shape == (1, 40)  # shorter than a window: one frame
  np.testing.assert_allclose(sequences.log_mel(np.zeros(400, np.int16)), np.log(1e-6), rtol=1e-5)


def test_mocked_speech_commands():
  cfg = sequences.data_config("speech_commands", download=True)  # the mock never "prepares" data
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    train = sequences.open_source(cfg, "train")
    test = sequences.open_source(cfg, "test", train)
    alone = sequences.open_source(cfg, "test")  # the train statistics, from the train split again
  np.testing.assert_array_equal(alone.mean, train.mean)
  np.testing.assert_array_equal(alone.get(np.arange(6))["frames"], test.get(np.arange(6))["frames"])
  assert (len(train), train.input_shape, train.num_classes) == (6, (100, 40), 12)
  assert train.class_names[-2:] == ["_silence_", "_unknown_"]
  for source in (train, test):
    batch = source.get(np.arange(len(source)))
    assert batch["frames"].shape == (6, 100, 40) and batch["frames"].dtype == np.float32
    assert (source.lengths >= 1).all() and (batch["frames"][~batch["mask"]] == 0).all()
    assert ((batch["label"] >= 0) & (batch["label"] < 12)).all()
    np.testing.assert_array_equal(source.mean, train.mean)  # the train statistics for both
  real = train.get(np.arange(6))["frames"][train.masks]
  np.testing.assert_allclose(real.mean(0), 0, atol=1e-4)


# --------------------------------------------------------------------------- fortunes


def _write_fortunes(folder):
  """Three topics; 'alpha' holds an empty and a blank fortune; junk that must be skipped."""
  os.makedirs(folder / "off")
  (folder / "alpha").write_text(
    "%\n"  # an empty fortune first
    + "".join(f"Alpha fortune number {i}.\n\t-- Someone\n%\n" for i in range(10))
    + "   \n\n%\n"  # blank
    + "An _\bIMPORTANT ___\b\b\bnote!\n%\n"  # overstrike
  )
  beta = "".join(f"Beta says {i}, twice {i}.\n%\n" for i in range(5))
  (folder / "beta").write_text(beta + "no trailing percent\n")
  (folder / "gamma").write_text("The only gamma quote.\n%\n")
  (folder / "beta.dat").write_bytes(b"\x00\x02binary index")
  os.symlink(folder / "beta", folder / "beta.u8")
  (folder / "off" / "rude").write_text("Offensive.\n%\n")
  (folder / ".hidden").write_text("Hidden.\n%\n")
  return str(folder)


def test_read_fortunes_skips_and_counts_empty_texts(tmp_path, caplog):
  path = _write_fortunes(tmp_path / "fortunes")
  assert text.fortune_files(path) == ["alpha", "beta", "gamma"]
  with caplog.at_level("INFO"):
    corpus = text.read_fortunes(path)
  assert corpus.skipped_empty == 2 and sum("skipped 2 empty" in r.getMessage() for r in caplog.records) == 1
  assert corpus.class_names == ["alpha", "beta", "gamma"]
  assert [corpus.topics.count(t) for t in corpus.class_names] == [11, 6, 1]
  assert corpus.texts[0] == "Alpha fortune number 0.\n\t-- Someone"
  assert "An IMPORTANT note!" in corpus.texts and "no trailing percent" in corpus.texts


def test_fortunes_stratified_split_depends_only_on_split_seed(tmp_path):
  path = _write_fortunes(tmp_path / "fortunes")
  topics = text.read_fortunes(path).topics
  split = text.stratified_split(topics, 0.2, split_seed=0)
  assert np.intersect1d(split["train"], split["test"]).size == 0
  everything = np.sort(np.concatenate([split["train"], split["test"]]))
  np.testing.assert_array_equal(everything, np.arange(len(topics)))
  test_topics = [topics[i] for i in split["test"]]
  # round(0.2 n) per topic, but train keeps at least one
  assert [test_topics.count(t) for t in ("alpha", "beta", "gamma")] == [2, 1, 0]
  again = text.stratified_split(topics, 0.2, split_seed=0)
  np.testing.assert_array_equal(again["test"], split["test"])
  others = [text.stratified_split(topics, 0.2, split_seed=s)["test"] for s in (1, 2, 3)]
  assert any(not np.array_equal(o, split["test"]) for o in others)

  cfg = text.data_config("fortunes", path=path, min_count=1, max_length=16)
  train, test = text.open_source(cfg, "train"), text.open_source(cfg, "test")
  assert (len(train), len(test), train.num_classes, train.skipped_empty) == (15, 3, 3, 2)
  assert (train.modality, train.input_key, train.input_shape) == ("text", "tokens", (16,))
  batch = test.get(np.arange(3))
  assert batch["tokens"].dtype == np.int32 and batch["tokens"].shape == (3, 16)
  np.testing.assert_array_equal(batch["mask"], batch["tokens"] != text.PAD_ID)
  np.testing.assert_array_equal(batch["label"], [train.class_names.index(topics[i]) for i in split["test"]])
  np.testing.assert_array_equal(test.lengths, batch["mask"].sum(1))
  with pytest.raises(ConfigError, match="test_fraction"):
    text.open_source(text.data_config("fortunes", path=path, test_fraction=1.0), "train")


def test_fortunes_too_long_crop_or_error(tmp_path):
  path = _write_fortunes(tmp_path / "fortunes")
  cfg = text.data_config("fortunes", path=path, max_length=4)
  source = text.open_source(cfg, "train")  # crop is the text default
  full = text.open_source(text.data_config("fortunes", path=path, max_length=64), "train")
  assert source.num_cropped == (full.lengths > 4).sum() > 0 and full.num_cropped == 0
  np.testing.assert_array_equal(source.lengths, np.minimum(full.lengths, 4))
  np.testing.assert_array_equal(source.get([0])["tokens"][0], full.get([0])["tokens"][0, :4])
  cfg.too_long = "error"
  with pytest.raises(ConfigError) as err:
    text.open_source(cfg, "train")
  assert "config.data.max_length = 4" in str(err.value) and "--config.data.too_long=crop" in str(err.value)


def test_missing_fortunes_names_the_install_command(tmp_path):
  with pytest.raises(pipeline.DatasetNotFoundError) as err:
    text.open_source(text.data_config("fortunes", path=str(tmp_path / "nowhere")), "train")
  assert "apt-get install fortunes" in str(err.value) and "nowhere" in str(err.value)


# ------------------------------------------------------------------------- vocabulary

_TEXTS = ["The cat sat. The dog sat!", "A cat, a dog; the end.", "Zebra zebra?", "Once."]


def test_vocabulary_order_counts_and_determinism():
  vocab = text.Vocabulary.from_texts(_TEXTS, min_count=2)
  assert vocab.words[:3] == ["<pad>", "<unk>", "<mask>"]
  assert (text.PAD_ID, text.UNK_ID, text.MASK_ID) == (0, 1, 2)
  # by count, ties alphabetically; "once", "end", ";", "!", "?" are below min_count
  assert vocab.words[3:] == [".", "the", "a", "cat", "dog", "sat", "zebra"]
  np.testing.assert_array_equal(vocab.counts, [0, 0, 0, 3, 3, 2, 2, 2, 2, 2])
  again = text.Vocabulary.from_texts(list(reversed(_TEXTS)), min_count=2)
  assert again.words == vocab.words and (again.counts == vocab.counts).all()
  small = text.Vocabulary.from_texts(_TEXTS, min_count=1, max_vocab=6)
  assert small.words == ["<pad>", "<unk>", "<mask>", ".", "the", "a"]


def test_vocabulary_round_trip_unknown_and_suggestions(tmp_path):
  vocab = text.Vocabulary.from_texts(_TEXTS, min_count=1)
  sentence = "The  DOG sat,\n\ta cat!"
  assert text.normalize(sentence) == "the dog sat , a cat !"
  assert vocab.decode(vocab.encode(sentence)) == text.normalize(sentence)
  assert vocab.decode(vocab.encode("the unicorn sat")) == "the <unk> sat"
  assert vocab.decode(vocab.encode("the cat") + [text.PAD_ID] * 3) == "the cat"  # padding dropped
  assert text.tokenize("Don't stop: 3.5") == ["don't", "stop", ":", "3", ".", "5"]
  assert vocab.id("Cat") == vocab.id("cat") and vocab.id("<mask>") == text.MASK_ID
  with pytest.raises(text.UnknownWordError) as err:
    vocab.id("zebar")
  assert isinstance(err.value, KeyError) and "zebra" in err.value.suggestions
  assert "'zebar' is not in the vocabulary" in str(err.value) and "zebra" in str(err.value)

  vocab.save(tmp_path / "vocab.txt")
  loaded = text.Vocabulary.load(tmp_path / "vocab.txt")
  assert type(loaded) is text.Vocabulary and loaded.words == vocab.words
  np.testing.assert_array_equal(loaded.counts, vocab.counts)


def test_byte_vocabulary_round_trip(tmp_path):
  sample = "Naïve café — 日本語 🙂\nline two"
  vocab = text.ByteVocabulary.from_texts([sample, "abc"])
  ids = vocab.encode(sample)
  assert len(vocab) == 259 and min(ids) >= 3 and len(ids) == len(sample.encode("utf-8"))
  assert vocab.decode(ids) == sample and vocab.decode(ids + [0, 0]) == sample
  assert vocab.id("a") == ord("a") + 3 and vocab.counts[ord("a") + 3] == 3
  vocab.save(tmp_path / "bytes.txt")
  loaded = text.Vocabulary.load(tmp_path / "bytes.txt")
  assert isinstance(loaded, text.ByteVocabulary) and loaded.decode(ids) == sample


def test_build_vocabulary_from_train_split_only(tmp_path):
  path = _write_fortunes(tmp_path / "fortunes")
  cfg = text.data_config("fortunes", path=path, min_count=1)
  vocab = text.build_vocabulary(cfg)
  again = text.build_vocabulary(text.data_config("fortunes", path=path, min_count=1))
  assert vocab.words == again.words and (vocab.counts == again.counts).all()
  train, test = text.open_source(cfg, "train"), text.open_source(cfg, "test")
  assert train.vocab.words == vocab.words == test.vocab.words
  train_words = {w for t in train.texts for w in text.tokenize(t)}
  assert set(vocab.words[3:]) == train_words  # nothing from the test texts
  row = train.get([0])
  assert vocab.decode(row["tokens"][0]) == text.normalize(train.texts[0])
  byte_cfg = text.data_config("fortunes", path=path, tokenizer="bytes", max_length=256)
  byte_source = text.open_source(byte_cfg, "train")
  assert byte_source.vocab.decode(byte_source.get([0])["tokens"][0]) == train.texts[0]
  with pytest.raises(ConfigError, match="tokenizer"):
    text.build_vocabulary(text.data_config("fortunes", path=path, tokenizer="bpe"))


# --------------------------------------------------------------------------------- lm1b


def test_mocked_lm1b():
  cfg = text.data_config("lm1b", download=True, min_count=1, max_length=64)
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    train = text.open_source(cfg, "train")
    test = text.open_source(cfg, "test", train)
    alone = text.open_source(cfg, "test")  # the vocabulary, from the train split read again
  assert (len(train), train.num_classes, train.class_names, train.input_shape) == (5, 1, ["lm1b"], (64,))
  assert test.vocab is train.vocab  # built once, from train
  assert alone.vocab.words == train.vocab.words
  assert train.num_cropped == 0
  batch = train.get(np.arange(5))
  assert batch["tokens"].shape == (5, 64) and (batch["label"] == 0).all()
  for tokens, sentence in zip(batch["tokens"], train.texts):  # every train word is known
    assert train.vocab.decode(tokens) == text.normalize(sentence)


def test_fashion_mnist_rows_from_the_tiny_local_fashion_mnist(tiny_fashion_mnist):
  """The real path (TFDS built from the conftest's idx files, no fake source): each sequence
  is one test image read top to bottom, normalized as the image pipeline does, with its label,
  against the idx files read here with NumPy."""
  from tests.helpers import read_idx

  idx = os.path.join(os.path.dirname(tiny_fashion_mnist), "idx")
  images = read_idx(os.path.join(idx, "t10k-images-idx3-ubyte.gz")).astype(np.float64)
  labels = read_idx(os.path.join(idx, "t10k-labels-idx1-ubyte.gz"))
  source = sequences.open_source(
      sequences.data_config("fashion_mnist_rows", data_dir=tiny_fashion_mnist), "test")
  assert (len(source), source.input_shape, source.num_classes) == (len(images), (28, 28), 10)
  batch = source.get(np.arange(len(source)))
  assert batch["mask"].all() and (source.lengths == 28).all()
  pixels = batch["frames"] * 0.3530 + 0.2860  # back to pixels / 255
  found = []
  for frames, label in zip(pixels, batch["label"]):
    # TFDS shuffles a split when it prepares it: find the image, then compare.
    n = int(np.argmin(np.abs(images / 255.0 - frames).max(axis=(1, 2))))
    np.testing.assert_allclose(frames, images[n] / 255.0, atol=1e-5)
    assert label == labels[n]
    found.append(n)
  assert sorted(found) == list(range(len(images)))  # every image once
