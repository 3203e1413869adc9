"""Masked language modelling (BERT-style) on the Debian fortunes: 15% of each text's words
are masked (80% <mask>, 10% a random word, 10% kept) and a bidirectional Transformer
predicts them; evaluated by a topic probe (43 topics) on the mean of its final states.

  python -m sslax.main --config=configs/masked_token_fortunes.py --workdir=runs/mlm_fortunes

From the paper (Devlin et al. 2019): 15% masking with the 80/10/10 rule, learned position
embeddings, tied input/output embeddings, GELU, AdamW with warmup and weight decay 0.01
(beta2 0.98 as RoBERTa). Departures, for ~12k short texts on a 2-core CPU: 128 wide, 2
blocks of 4 heads (BERT-base: 768, 12, 12); words with min_count 5, texts cropped to 64
tokens; no next-sentence prediction; dynamic masking (RoBERTa).
"""

from sslax import presets
from sslax.data import text
from sslax.methods.masked_token import defaults as masked_token_defaults
from sslax.models import encoder_config


def get_config():
  # min_count 5: 6,765 ids, 8% of the training tokens become <unk>; 64 tokens keep 87% of
  # the texts whole (median 22).
  data = text.data_config("fortunes", min_count=5, max_length=64)
  model = encoder_config("sequence_transformer", hidden_dim=128, depth=2, num_heads=4,
                         causal=False, max_length=data.max_length)
  return presets.sequence_cpu(
      data, model, masked_token_defaults(), batch_size=64, total_steps=1200,
      checkpoint_every_steps=600, base_lr=1e-3, warmup_steps=200, weight_decay=0.01, b2=0.98)
