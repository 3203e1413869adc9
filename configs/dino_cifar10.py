"""DINO on CIFAR-10 with a CIFAR-style ResNet-18: solo-learn's recipe.

  python -m sslax.main --config=configs/dino_cifar10.py --workdir=runs/dino_cifar10 \
      --config.data.download=True

vturrisi/solo-learn scripts/pretrain/cifar/dino.yaml: ResNet-18, proj_hidden_dim 2048,
proj_output_dim (bottleneck) 256, num_prototypes 4096, momentum base_tau 0.9995 cosine to
1, LARS with lr 0.3 x batch/256, eta (trust coefficient) 0.02, weight decay 1e-6,
biases and norms excluded, batch 256, 1000 epochs, warmup_cosine scheduler (solo-learn's
default 10 warm-up epochs), sync BatchNorm. Method defaults of solo/methods/dino.py:
student temperature 0.1, teacher temperature 0.04 -> 0.07 over 50 epochs,
norm_last_layer True, no BN in the head, clip_grad 0 (off), last layer frozen 1 epoch.
Views: augmentations/asymmetric.yaml, two 32 px crops (no multi-crop), scale (0.08, 1),
colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, no blur, solarization p 0.2
on the second crop only.

Departure: solo-learn's LARS also clips the adaptive rate (clip_lr True); optax.lars does
not. Center momentum 0.9 as the official DINO (solo-learn's DINOLoss default too).
"""

import ml_collections

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.dino import defaults as dino_defaults


def get_config():
  config, steps_per_epoch = presets.cifar10_resnet18(
      dino_defaults(), batch_size=256, epochs=1000)
  config.method.head_hidden = 2048
  config.method.head_bottleneck = 256
  config.method.out_dim = 4096
  config.method.base_momentum = 0.9995
  config.method.student_temp = 0.1
  config.method.warmup_teacher_temp = 0.04
  config.method.teacher_temp = 0.07
  config.method.warmup_teacher_temp_steps = 50 * steps_per_epoch
  config.method.freeze_last_layer_steps = steps_per_epoch

  common = dict(crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.2,
                hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.0)
  config.views = ml_collections.ConfigDict({
      "global1": default_view_config(solarize_p=0.0, **common),
      "global2": default_view_config(solarize_p=0.2, **common),
  })

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.3
  config.optimizer.lr_scaling = "linear"
  config.optimizer.trust_coefficient = 0.02
  config.optimizer.weight_decay = 1e-6
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  return config
