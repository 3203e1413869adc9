"""Next-token prediction (GPT-style) on the Debian fortunes: a causal Transformer predicts
each word from the words before it; evaluated by a topic probe (43 topics) on the mean of
its final states.

  python -m sslax.main --config=configs/next_token_fortunes.py --workdir=runs/gpt_fortunes

From the paper (Radford et al. 2018): a causal Transformer, learned position embeddings,
tied input/output embeddings, GELU, Adam with warmup. Departures, for ~12k short texts
on a 2-core CPU: 128 wide, 2 blocks of 4 heads (GPT: 768, 12, 12), the same encoder as
configs/masked_token_fortunes.py; words with min_count 5, texts cropped to 64 tokens; batch
32 (the vocabulary-wide output layer at every position is most of the step).
"""

from sslax import presets
from sslax.data import text
from sslax.methods.next_token import defaults as next_token_defaults
from sslax.models import encoder_config


def get_config():
  # min_count 5: 6,765 ids, 8% of the training tokens become <unk>; 64 tokens keep 87% of
  # the texts whole (median 22).
  data = text.data_config("fortunes", min_count=5, max_length=64)
  model = encoder_config("sequence_transformer", hidden_dim=128, depth=2, num_heads=4,
                         causal=True, max_length=data.max_length)
  config = presets.sequence_cpu(
      data, model, next_token_defaults(), batch_size=32, total_steps=2500,
      base_lr=1e-3, warmup_steps=200, weight_decay=0.01, b2=0.98)
  # Real tokens fill 44% of a batch's positions at T = 64 (at most 58% in 10,000 random
  # batches of 64): the output layer scores 62.5% of them.
  config.method.pair_capacity = 0.625
  return config
