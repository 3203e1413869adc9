"""SimCLR on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool): solo-learn's recipe.

  python -m sslax.main --config=configs/simclr_cifar10.py --workdir=runs/simclr_cifar10 \
      --config.data.download=True
  python -m sslax.recipe --config=configs/simclr_cifar10.py   # the recipe card

vturrisi/solo-learn scripts/pretrain/cifar/simclr.yaml with augmentations/symmetric.yaml
(solo/methods/simclr.py): batch 256, solo-learn's LARS (lr 0.4 x batch/256, eta 0.02,
clip_lr, biases and norms excluded), weight decay 1e-4, 10 warm-up epochs from 3e-5 then
cosine, 1000 epochs, T 0.2, head Dense(2048)-ReLU-Dense(256) without BatchNorm, each view
forwarded on its own; views: crop (0.08, 1), colour jitter (0.8, 0.8, 0.8, 0.2) p 0.8,
grayscale p 0.2, PIL Gaussian blur sigma (0.1, 2) p 0.5, no solarization, flip.
(SimCLR's own CIFAR-10 recipe, appendix B.9, is another: batch 512-4096, T 0.5, no blur.)
Departures: `config.recipe.departures`.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.simclr import defaults as simclr_defaults

YAML = "simclr.yaml"
LR, WD = 0.4, 1e-4


def get_config():
  config, _ = presets.solo_learn_cifar10(simclr_defaults(), optimizer="lars", lr=LR, weight_decay=WD)
  config.method.temperature = 0.2
  config.method.projector_hidden = (2048,)
  config.method.projector_dim = 256
  config.method.projector_bn = False
  config.method.projector_last_bn = False
  config.method.views_forward = "per_view"

  view = default_view_config(crop_scale=(0.08, 1.0), color_strength=1.0, jitter_p=0.8,
                             gray_p=0.2, blur_p=0.5, blur_kernel="sigma", solarize_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  where = f"scripts/pretrain/cifar/{YAML}"
  aug = "scripts/pretrain/cifar/augmentations/symmetric.yaml"
  config.recipe.source = f"{presets.SOLO_LEARN} {where} (+ {aug}, solo/methods/simclr.py)"
  presets.set_crop_interpolation(config, "bicubic")  # solo/data/pretrain_dataloader.py
  config.recipe.source_values = presets.solo_learn_values(YAML, optimizer="lars", lr=LR, weight_decay=WD) + (
      ("method.temperature", 0.2, f"{where} temperature"),
      ("method.projector_hidden", (2048,), f"{where} proj_hidden_dim"),
      ("method.projector_dim", 256, f"{where} proj_output_dim"),
      ("method.projector_bn", False, "solo/methods/simclr.py: Linear-ReLU-Linear"),
      ("method.projector_last_bn", False, "solo/methods/simclr.py: Linear-ReLU-Linear"),
      ("method.views_forward", "per_view", "solo/methods/base.py: one forward per crop"),
      ("views", 2, f"{aug} num_crops 2"),
      ("views.view1.crop_scale", (0.08, 1.0), f"{aug} rrc"),
      ("views.view1.brightness", 0.8, f"{aug} color_jitter"),
      ("views.view1.hue", 0.2, f"{aug} color_jitter"),
      ("views.view1.blur_p", 0.5, f"{aug} gaussian_blur.prob"),
      ("views.view1.blur_kernel", "sigma", "solo/data/pretrain_dataloader.py PIL GaussianBlur(radius=sigma)"),
      ("views.view1.solarize_p", 0.0, f"{aug} solarization.prob"),
  )
  config.recipe.departures = presets.SOLO_LEARN_DEPARTURES
  return config
