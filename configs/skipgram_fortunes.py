"""Skip-gram with negative sampling (word2vec) on the Debian fortunes: each word predicts
the words around it; a text is represented by the mean of its word vectors, evaluated by a
topic probe (43 topics).

  python -m sslax.main --config=configs/skipgram_fortunes.py --workdir=runs/skipgram_fortunes

From word2vec.c's defaults (Mikolov et al. 2013): 100-dim vectors, window 5 (dynamic),
5 negatives from unigram^0.75, subsampling 1e-3, min_count 5. Departure: Adam on batches of
64 texts (word2vec.c: SGD one pair at a time, lr 0.025 decaying linearly); lr 5e-3 gave the
best topic probe of 2e-3, 5e-3 and 2e-2 at 3000 steps (39.2%, 40.4%, 36.4%; 2e-2 reached the
lowest loss).
"""

from sslax import presets
from sslax.data import text
from sslax.methods.skipgram import defaults as skipgram_defaults
from sslax.models import encoder_config


def get_config():
  # min_count 5 (word2vec's default): 6,765 ids, 8% of the training tokens become <unk>;
  # 64 tokens keep 87% of the texts whole (median 22).
  config = presets.sequence_cpu(
      text.data_config("fortunes", min_count=5, max_length=64),
      encoder_config("skipgram_embeddings", dim=100), skipgram_defaults(),
      batch_size=64, total_steps=3000, checkpoint_every_steps=1500,
      base_lr=5e-3, warmup_steps=50, weight_decay=0.0)
  # Live (center, context) pairs fill 14% of the 64 x 64 x 10 slots of a batch on average
  # (std 1.3%, at most 18.7% in 400 random batches): gather a quarter of them.
  config.method.pair_capacity = 0.25
  return config
