"""Barlow Twins on Fashion-MNIST with a small ConvNet: the CPU counterpart of
configs/simclr_fashion_mnist.py (same data, encoder, views, steps and batch).

  python -m sslax.main --config=configs/barlow_twins_fashion_mnist.py --workdir=runs/barlow_fmnist

Departures from the paper (Zbontar et al. 2021), for a 2-core CPU and 28x28 grayscale:
* projector 1024-1024-1024 instead of 8192-8192-8192 (the paper's fig. 4 shows
  accuracy still rising with width, so expect some loss from this); lambda stays
  at the paper's 0.0051;
* the views of the SimCLR CPU config (see there), not the ImageNet augmentations;
* the optimizer is the paper's LARS (implementation details: base lr 0.2 x batch/256,
  weight decay 1.5e-6, biases and BN parameters excluded from decay and from the
  trust ratio), with a 100-step warmup instead of 10 epochs. The paper gives
  biases and BN parameters their own lr (0.0048); here they take the one schedule.
Not swept on this dataset.
"""

from sslax import presets
from sslax.methods.barlow_twins import defaults as barlow_twins_defaults


def get_config():
  method = barlow_twins_defaults()
  # The README's Fashion-MNIST numbers were measured with both views in one call (shared
  # BatchNorm statistics); the source forwards each view apart (the method's default).
  method.views_forward = "concatenated"
  method.projector_hidden = (1024, 1024)
  method.projector_dim = 1024
  config = presets.fashion_mnist_cpu(method)

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.2       # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.weight_decay = 1.5e-6
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.warmup_steps = 100
  return config
