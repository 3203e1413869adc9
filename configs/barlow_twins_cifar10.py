"""Barlow Twins on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool).

  python -m sslax.main --config=configs/barlow_twins_cifar10.py --workdir=runs/barlow_cifar10 \
      --config.data.download=True

solo-learn's recipe (vturrisi/solo-learn, scripts/pretrain/cifar/barlow.yaml with
augmentations/asymmetric.yaml; defaults from solo/methods/base.py and main_pretrain.py):
batch 256, LARS lr 0.3 x batch/256, eta (trust coefficient) 0.02, biases and norm
parameters excluded from the LARS adaptation and decay, weight decay 1e-4, 10 warmup
epochs then cosine decay, 1000 epochs; projector 2048-2048-2048, lambda 0.0051; views:
random resized crop (0.08, 1), colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2,
no blur, solarization p 0 / 0.2 on the two views, horizontal flip.
Departures: solo-learn multiplies the loss by `scale_loss: 0.1` (sslax's loss has no
scale; under LARS this changes the balance of gradient and weight decay in the weights'
update, and the step of biases and BatchNorm parameters, by that factor), and its LARS
clips the adaptive rate at the global one (`clip_lr: True`), which optax.lars does not.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.barlow_twins import defaults as barlow_twins_defaults


def get_config():
  config, steps_per_epoch = presets.cifar10_resnet18(
      barlow_twins_defaults(), batch_size=256, epochs=1000)
  config.method.lambd = 0.0051
  config.method.projector_hidden = (2048, 2048)
  config.method.projector_dim = 2048

  common = dict(crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
                jitter_p=0.8, gray_p=0.2, blur_p=0.0)
  config.views.view1 = default_view_config(solarize_p=0.0, **common)
  config.views.view2 = default_view_config(solarize_p=0.2, **common)

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.3       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.02
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  return config
