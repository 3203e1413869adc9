"""BYOL on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool): solo-learn's recipe.

  python -m sslax.main --config=configs/byol_cifar10.py --workdir=runs/byol_cifar10 \
      --config.data.download=True
  python -m sslax.recipe --config=configs/byol_cifar10.py   # the recipe card

vturrisi/solo-learn scripts/pretrain/cifar/byol.yaml with augmentations/asymmetric.yaml:
batch 256, solo-learn's LARS (lr 1.0 x batch/256, eta 0.02, clip_lr, biases and norms
excluded), weight decay 1e-5, 10 warm-up epochs from 3e-5 then cosine, 1000 epochs, tau
0.99 cosine-increased to 1, projector and predictor 4096 -> 256, each view forwarded on
its own; views: crop (0.08, 1), colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2,
no blur, solarization p 0 / 0.2, flip. Departures: `config.recipe.departures`.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.byol import defaults as byol_defaults

YAML = "byol.yaml"
LR, WD = 1.0, 1e-5


def get_config():
  config, _ = presets.solo_learn_cifar10(byol_defaults(), optimizer="lars", lr=LR, weight_decay=WD)
  config.method.projector_hidden = (4096,)
  config.method.projector_dim = 256
  config.method.predictor_hidden = (4096,)
  config.method.base_momentum = 0.99
  config.method.views_forward = "per_view"

  common = dict(crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
                jitter_p=0.8, gray_p=0.2, blur_p=0.0)
  config.views.view1 = default_view_config(solarize_p=0.0, **common)
  config.views.view2 = default_view_config(solarize_p=0.2, **common)

  where = f"scripts/pretrain/cifar/{YAML}"
  aug = "scripts/pretrain/cifar/augmentations/asymmetric.yaml"
  config.recipe.source = f"{presets.SOLO_LEARN} {where} (+ {aug}, solo/methods/byol.py)"
  presets.set_crop_interpolation(config, "bicubic")  # solo/data/pretrain_dataloader.py
  config.recipe.source_values = presets.solo_learn_values(YAML, optimizer="lars", lr=LR, weight_decay=WD) + (
      ("method.projector_hidden", (4096,), f"{where} proj_hidden_dim"),
      ("method.projector_dim", 256, f"{where} proj_output_dim"),
      ("method.predictor_hidden", (4096,), f"{where} pred_hidden_dim"),
      ("method.base_momentum", 0.99, f"{where} momentum.base_tau"),
      ("method.final_momentum", 1.0, f"{where} momentum.final_tau"),
      ("method.views_forward", "per_view", "solo/methods/base.py: one forward per crop"),
      ("views", 2, f"{aug}: two crops"),
      ("views.view1.crop_scale", (0.08, 1.0), f"{aug} rrc"),
      ("views.view1.saturation", 0.2, f"{aug} color_jitter"),
      ("views.view1.blur_p", 0.0, f"{aug} gaussian_blur.prob"),
      ("views.view1.solarize_p", 0.0, f"{aug} solarization.prob (view 1)"),
      ("views.view2.solarize_p", 0.2, f"{aug} solarization.prob (view 2)"),
  )
  config.recipe.departures = presets.SOLO_LEARN_DEPARTURES
  return config
