"""Supervised baseline on Fashion-MNIST: the encoder of the self-supervised CPU configs
(configs/*_fashion_mnist.py: same data, ConvNet, steps and batch, from
`presets.fashion_mnist_cpu`) trained with labels, evaluated by the same frozen
linear probe and kNN.

  python -m sslax.main --config=configs/supervised_fashion_mnist.py --workdir=runs/supervised_fmnist

One view per image, the CPU config's view (crop scale (0.5, 1), flip, brightness and
contrast jitter p 0.8), so the comparison with the SSL encoders changes only the loss.
The optimizer is the usual supervised one, SGD with Nesterov momentum 0.9 and cosine
decay; base lr 0.1 x batch/256 (Goyal et al. 2017's rule), weight decay 5e-4 (the
CIFAR ResNet recipe, e.g. kuangliu/pytorch-cifar) and the 100-step warmup of the other
CPU configs are this file's choices, not tuned on this dataset.
data.num_classes = 10 is checked against the dataset by the trainer.
"""

import ml_collections

from sslax import presets
from sslax.methods.supervised import defaults as supervised_defaults


def get_config():
  config = presets.fashion_mnist_cpu(supervised_defaults())
  config.data.num_classes = 10
  view = config.views.view1
  config.views = ml_collections.ConfigDict({"view1": view})

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.1       # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.optimizer.warmup_steps = 100
  return config
