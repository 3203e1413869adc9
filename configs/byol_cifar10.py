"""BYOL on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool).

  python -m sslax.main --config=configs/byol_cifar10.py --workdir=runs/byol_cifar10 \
      --config.data.download=True

solo-learn's recipe (vturrisi/solo-learn, scripts/pretrain/cifar/byol.yaml with
augmentations/asymmetric.yaml): batch 256, LARS lr 1.0 x batch/256, eta (trust
coefficient) 0.02, biases and norm parameters excluded, weight decay 1e-5, 10 warmup
epochs then cosine, 1000 epochs, tau 0.99 cosine-increased to 1, projector and predictor
4096 -> 256; views: crop (0.08, 1), colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8,
grayscale p 0.2, no blur, solarization p 0 / 0.2, flip.
Departure: solo-learn's LARS clips the adaptive rate at the global one (`clip_lr: True`),
which optax.lars does not.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.byol import defaults as byol_defaults


def get_config():
  config, steps_per_epoch = presets.cifar10_resnet18(
      byol_defaults(), batch_size=256, epochs=1000)
  config.method.projector_hidden = (4096,)
  config.method.projector_dim = 256
  config.method.predictor_hidden = (4096,)
  config.method.base_momentum = 0.99

  common = dict(crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
                jitter_p=0.8, gray_p=0.2, blur_p=0.0)
  config.views.view1 = default_view_config(solarize_p=0.0, **common)
  config.views.view2 = default_view_config(solarize_p=0.2, **common)

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 1.0       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.02
  config.optimizer.weight_decay = 1e-5
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  return config
