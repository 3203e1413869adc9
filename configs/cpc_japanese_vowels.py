"""CPC on JapaneseVowels: a per-frame MLP encodes each LPC cepstrum frame, a GRU summarizes
the past, and linear maps predict the encodings 1..4 frames ahead against the other
utterances of the batch (InfoNCE); evaluated by a speaker probe on the mean context vector.

  python -m sslax.main --config=configs/cpc_japanese_vowels.py --workdir=runs/cpc_jv

From the paper (van den Oord, Li, Vinyals 2018): a GRU context over frame encodings, one
linear predictor per step ahead, InfoNCE with negatives from the minibatch, Adam.
Departures, for 270 utterances of 7-29 frames (12 features) on a 2-core CPU: feature
frames, not a waveform, so g_enc is a per-frame MLP (12 -> 128 -> 64) instead of strided
convolutions; a 128-wide GRU (the paper: 256); K = 4 steps ahead (the paper: 12 at 100
steps a second; a 7-frame utterance has no 12th step); batch 64.
"""

from sslax import presets
from sslax.data import sequences
from sslax.methods.cpc import defaults as cpc_defaults
from sslax.models import encoder_config


def get_config():
  config = presets.sequence_cpu(
      sequences.data_config("japanese_vowels"),
      encoder_config("cpc_encoder", frame_hidden=(128,), dim=64, context_dim=128), cpc_defaults(),
      batch_size=64, total_steps=1000, base_lr=1e-3, warmup_steps=50, weight_decay=0.0)
  config.method.num_steps = 4
  return config
