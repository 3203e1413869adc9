"""CPC on Fashion-MNIST read as sequences (28 frames of 28 pixels, top to bottom): a
per-row MLP encodes each row, a GRU summarizes the rows above, and linear maps predict the
encodings of the next 1..4 rows against the other images of the batch (InfoNCE);
evaluated by a class probe on the mean context vector.

  python -m sslax.main --config=configs/cpc_fashion_mnist_rows.py --workdir=runs/cpc_rows

From the paper (van den Oord, Li, Vinyals 2018): a GRU context over frame encodings, one
linear predictor per step ahead, InfoNCE with negatives from the minibatch, Adam. Its
image experiments predict rows of patches below from rows above too, with a ResNet on
patches; here a row of pixels is a frame. Departures, for a 2-core CPU: a per-row MLP
(28 -> 128 -> 64), a 128-wide GRU (the paper: 256), K = 4 rows ahead, batch 256, 1500
steps (6 epochs).
"""

from sslax import presets
from sslax.data import sequences
from sslax.methods.cpc import defaults as cpc_defaults
from sslax.models import encoder_config


def get_config():
  config = presets.sequence_cpu(
      sequences.data_config("fashion_mnist_rows"),
      encoder_config("cpc_encoder", frame_hidden=(128,), dim=64, context_dim=128), cpc_defaults(),
      batch_size=256, total_steps=1500, base_lr=1e-3, warmup_steps=50, weight_decay=0.0)
  config.method.num_steps = 4
  return config
