"""Rotation prediction (RotNet) on Fashion-MNIST: the encoder, data, steps and batch of
the other CPU configs (`presets.fashion_mnist_cpu`), evaluated by the same frozen
linear probe and kNN on full 28 px images.

  python -m sslax.main --config=configs/rotation_fashion_mnist.py --workdir=runs/rotation_fmnist

From the paper (Gidaris et al. 2018, CIFAR-10 setup): all 4 rotations (0, 90, 180, 270
degrees) of every image in the same batch; SGD with Nesterov momentum 0.9, lr 0.1,
weight decay 5e-4 (batch 128, 100 epochs, lr / 5 at epochs 30, 60, 80).

Choices and departures:
* One view, the shared CPU view (crop scale (0.5, 1), flip, brightness / contrast
  jitter p 0.8): a mild augmentation, as the paper's; flips do not change which
  rotation was applied. The 4 rotations make the effective batch 4 x 256 = 1024 images,
  so a step does about 4x the network work of the supervised baseline's one view.
* A linear 4-way classifier on the ConvNet's pooled features (the paper's NIN predicts
  from a last conv block and evaluates earlier blocks; here the evaluated layer is the
  backbone output, as for every method).
* The paper's optimizer, at lr 0.1 x batch/256 with the trainer's 100-step warmup and
  cosine decay instead of step drops (the trainer has one schedule); it is also the
  supervised baseline's, and the task is a 4-way classification.
Not swept on this dataset.
"""

import ml_collections

from sslax import presets
from sslax.methods.rotation import defaults as rotation_defaults


def get_config():
  config = presets.fashion_mnist_cpu(rotation_defaults())
  config.views = ml_collections.ConfigDict({"view1": config.views.view1})

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.1       # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.optimizer.warmup_steps = 100
  return config
