"""`python -m sslax.neighbors`: cosine neighbours against a brute-force NumPy loop, and the
messages a user gets for a missing run or a word outside the vocabulary; and the command
line on a real 4-step skip-gram run, its lines against a NumPy cosine ranking of the trained
input vectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from sslax import neighbors
from sslax.data import text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_nearest_is_cosine_ranking_without_the_word_and_specials():
  rng = np.random.default_rng(0)
  table = rng.normal(size=(40, 8)) * rng.uniform(0.1, 10, size=(40, 1))  # norms must not matter
  specials = {0, 1, 2}
  for query in (3, 17, 39):
    got = neighbors.nearest(table, query, 5, specials)
    scores = []
    for i in range(len(table)):
      if i == query or i in specials:
        continue
      cos = table[i] @ table[query] / (np.linalg.norm(table[i]) * np.linalg.norm(table[query]))
      scores.append((cos, i))
    want = sorted(scores, reverse=True)[:5]
    assert [i for i, _ in got] == [i for _, i in want]
    np.testing.assert_allclose([s for _, s in got], [c for c, _ in want], rtol=1e-12)


def test_unknown_word_message_names_close_words():
  vocab = text.Vocabulary.from_texts(["the computer computes", "a computer program"])
  try:
    vocab.id("computr")
  except text.UnknownWordError as error:
    assert "computr" in str(error) and "computer" in str(error)
  else:
    raise AssertionError("an unknown word must raise")


def test_cli_without_a_run_says_to_pretrain(tmp_path):
  out = subprocess.run([sys.executable, "-m", "sslax.neighbors", f"--workdir={tmp_path}", "--word=love"],
                       cwd=REPO, capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode != 0
  assert "no config.json" in out.stderr and "skipgram_fortunes.py" in out.stderr


def write_fortunes(folder) -> str:
  """Two topics of '%'-separated texts (the fortunes package's format), words of each topic
  repeated so a few steps move their vectors."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  for topic, words in (("cats", "the cat sat on a mat and purred at dog"),
                       ("ships", "a ship sailed over the sea and wind blew hard")):
    vocab = words.split()
    with open(os.path.join(folder, topic), "w") as f:
      f.write("".join(" ".join(rng.choice(vocab, 12)) + "\n%\n" for _ in range(16)))
  return str(folder)


@pytest.fixture(scope="module")
def skipgram_run(tmp_path_factory):
  """4 skip-gram steps on a tiny corpus, checkpoints at 2 and 4 -> (workdir, final params)."""
  import importlib.util

  import jax

  from sslax import train

  root = tmp_path_factory.mktemp("skipgram")
  spec = importlib.util.spec_from_file_location("skipgram_fortunes", os.path.join(REPO, "configs", "skipgram_fortunes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.path = write_fortunes(root / "fortunes")
  config.data.min_count = 1
  config.model.dim = 8
  config.batch_size = 8
  config.total_steps = 4
  config.checkpoint_every_steps = 2
  config.async_checkpoints = False
  config.optimizer.base_lr = 0.05
  config.optimizer.warmup_steps = 1
  config.diagnostics.enabled = config.online_probe.enabled = False
  workdir = str(root / "run")
  state, _, _ = train.train(config, workdir)
  return workdir, jax.device_get(state.params)


def test_cli_on_a_real_skipgram_run(skipgram_run):
  """`python -m sslax.neighbors` on a 4-step run: one line per word, `word: w (s.ss), ...`, the
  k most cosine-similar words by a NumPy computation on the final step's input vectors (read
  from the trained parameters, not through the method's token_embeddings), and an error line
  and exit 1 for a word outside the vocabulary."""
  workdir, params = skipgram_run
  table = np.asarray(params["encoder"]["input"], np.float64)  # word2vec's syn0
  with open(os.path.join(workdir, "config.json")) as f:
    vocab = text.build_vocabulary(ml_collections.ConfigDict(json.load(f))["data"])
  words = ["cat", "sea", "the"]
  out = subprocess.run(
      [sys.executable, "-m", "sslax.neighbors", f"--workdir={workdir}", "--k=4", "--word=zzzz"]
      + [f"--word={w}" for w in words],
      cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 1, out.stderr[-2000:]
  assert "error:" in out.stderr and "zzzz" in out.stderr and "Traceback" not in out.stderr
  lines = out.stdout.strip().splitlines()
  assert [line.split(":")[0] for line in lines] == words
  unit = table / np.linalg.norm(table, axis=1, keepdims=True)
  specials = len(text.SPECIALS)
  for word, line in zip(words, lines):
    query = vocab.words.index(word)
    cosine = unit @ unit[query]
    candidates = [i for i in range(specials, len(table)) if i != query]
    best = sorted(candidates, key=lambda i: -cosine[i])[:4]
    want = ", ".join(f"{vocab.words[i]} ({cosine[i]:.2f})" for i in best)
    assert line == f"{word}: {want}", (line, want)
