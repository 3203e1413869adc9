"""SwAV on CIFAR-10 with a CIFAR-style ResNet-18: solo-learn's recipe.

  python -m sslax.main --config=configs/swav_cifar10.py --workdir=runs/swav_cifar10 \
      --config.data.download=True

vturrisi/solo-learn scripts/pretrain/cifar/swav.yaml: ResNet-18, proj_hidden_dim 2048,
proj_output_dim 128, num_prototypes 3000, temperature 0.1, queue_size 3840 from epoch
50, prototypes frozen 2 epochs, LARS with lr 0.6 x batch/256, eta (trust coefficient)
0.02, weight decay 1e-6, biases and norms excluded, batch 256, 1000 epochs,
warmup_cosine scheduler (solo-learn's default 10 warm-up epochs), sync BatchNorm;
Sinkhorn epsilon 0.05 and 3 iterations (solo/methods/swav.py defaults).
Views: augmentations/symmetric.yaml, two 32 px crops (no multi-crop), scale (0.08, 1),
colour jitter (0.8, 0.8, 0.8, 0.2) p 0.8, grayscale p 0.2, blur p 0.5, no solarization.

solo-learn's LARS with clip_lr, 10 warm-up epochs from 3e-5, PIL Gaussian blur (kernel from
sigma). Departures: `config.recipe.departures`.
  python -m sslax.recipe --config=configs/swav_cifar10.py   # the recipe card
"""

import ml_collections

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.swav import defaults as swav_defaults

YAML = "swav.yaml"
LR, WD = 0.6, 1e-6


def get_config():
  config, steps_per_epoch = presets.solo_learn_cifar10(swav_defaults(), optimizer="lars", lr=LR,
                                                       weight_decay=WD)
  config.method.projector_hidden = (2048,)
  config.method.projector_dim = 128
  config.method.num_prototypes = 3000
  config.method.temperature = 0.1
  config.method.queue_length = 3840
  config.method.queue_start_step = 50 * steps_per_epoch
  config.method.freeze_prototypes_steps = 2 * steps_per_epoch

  view = default_view_config(crop_scale=(0.08, 1.0), color_strength=1.0, jitter_p=0.8,
                             gray_p=0.2, blur_p=0.5, blur_kernel="sigma", solarize_p=0.0)
  config.views = ml_collections.ConfigDict({
      "global1": view, "global2": view.copy_and_resolve_references()})

  where = f"scripts/pretrain/cifar/{YAML}"
  aug = "scripts/pretrain/cifar/augmentations/symmetric.yaml"
  config.recipe.source = f"{presets.SOLO_LEARN} {where} (+ {aug}, solo/methods/swav.py)"
  presets.set_crop_interpolation(config, "bicubic")  # solo/data/pretrain_dataloader.py
  config.recipe.source_values = presets.solo_learn_values(YAML, optimizer="lars", lr=LR, weight_decay=WD) + (
      ("method.projector_hidden", (2048,), f"{where} proj_hidden_dim"),
      ("method.projector_dim", 128, f"{where} proj_output_dim"),
      ("method.num_prototypes", 3000, f"{where} num_prototypes"),
      ("method.temperature", 0.1, f"{where} temperature"),
      ("method.queue_length", 3840, f"{where} queue_size"),
      ("method.queue_start_step", 50 * steps_per_epoch, f"{where} epoch_queue_starts 50"),
      ("method.freeze_prototypes_steps", 2 * steps_per_epoch, f"{where} freeze_prototypes_epochs 2"),
      ("views", 2, f"{aug} num_crops 2"),
      ("views.global1.blur_p", 0.5, f"{aug} gaussian_blur.prob"),
      ("views.global1.blur_kernel", "sigma", "solo/data/pretrain_dataloader.py PIL GaussianBlur"),
  )
  config.recipe.departures = presets.SOLO_LEARN_DEPARTURES + (
      ("-", "the two crops share BatchNorm statistics (one call per resolution); solo-learn "
            "forwards each crop on its own"),
  )
  return config
