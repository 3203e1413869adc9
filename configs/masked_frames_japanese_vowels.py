"""Masked-frame reconstruction (Mockingjay / TERA-style) on JapaneseVowels: spans of 3
frames, 15% of each utterance, are zeroed (80%), replaced by another span (10%) or kept,
and a bidirectional Transformer reconstructs them (L1); evaluated by a speaker probe on
the mean of its final hidden states.

  python -m sslax.main --config=configs/masked_frames_japanese_vowels.py --workdir=runs/mf_jv

From the papers (Liu et al. 2020, 2021): 15% of the frames in consecutive spans, BERT's
80/10/10 rule, L1 loss on the chosen frames, sinusoidal positions (Mockingjay), Adam with
warmup. Departures, for 270 utterances of 7-29 frames (12 features) on a 2-core CPU: a
Transformer 128 wide, 3 blocks of 4 heads (the papers: 768 wide, 3-12 blocks); spans of 3
frames (Mockingjay: 7 frames of 10 ms; these utterances are 7-29 frames long); at least one
span an utterance, so a 7-frame one has 3 of its frames chosen; batch 64.
"""

from sslax import presets
from sslax.data import sequences
from sslax.methods.masked_frames import defaults as masked_frames_defaults
from sslax.models import encoder_config


def get_config():
  data = sequences.data_config("japanese_vowels")
  model = encoder_config("sequence_transformer", hidden_dim=128, depth=3, num_heads=4,
                         causal=False, posemb="sinusoidal", max_length=data.max_length)
  return presets.sequence_cpu(
      data, model, masked_frames_defaults(), batch_size=64, total_steps=1000,
      base_lr=1e-3, warmup_steps=100, weight_decay=0.01, b2=0.98)
