"""BYOL on Fashion-MNIST with a small ConvNet: the CPU counterpart of
configs/simclr_fashion_mnist.py (same data, encoder, views, steps and batch).

  python -m sslax.main --config=configs/byol_fashion_mnist.py --workdir=runs/byol_fmnist

Departures from the paper (Grill et al. 2020), for a 2-core CPU and 28x28 grayscale:
* heads 4x narrower: projector and predictor Dense(1024)-BN-ReLU-Dense(256) (paper 4096 -> 256);
* tau_base 0.99 instead of 0.996: the paper's value is for 1000 epochs at batch 4096, and
  its appendix (table 5 / section 5) shows smaller values work for short runs; solo-learn's
  CIFAR recipe uses 0.99 as well. Cosine-increased to 1 over the run as in the paper;
* the views of the SimCLR CPU config (see there), not BYOL's asymmetric ImageNet views;
* the paper's LARS (base lr 0.2 x batch/256, weight decay 1.5e-6, biases and BN parameters
  excluded from decay and the trust ratio), with a 100-step warmup instead of 10 epochs.
Not swept on this dataset.
"""

from sslax import presets
from sslax.methods.byol import defaults as byol_defaults


def get_config():
  method = byol_defaults()
  # The README's Fashion-MNIST numbers were measured with both views in one call (shared
  # BatchNorm statistics); the source forwards each view apart (the method's default).
  method.views_forward = "concatenated"
  method.projector_hidden = (1024,)
  method.projector_dim = 256
  method.predictor_hidden = (1024,)
  method.base_momentum = 0.99
  config = presets.fashion_mnist_cpu(method)

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.2       # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.weight_decay = 1.5e-6
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.warmup_steps = 100
  return config
