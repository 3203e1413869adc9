"""NNCLR (examples/nnclr.py) on Fashion-MNIST with the small ConvNet of the CPU configs
(sslax.presets.fashion_mnist_cpu: same data, encoder, views, steps and batch as
configs/simclr_fashion_mnist.py). From the repository root:

  python -m sslax.main --config=examples/nnclr_fashion_mnist.py --workdir=runs/nnclr_fmnist

Departures from the paper (Dwibedi et al. 2021), for a 2-core CPU and 28x28 grayscale:
* support set of 16384 projections (64 batches) instead of 98,304: the same reasoning as the
  MoCo v2 CPU config's queue, whose size it copies (a larger one would hold projections from
  a much older network, and take longer to replace its random start);
* heads 512-512 -> 128 (projector) and 1024 -> 128 (predictor) instead of 2048-2048 -> 256 and
  4096 -> 256, the widths of the CPU SimCLR's head;
* the optimizer of the SimCLR CPU config (AdamW 1e-3, weight decay 1e-4, 100 warmup steps)
  instead of LARS at batch 4096. T = 0.1 as the paper.
Not swept on this dataset.
"""

from examples import nnclr
from sslax import presets


def get_config():
  method = nnclr.defaults()
  method.queue_size = 16384
  method.projector_hidden = (512, 512)
  method.projector_dim = 128
  method.predictor_hidden = (1024,)
  config = presets.fashion_mnist_cpu(method)

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 1e-3
  config.optimizer.warmup_steps = 100
  config.optimizer.weight_decay = 1e-4
  return config
