"""VICReg on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool).

  python -m sslax.main --config=configs/vicreg_cifar10.py --workdir=runs/vicreg_cifar10 \
      --config.data.download=True

solo-learn's recipe (vturrisi/solo-learn, scripts/pretrain/cifar/vicreg.yaml; defaults
from solo/methods/base.py and main_pretrain.py): batch 256, LARS lr 0.3 x batch/256,
eta (trust coefficient) 0.02, biases and norm parameters excluded from the LARS
adaptation and decay, weight decay 1e-4, 10 warmup epochs then cosine decay, 1000
epochs; expander 2048-2048-2048, coefficients 25 / 25 / 1; views (the same for both):
random resized crop (0.2, 1), colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2,
no blur, solarization p 0.1, horizontal flip.
Departure: solo-learn's LARS clips the adaptive rate at the global one
(`clip_lr: True`), which optax.lars does not.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.vicreg import defaults as vicreg_defaults


def get_config():
  config, steps_per_epoch = presets.cifar10_resnet18(
      vicreg_defaults(), batch_size=256, epochs=1000)
  config.method.sim_coeff = 25.0
  config.method.std_coeff = 25.0
  config.method.cov_coeff = 1.0
  config.method.projector_hidden = (2048, 2048)
  config.method.projector_dim = 2048

  view = default_view_config(crop_scale=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.2,
                             hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.0, solarize_p=0.1)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.3       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.02
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  return config
