"""VICReg on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool): solo-learn's recipe.

  python -m sslax.main --config=configs/vicreg_cifar10.py --workdir=runs/vicreg_cifar10 \
      --config.data.download=True
  python -m sslax.recipe --config=configs/vicreg_cifar10.py   # the recipe card

vturrisi/solo-learn scripts/pretrain/cifar/vicreg.yaml (solo/losses/vicreg.py): batch 256,
solo-learn's LARS (lr 0.3 x batch/256, eta 0.02, clip_lr, biases and norms excluded),
weight decay 1e-4, 10 warm-up epochs from 3e-5 then cosine, 1000 epochs; expander
2048-2048-2048, coefficients 25 / 25 / 1 with the two views' variance terms summed (not
halved as in the official code), each view forwarded on its own; views (the same for
both): crop (0.2, 1), colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, no blur,
solarization p 0.1, flip. Departures: `config.recipe.departures`.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.vicreg import defaults as vicreg_defaults

YAML = "vicreg.yaml"
LR, WD = 0.3, 1e-4


def get_config():
  config, _ = presets.solo_learn_cifar10(vicreg_defaults(), optimizer="lars", lr=LR, weight_decay=WD)
  config.method.sim_coeff = 25.0
  config.method.std_coeff = 25.0
  config.method.cov_coeff = 1.0
  config.method.projector_hidden = (2048, 2048)
  config.method.projector_dim = 2048
  config.method.halve_variance = False
  config.method.views_forward = "per_view"

  view = default_view_config(crop_scale=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.2,
                             hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.0, solarize_p=0.1)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  where = f"scripts/pretrain/cifar/{YAML}"
  config.recipe.source = f"{presets.SOLO_LEARN} {where} (+ solo/losses/vicreg.py)"
  presets.set_crop_interpolation(config, "bicubic")  # solo/data/pretrain_dataloader.py
  config.recipe.source_values = presets.solo_learn_values(YAML, optimizer="lars", lr=LR, weight_decay=WD) + (
      ("method.projector_hidden", (2048, 2048), f"{where} proj_hidden_dim"),
      ("method.projector_dim", 2048, f"{where} proj_output_dim"),
      ("method.sim_coeff", 25.0, f"{where} sim_loss_weight"),
      ("method.std_coeff", 25.0, f"{where} var_loss_weight"),
      ("method.cov_coeff", 1.0, f"{where} cov_loss_weight"),
      ("method.halve_variance", False, "solo/losses/vicreg.py variance_loss: the two terms summed"),
      ("method.views_forward", "per_view", "solo/methods/base.py: one forward per crop"),
      ("views", 2, f"{where} num_crops 2"),
      ("views.view1.crop_scale", (0.2, 1.0), f"{where} rrc.crop_min_scale"),
      ("views.view1.blur_p", 0.0, f"{where} gaussian_blur"),
      ("views.view1.solarize_p", 0.1, f"{where} solarization.prob"),
  )
  config.recipe.departures = presets.SOLO_LEARN_DEPARTURES
  return config
