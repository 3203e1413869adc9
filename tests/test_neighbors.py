"""`python -m sslax.neighbors`: cosine neighbours against a brute-force NumPy loop, and the
messages a user gets for a missing run or a word outside the vocabulary."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

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
