"""Barlow Twins on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool): solo-learn's recipe.

  python -m sslax.main --config=configs/barlow_twins_cifar10.py --workdir=runs/barlow_cifar10 \
      --config.data.download=True
  python -m sslax.recipe --config=configs/barlow_twins_cifar10.py   # the recipe card

vturrisi/solo-learn scripts/pretrain/cifar/barlow.yaml with augmentations/asymmetric.yaml
(solo/methods/barlow_twins.py, solo/losses/barlow.py): batch 256, solo-learn's LARS (lr 0.3
x batch/256, eta 0.02, clip_lr, biases and norms excluded), weight decay 1e-4, 10 warm-up
epochs from 3e-5 then cosine, 1000 epochs; projector 2048-2048-2048, lambda 0.0051, loss
x scale_loss 0.1, each view forwarded on its own; views: crop (0.08, 1), colour jitter
(0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, no blur, solarization p 0 / 0.2, flip.
Departures: `config.recipe.departures`.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.barlow_twins import defaults as barlow_twins_defaults

YAML = "barlow.yaml"
LR, WD = 0.3, 1e-4


def get_config():
  config, _ = presets.solo_learn_cifar10(barlow_twins_defaults(), optimizer="lars", lr=LR,
                                         weight_decay=WD)
  config.method.lambd = 0.0051
  config.method.projector_hidden = (2048, 2048)
  config.method.projector_dim = 2048
  config.method.scale_loss = 0.1
  config.method.views_forward = "per_view"

  common = dict(crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
                jitter_p=0.8, gray_p=0.2, blur_p=0.0)
  config.views.view1 = default_view_config(solarize_p=0.0, **common)
  config.views.view2 = default_view_config(solarize_p=0.2, **common)

  where = f"scripts/pretrain/cifar/{YAML}"
  aug = "scripts/pretrain/cifar/augmentations/asymmetric.yaml"
  config.recipe.source = f"{presets.SOLO_LEARN} {where} (+ {aug}, solo/losses/barlow.py)"
  presets.set_crop_interpolation(config, "bicubic")  # solo/data/pretrain_dataloader.py
  config.recipe.source_values = presets.solo_learn_values(YAML, optimizer="lars", lr=LR, weight_decay=WD) + (
      ("method.projector_hidden", (2048, 2048), f"{where} proj_hidden_dim"),
      ("method.projector_dim", 2048, f"{where} proj_output_dim"),
      ("method.scale_loss", 0.1, f"{where} scale_loss"),
      ("method.lambd", 0.0051, "solo/methods/barlow_twins.py lamb default"),
      ("method.views_forward", "per_view", "solo/methods/base.py: one forward per crop"),
      ("views", 2, f"{aug}: two crops"),
      ("views.view1.crop_scale", (0.08, 1.0), f"{aug} rrc"),
      ("views.view1.blur_p", 0.0, f"{aug} gaussian_blur.prob"),
      ("views.view2.solarize_p", 0.2, f"{aug} solarization.prob (view 2)"),
  )
  config.recipe.departures = presets.SOLO_LEARN_DEPARTURES
  return config
