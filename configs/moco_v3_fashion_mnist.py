"""MoCo v3 on Fashion-MNIST with a small ConvNet: the CPU counterpart of
configs/simclr_fashion_mnist.py (same data, encoder, views, steps and batch).

  python -m sslax.main --config=configs/moco_v3_fashion_mnist.py --workdir=runs/moco_v3_fmnist

Departures from MoCo v3's ResNet-50 recipe (Chen, Xie, He 2021; official
facebookresearch/moco-v3), for a 2-core CPU and 28x28 grayscale:
* heads 4x narrower: projector 1024-1024-256, predictor 1024-256 (official 4096 -> 256);
* T = 0.2 instead of 1.0: with batch 256 instead of 4096 and these small heads; 0.2 is
  the paper's ViT value and solo-learn's CIFAR value;
* the views of the SimCLR CPU config (see there);
* the official LARS (lr 0.6 x batch/256 for 100 epochs, weight decay 1e-6, cosine) with
  a 100-step warmup instead of 10 epochs. m = 0.99, cosine-increased to 1, as official.
Not swept on this dataset.
"""

from sslax import presets
from sslax.methods.moco_v3 import defaults as moco_v3_defaults


def get_config():
  method = moco_v3_defaults()
  # The README's Fashion-MNIST numbers were measured with both views in one call (shared
  # BatchNorm statistics); the source forwards each view apart (the method's default).
  method.views_forward = "concatenated"
  method.temperature = 0.2
  method.projector_hidden = (1024, 1024)
  method.projector_dim = 256
  method.predictor_hidden = (1024,)
  config = presets.fashion_mnist_cpu(method)

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.6       # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.weight_decay = 1e-6
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.warmup_steps = 100
  return config
