"""MoCo v2+ on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool): solo-learn's recipe.

  python -m sslax.main --config=configs/moco_v2_cifar10.py --workdir=runs/moco_v2_cifar10 \
      --config.data.download=True
  python -m sslax.recipe --config=configs/moco_v2_cifar10.py   # the recipe card

vturrisi/solo-learn scripts/pretrain/cifar/mocov2plus.yaml with
augmentations/symmetric_weak.yaml (solo/methods/mocov2plus.py): batch 256, SGD lr 0.3 x
batch/256, momentum 0.9, weight decay 1e-4 on every parameter, 10 warm-up epochs from 3e-5
then cosine, 1000 epochs, queue 32768 per view, T 0.2, head Dense(2048)-ReLU-Dense(256),
momentum cosine from 0.99 to 0.999, the symmetric loss (both views as queries, halved);
views: crop (0.08, 1), colour jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, PIL
Gaussian blur p 0.5, flip. Departures: `config.recipe.departures`.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.moco_v2 import defaults as moco_v2_defaults

YAML = "mocov2plus.yaml"
LR, WD = 0.3, 1e-4


def get_config():
  config, _ = presets.solo_learn_cifar10(moco_v2_defaults(), optimizer="sgd", lr=LR, weight_decay=WD)
  config.method.temperature = 0.2
  config.method.queue_size = 32768
  config.method.projector_hidden = (2048,)
  config.method.projector_dim = 256
  config.method.base_momentum = 0.99
  config.method.final_momentum = 0.999
  config.method.momentum_schedule = "cosine"
  config.method.symmetric = True

  view = default_view_config(crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                             hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.5, blur_kernel="sigma")
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  where = f"scripts/pretrain/cifar/{YAML}"
  aug = "scripts/pretrain/cifar/augmentations/symmetric_weak.yaml"
  config.recipe.source = f"{presets.SOLO_LEARN} {where} (+ {aug}, solo/methods/mocov2plus.py)"
  presets.set_crop_interpolation(config, "bicubic")  # solo/data/pretrain_dataloader.py
  config.recipe.source_values = presets.solo_learn_values(YAML, optimizer="sgd", lr=LR, weight_decay=WD) + (
      ("method.temperature", 0.2, f"{where} temperature"),
      ("method.queue_size", 32768, f"{where} queue_size"),
      ("method.projector_hidden", (2048,), f"{where} proj_hidden_dim"),
      ("method.projector_dim", 256, f"{where} proj_output_dim"),
      ("method.base_momentum", 0.99, f"{where} momentum.base_tau"),
      ("method.final_momentum", 0.999, f"{where} momentum.final_tau"),
      ("method.symmetric", True, "solo/methods/mocov2plus.py training_step: symmetric"),
      ("views", 2, f"{aug} num_crops 2"),
      ("views.view1.saturation", 0.4, f"{aug} color_jitter"),
      ("views.view1.blur_p", 0.5, f"{aug} gaussian_blur.prob"),
      ("views.view1.blur_kernel", "sigma", "solo/data/pretrain_dataloader.py PIL GaussianBlur"),
  )
  config.recipe.departures = presets.SOLO_LEARN_DEPARTURES
  return config
