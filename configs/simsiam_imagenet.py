"""SimSiam on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's 100-epoch recipe.

  python -m sslax.main --config=configs/simsiam_imagenet.py --workdir=gs://BUCKET/simsiam_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Chen & He 2021 ("Baseline settings") and the official code
(facebookresearch/simsiam main_simsiam.py, whose defaults are these): batch 512, SGD
with lr 0.05 x batch/256, momentum 0.9, weight decay 1e-4, cosine decay, no warmup,
100 epochs; projector 3 layers 2048 wide, predictor 2048 -> 512 -> 2048; views: random
resized crop (0.2, 1), colour jitter (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale p 0.2,
Gaussian blur sigma (0.1, 2) with p 0.5, horizontal flip (main_simsiam.py, "SimSiam v2's
aug"). Departures: the official command's `--fix-pred-lr` (the predictor kept at the
base lr) is not available, the predictor follows the cosine schedule with everything
else; biases and BatchNorm parameters take no weight decay (the trainer's mask; the
official SGD decays every parameter).
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.simsiam import defaults as simsiam_defaults


def get_config():
  config, _ = presets.imagenet_resnet50(
      simsiam_defaults(), batch_size=512, epochs=100, checkpoint_every_epochs=2)
  config.method.projector_hidden = (2048, 2048)
  config.method.projector_dim = 2048
  config.method.predictor_hidden = (512,)

  view = default_view_config(crop_scale=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                             hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.5, solarize_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.05      # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 0
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "simsiam").
  config.linear_eval.recipe = "simsiam"
  config.optimizer.decay_all_parameters = True
  config.optimizer.fixed_lr_parts = ("predictor",)
  presets.pil_blur(config)  # PIL GaussianBlur(radius=sigma) in the source

  config.recipe.source = 'Chen & He 2021 (arXiv:2011.10566) Baseline settings; facebookresearch/simsiam main_simsiam.py'
  config.recipe.source_values = (
      ('batch_size', 512, 'main_simsiam.py -b 512'),
      ('epochs', 100.0, 'paper Table 4: 100 epochs'),
      ('warmup_epochs', 0.0, 'main_simsiam.py: no warm-up'),
      ('lr_peak', 0.1, '--lr 0.05 x 512/256'),
      ('optimizer', 'sgd', 'main_simsiam.py SGD'),
      ('optimizer.weight_decay', 0.0001, '--wd 1e-4'),
      ('optimizer.decay_all_parameters', True, 'main_simsiam.py: every parameter decayed'),
      ('optimizer.fixed_lr_parts', ('predictor',), 'README command --fix-pred-lr'),
      ('method.views_forward', 'per_view', 'builder.py: x1 and x2 through the network apart'),
  )
  aug = "main_simsiam.py augmentation"
  config.recipe.source_values += (
      ('method.projector_dim', 2048, 'main_simsiam.py --dim 2048'),
      ('method.predictor_hidden', (512,), 'main_simsiam.py --pred-dim 512'),
      ('optimizer.momentum', 0.9, 'main_simsiam.py --momentum 0.9'),
      ('views.view1.crop_scale', (0.2, 1.0), f'{aug}: RandomResizedCrop(224, scale=(0.2, 1.))'),
      ('views.view1.brightness', 0.4, f'{aug}: ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8'),
      ('views.view1.saturation', 0.4, f'{aug}: ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8'),
      ('views.view1.gray_p', 0.2, f'{aug}: RandomGrayscale(p=0.2)'),
      ('views.view1.blur_p', 0.5, f'{aug}: RandomApply([GaussianBlur([.1, 2.])], p=0.5)'),
      presets.imagenet_crop_interpolation(config, "simsiam"),
  )
  config.recipe.departures = (
      ('-',
       "the projector's last BatchNorm keeps a learned scale; the official one has no affine parameters"),
  )
  return config
