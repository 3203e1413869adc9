"""APC on JapaneseVowels: a 3-layer residual GRU predicts the LPC cepstrum 3 frames ahead;
evaluated by a speaker probe on the mean of its top-layer states.

  python -m sslax.main --config=configs/apc_japanese_vowels.py --workdir=runs/apc_jv

From the paper (Chung, Hsu, Tang, Glass 2019): 3 GRU layers with residual connections,
L1 loss on the frame n = 3 steps ahead, Adam at 1e-3. Departures, for 270 utterances of
7-29 frames (12 features) on a 2-core CPU: 128 wide (the paper: 512 on 80-dim log-mels),
batch 64, no dropout. Few-label results by count (1 and 3 utterances of each of the 9
speakers, 10 draws each): with 30 utterances a speaker, 1% and 10% are 1 and 3 per class.
"""

from sslax import presets
from sslax.data import sequences
from sslax.methods.apc import defaults as apc_defaults
from sslax.models import encoder_config


def get_config():
  return presets.sequence_cpu(
      sequences.data_config("japanese_vowels"),
      encoder_config("gru_stack", hidden_dim=128, num_layers=3), apc_defaults(),
      batch_size=64, total_steps=1000, base_lr=1e-3, warmup_steps=50, weight_decay=0.0)
