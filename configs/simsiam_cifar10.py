"""SimSiam on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool): solo-learn's recipe.

  python -m sslax.main --config=configs/simsiam_cifar10.py --workdir=runs/simsiam_cifar10 \
      --config.data.download=True
  python -m sslax.recipe --config=configs/simsiam_cifar10.py   # the recipe card

vturrisi/solo-learn scripts/pretrain/cifar/simsiam.yaml with
augmentations/symmetric_weak.yaml (solo/methods/simsiam.py): batch 256, SGD lr 0.5 x
batch/256, momentum 0.9, weight decay 1e-5 on every parameter, 10 warm-up epochs from 3e-5
then cosine, 1000 epochs, the predictor at the fixed peak lr (`static_lr`); projector
2048-2048-2048 (last BN), predictor bottleneck 512, each view forwarded on its own; views:
crop (0.08, 1), colour jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, PIL Gaussian
blur p 0.5, no solarization, flip. Departures: `config.recipe.departures`.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.simsiam import defaults as simsiam_defaults

YAML = "simsiam.yaml"
LR, WD = 0.5, 1e-5


def get_config():
  config, _ = presets.solo_learn_cifar10(simsiam_defaults(), optimizer="sgd", lr=LR, weight_decay=WD)
  config.method.projector_hidden = (2048, 2048)
  config.method.projector_dim = 2048
  config.method.predictor_hidden = (512,)
  config.method.views_forward = "per_view"
  config.optimizer.fixed_lr_parts = ("predictor",)

  view = default_view_config(crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                             hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.5, blur_kernel="sigma",
                             solarize_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  where = f"scripts/pretrain/cifar/{YAML}"
  aug = "scripts/pretrain/cifar/augmentations/symmetric_weak.yaml"
  config.recipe.source = f"{presets.SOLO_LEARN} {where} (+ {aug}, solo/methods/simsiam.py)"
  presets.set_crop_interpolation(config, "bicubic")  # solo/data/pretrain_dataloader.py
  config.recipe.source_values = presets.solo_learn_values(YAML, optimizer="sgd", lr=LR, weight_decay=WD) + (
      ("method.projector_hidden", (2048, 2048), f"{where} proj_hidden_dim"),
      ("method.projector_dim", 2048, f"{where} proj_output_dim"),
      ("method.predictor_hidden", (512,), f"{where} pred_hidden_dim"),
      ("optimizer.fixed_lr_parts", ("predictor",), "solo/methods/simsiam.py predictor static_lr"),
      ("method.views_forward", "per_view", "solo/methods/base.py: one forward per crop"),
      ("views", 2, f"{aug} num_crops 2"),
      ("views.view1.blur_p", 0.5, f"{aug} gaussian_blur.prob"),
      ("views.view1.blur_kernel", "sigma", "solo/data/pretrain_dataloader.py PIL GaussianBlur"),
  )
  config.recipe.departures = presets.SOLO_LEARN_DEPARTURES + (
      ("-", "the projector's last BatchNorm keeps a learned scale; solo-learn's has no affine "
            "parameters (BatchNorm1d(affine=False))"),)
  return config
