"""APC on Fashion-MNIST read as sequences: each image is 28 frames of 28 pixels, top to
bottom; a 3-layer residual GRU predicts the row 3 rows below; evaluated by a class probe on
the mean of its top-layer states.

  python -m sslax.main --config=configs/apc_fashion_mnist_rows.py --workdir=runs/apc_rows

From the paper (Chung, Hsu, Tang, Glass 2019): 3 GRU layers with residual connections,
L1 loss on the frame n = 3 steps ahead, Adam at 1e-3. Departures, for 60k sequences on a
2-core CPU: 128 wide (the paper: 512), batch 256, 1800 steps (8 epochs), no dropout.
"""

from sslax import presets
from sslax.data import sequences
from sslax.methods.apc import defaults as apc_defaults
from sslax.models import encoder_config


def get_config():
  return presets.sequence_cpu(
      sequences.data_config("fashion_mnist_rows"),
      encoder_config("gru_stack", hidden_dim=128, num_layers=3), apc_defaults(),
      batch_size=256, total_steps=1800, base_lr=1e-3, warmup_steps=50, weight_decay=0.0)
