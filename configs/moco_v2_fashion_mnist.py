"""MoCo v2 on Fashion-MNIST with a small ConvNet: the CPU counterpart of
configs/simclr_fashion_mnist.py (same data, encoder, views, steps and batch).

  python -m sslax.main --config=configs/moco_v2_fashion_mnist.py --workdir=runs/moco_v2_fmnist

Departures from MoCo v2 (Chen et al. 2020; official facebookresearch/moco), for a 2-core
CPU and 28x28 grayscale:
* queue of 16384 keys (64 batches) instead of 65536: 4000 steps x 256 see each image
  about 17 times, and a 65536 queue would hold keys from over a quarter of the whole
  run, encoded by a much older key encoder;
* m = 0.99 instead of 0.999: with 4000 steps instead of 200 epochs x 5000 steps the key
  encoder must move faster (solo-learn's CIFAR MoCo v2+ recipe uses 0.99);
* head Dense(512)-ReLU-Dense(128) (official 2048 -> 128);
* the views of the SimCLR CPU config (see there);
* the official SGD (lr 0.03 x batch/256, momentum 0.9, weight decay 1e-4, cosine), with
  a 100-step warmup. T = 0.2 as MoCo v2.
Not swept on this dataset.
"""

from sslax import presets
from sslax.methods.moco_v2 import defaults as moco_v2_defaults


def get_config():
  method = moco_v2_defaults()
  method.queue_size = 16384
  method.base_momentum = 0.99
  method.projector_hidden = (512,)
  method.projector_dim = 128
  config = presets.fashion_mnist_cpu(method)

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.03      # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 100
  return config
