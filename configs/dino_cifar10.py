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

solo-learn's LARS with clip_lr, 10 warm-up epochs from 3e-5. Center momentum 0.9 as the
official DINO (solo-learn's DINOLoss default too).
Teacher-temperature warm-up: 50 epochs, solo-learn's default until its 2022-09 move to
OmegaConf (commit 6f228fd; 0 since), and so the version behind its README number (added
2021-07-09). Departures: `config.recipe.departures`.
  python -m sslax.recipe --config=configs/dino_cifar10.py   # the recipe card
"""

import ml_collections

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.dino import defaults as dino_defaults

YAML = "dino.yaml"
LR, WD = 0.3, 1e-6


def get_config():
  config, steps_per_epoch = presets.solo_learn_cifar10(dino_defaults(), optimizer="lars", lr=LR,
                                                       weight_decay=WD)
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

  where = f"scripts/pretrain/cifar/{YAML}"
  aug = "scripts/pretrain/cifar/augmentations/asymmetric.yaml"
  config.recipe.source = f"{presets.SOLO_LEARN} {where} (+ {aug}, solo/methods/dino.py)"
  presets.set_crop_interpolation(config, "bicubic")  # solo/data/pretrain_dataloader.py
  config.recipe.source_values = presets.solo_learn_values(YAML, optimizer="lars", lr=LR, weight_decay=WD) + (
      ("method.head_hidden", 2048, f"{where} proj_hidden_dim"),
      ("method.head_bottleneck", 256, f"{where} proj_output_dim"),
      ("method.out_dim", 4096, f"{where} num_prototypes"),
      ("method.base_momentum", 0.9995, f"{where} momentum.base_tau"),
      ("method.student_temp", 0.1, "solo/methods/dino.py student_temperature default"),
      ("method.teacher_temp", 0.07, "solo/methods/dino.py teacher_temperature default"),
      ("method.warmup_teacher_temp", 0.04, "solo/methods/dino.py warmup_teacher_temperature default"),
      ("method.warmup_teacher_temp_steps", 0,
       "solo/methods/dino.py warmup_teacher_temperature_epochs default (HEAD: 0)"),
      ("method.freeze_last_layer_steps", steps_per_epoch, "solo/methods/dino.py freeze_last_layer 1"),
      ("views", 2, f"{aug}: two crops"),
      ("views.global1.blur_p", 0.0, f"{aug} gaussian_blur.prob"),
      ("views.global2.solarize_p", 0.2, f"{aug} solarization.prob (view 2)"),
  )
  config.recipe.departures = presets.SOLO_LEARN_DEPARTURES + (
      ("method.warmup_teacher_temp_steps", "50 epochs: the default (argparse, 2021) when solo-learn's "
       "README number was produced; HEAD's default is 0 since 6f228fd (2022-09)"),
      ("-", "the two crops share BatchNorm statistics (one call per resolution); solo-learn "
            "forwards each crop on its own"),
  )
  return config
