"""MoCo v2 on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool).

  python -m sslax.main --config=configs/moco_v2_cifar10.py --workdir=runs/moco_v2_cifar10 \
      --config.data.download=True

solo-learn's MoCo v2+ recipe (vturrisi/solo-learn, scripts/pretrain/cifar/mocov2plus.yaml
with augmentations/symmetric_weak.yaml): batch 256, SGD lr 0.3 x batch/256, momentum 0.9,
weight decay 1e-4, 10 warmup epochs then cosine, 1000 epochs, queue 32768, T 0.2, head
2048 -> 256 without BN, momentum cosine from 0.99 to 0.999; views: crop (0.08, 1), colour
jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, blur p 0.5, flip.
Departure: solo-learn's MoCo v2+ symmetrizes the loss (both views as queries); sslax's
MoCo v2 computes the official one direction.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.moco_v2 import defaults as moco_v2_defaults


def get_config():
  config, steps_per_epoch = presets.cifar10_resnet18(
      moco_v2_defaults(), batch_size=256, epochs=1000)
  config.method.temperature = 0.2
  config.method.queue_size = 32768
  config.method.projector_hidden = (2048,)
  config.method.projector_dim = 256
  config.method.base_momentum = 0.99
  config.method.final_momentum = 0.999
  config.method.momentum_schedule = "cosine"

  view = default_view_config(crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                             hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.5)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.3       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  return config
