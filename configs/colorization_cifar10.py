"""Colorization on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool) and a
convolutional decoder from its pooled 512-d features to the ab channels.

  python -m sslax.main --config=configs/colorization_cifar10.py --workdir=runs/colorization_cifar10 \
      --config.data.download=True

From the paper (Zhang, Isola & Efros 2016, ImageNet): Adam with beta1 0.9, beta2 0.99 and
weight decay 1e-3, lr 3e-5 at batch 40. The loss here is the L2 regression of ab / 110 (the
paper's own L2 baseline; its main loss classifies 313 ab bins), see
sslax/methods/colorization.py.

Choices and departures (not tuned on CIFAR-10):
* One view, random resized crop (0.2, 1) and flip, no colour jitter and no grayscale: the
  target is the view's own colour, which jitter would shift and grayscale would erase.
* AdamW (decoupled decay 1e-3 instead of Adam's L2 term), lr 2e-4 at batch 256 (the paper's
  3e-5 x 256 / 40 = 1.9e-4), 10 warmup epochs and cosine decay, 200 epochs.
* Decoder: 4x4x256 from the features, 3 conv-BN-ReLU stages (128, 64, 32 channels) with
  upsampling to 32x32x2 (sslax/models/decoder.py).
"""

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.colorization import defaults as colorization_defaults


def get_config():
  config, steps_per_epoch = presets.cifar10_resnet18(
      colorization_defaults(), batch_size=256, epochs=200)
  config.views.view1 = crop_flip_view_config((0.2, 1.0))

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 2e-4
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.99
  config.optimizer.weight_decay = 1e-3
  config.optimizer.warmup_steps = 10 * steps_per_epoch

  config.recipe.source = "Zhang, Isola & Efros 2016 (arXiv:1603.08511), an ImageNet recipe"
  config.recipe.source_values = (("optimizer.b2", 0.99, "paper: Adam beta2 0.99"),)
  config.recipe.departures = (
      ("-", "AdamW (decoupled decay) for Adam with an L2 term; the L2 ab loss (the paper's "
            "baseline), not its 313-bin classification; ResNet-18 and a small decoder; batch "
            "256, lr 2e-4, cosine, 200 epochs (not tuned on CIFAR-10)"),
  )
  return config
