"""Masked-frame reconstruction (Mockingjay / TERA-style) on Fashion-MNIST read as
sequences (28 frames of 28 pixels, top to bottom): one span of 3 rows per image (15% of 28,
rounded as Mockingjay does) is zeroed (80%), replaced by 3 other rows (10%) or kept, and a
bidirectional Transformer reconstructs it (L1); evaluated by a class probe on the mean of
its final hidden states.

  python -m sslax.main --config=configs/masked_frames_fashion_mnist_rows.py --workdir=runs/mf_rows

From the papers (Liu et al. 2020, 2021): 15% of the frames in consecutive spans, BERT's
80/10/10 rule, L1 loss on the chosen frames, sinusoidal positions (Mockingjay), Adam with
warmup. Departures, for 60k sequences on a 2-core CPU: a Transformer 128 wide, 3 blocks of
4 heads (the papers: 768 wide, 3-12 blocks); spans of 3 frames (Mockingjay: 7); batch 128,
1500 steps (3 epochs).
"""

from sslax import presets
from sslax.data import sequences
from sslax.methods.masked_frames import defaults as masked_frames_defaults
from sslax.models import encoder_config


def get_config():
  data = sequences.data_config("fashion_mnist_rows")
  model = encoder_config("sequence_transformer", hidden_dim=128, depth=3, num_heads=4,
                         causal=False, posemb="sinusoidal", max_length=data.max_length)
  return presets.sequence_cpu(
      data, model, masked_frames_defaults(), batch_size=128, total_steps=1500,
      base_lr=1e-3, warmup_steps=100, weight_decay=0.01, b2=0.98)
