"""Supervised baseline on CIFAR-10: the CIFAR-stem ResNet-18 of the SSL CIFAR-10 configs
(configs/*_cifar10.py) trained with labels.

  python -m sslax.main --config=configs/supervised_cifar10.py --workdir=runs/supervised_cifar10 \
      --config.data.download=True

The standard CIFAR ResNet-18 recipe (kuangliu/pytorch-cifar main.py): SGD, lr 0.1 at
batch 128, momentum 0.9, weight decay 5e-4, cosine decay over 200 epochs, random crop
and horizontal flip only. Here lr 0.1 x batch/128 is written as base_lr 0.2 x batch/256
(so batch 128 gives the recipe's 0.1), batch 128 as in the recipe.
Departures:
* the crop is a random *resized* crop of scale (0.6, 1) (this file's choice), not a
  32x32 crop of the 4-pixel zero-padded image: the augmentation module has no padding
  crop. Both take most of the image, shifted and (here) mildly rescaled;
* no colour jitter, grayscale, blur or solarization (as the recipe);
* the trainer leaves biases and BatchNorm parameters undecayed (the recipe decays every
  parameter), and adds no warmup (the recipe has none).
"""

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.supervised import defaults as supervised_defaults


def get_config():
  config, _ = presets.cifar10_resnet18(supervised_defaults(), batch_size=128, epochs=200)
  config.data.num_classes = 10


  config.views.view1 = crop_flip_view_config((0.6, 1.0))

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.2       # x batch/256: 0.1 at the recipe's batch 128
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 5e-4
  config.optimizer.warmup_steps = 0

  config.recipe.source = "kuangliu/pytorch-cifar main.py (the standard CIFAR ResNet-18 recipe)"
  config.recipe.source_values = (
      ("batch_size", 128, "main.py batch_size=128"),
      ("epochs", 200.0, "main.py CosineAnnealingLR(T_max=200)"),
      ("warmup_epochs", 0.0, "main.py: no warm-up"),
      ("lr_peak", 0.1, "main.py --lr 0.1"),
      ("optimizer", "sgd", "main.py SGD momentum 0.9"),
      ("optimizer.weight_decay", 5e-4, "main.py weight_decay=5e-4"),
  )
  config.recipe.departures = (
      ("-", "a random resized crop (0.6, 1) instead of a 4-pixel padded random crop; biases and "
            "BatchNorm parameters undecayed"),
  )
  return config
