"""MoCo v3 on ImageNet (ILSVRC-2012) with a ResNet-50: the official 100-epoch recipe.

  python -m sslax.main --config=configs/moco_v3_imagenet.py --workdir=gs://BUCKET/moco_v3_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Chen, Xie, He 2021 and the official code (facebookresearch/moco-v3, main_moco.py defaults
and CONFIG.md "ResNet-50, 100-epoch pre-training": `--moco-m-cos --crop-min=.2`): batch
4096, LARS, learning rate 0.6 x batch/256, weight decay 1e-6, 10 warmup epochs then cosine,
100 epochs, T 1.0, m 0.99 cosine-increased to 1, projector 4096-256 (last BN; builder.py
MoCo_ResNet `_build_mlp(2, ...)`),
predictor 4096-256, the BYOL views with crop scale (0.2, 1). For 300 epochs CONFIG.md
uses lr 0.3; for 1000 epochs lr 0.3, weight decay 1.5e-6, m 0.996.
"""

from sslax import presets
from sslax.data.augment import byol_view_configs
from sslax.methods.moco_v3 import defaults as moco_v3_defaults


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(
      moco_v3_defaults(), batch_size=4096, epochs=100, checkpoint_every_epochs=2)
  config.method.temperature = 1.0
  config.method.projector_hidden = (4096,)   # MoCo_ResNet: 2 layers (3 is the ViT's)
  config.method.projector_dim = 256
  config.method.predictor_hidden = (4096,)
  config.method.base_momentum = 0.99
  view1, view2 = byol_view_configs()
  view1.crop_scale = view2.crop_scale = (0.2, 1.0)
  config.views.view1, config.views.view2 = view1, view2

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.6       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.weight_decay = 1e-6
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "moco_v3").
  config.linear_eval.recipe = "moco_v3"
  config.optimizer.lars_variant = "pytorch"  # the official LARS: momentum before the lr
  presets.pil_blur(config)  # PIL GaussianBlur(radius=sigma) in the source

  config.recipe.source = 'Chen, Xie, He 2021 (arXiv:2104.02057); facebookresearch/moco-v3 CONFIG.md (ResNet-50, 100 epochs), main_moco.py, moco/builder.py'
  config.recipe.source_values = (
      ('batch_size', 4096, 'CONFIG.md: batch 4096'),
      ('epochs', 100.0, 'CONFIG.md: 100-epoch'),
      ('warmup_epochs', 10.0, 'main_moco.py --warmup-epochs 10'),
      ('lr_peak', 9.6, 'CONFIG.md: --lr .6 x 4096/256'),
      ('optimizer', 'lars (pytorch)', 'main_moco.py --optimizer lars'),
      ('optimizer.weight_decay', 1e-06, 'main_moco.py --wd 1e-6'),
      ('method.projector_hidden', (4096,), 'builder.py MoCo_ResNet _build_mlp(2, ...)'),
      ('method.temperature', 1.0, 'main_moco.py --moco-t 1.0'),
      ('method.views_forward', 'per_view', 'builder.py: x1 and x2 through the networks apart'),
  )
  aug = "main_moco.py augmentation1/augmentation2"
  config.recipe.source_values += (
      ('views.view1.crop_scale', (0.2, 1.0), f'{aug}: RandomResizedCrop(224, scale=(0.2, 1.))'),
      ('views.view1.saturation', 0.2, f'{aug}: ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8'),
      ('views.view1.blur_p', 1.0, 'main_moco.py augmentation1: GaussianBlur p 1.0'),
      ('views.view2.blur_p', 0.1, 'main_moco.py augmentation2: GaussianBlur p 0.1'),
      ('views.view2.solarize_p', 0.2, 'main_moco.py augmentation2: Solarize p 0.2'),
      presets.imagenet_crop_interpolation(config, "moco_v3"),
  )
  config.recipe.departures = (
      ('-',
       "the projector's last BatchNorm keeps a learned scale; the official one has no affine parameters"),
  )
  return config
