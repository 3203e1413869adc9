"""Barlow Twins on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's recipe.

  python -m sslax.main --config=configs/barlow_twins_imagenet.py --workdir=gs://BUCKET/barlow_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Zbontar et al. 2021 ("Implementation details") and the official code
(facebookresearch/barlowtwins main.py): LARS (eta 0.001, momentum 0.9, biases and
BatchNorm parameters excluded from weight decay and from the trust ratio), batch 2048,
1000 epochs, 10 warmup epochs then cosine decay, learning rate 0.2 x batch/256 for the
weights, weight decay 1.5e-6 (the paper; main.py's default is 1e-6), projector 3 layers
8192 wide, lambda 0.0051, the BYOL augmentations (main.py `Transform`: crop (0.08, 1),
flip, colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, blur p 1.0 / 0.1,
solarization p 0 / 0.2 on the two views).
Departures: one learning rate for every parameter (the paper gives biases and BatchNorm
parameters their own, 0.0048 x batch/256); the cosine decays to 0 instead of to
1/1000 of the peak.
"""

from sslax import presets
from sslax.data.augment import byol_view_configs
from sslax.methods.barlow_twins import defaults as barlow_twins_defaults


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(
      barlow_twins_defaults(), batch_size=2048, epochs=1000)
  config.method.lambd = 0.0051
  config.method.projector_hidden = (8192, 8192)
  config.method.projector_dim = 8192

  config.views.view1, config.views.view2 = byol_view_configs()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.2       # x batch/256; the weights' lr (biases: see docstring)
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.weight_decay = 1.5e-6
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "barlow_twins").
  config.linear_eval.recipe = "barlow_twins"
  config.optimizer.lars_variant = "pytorch"  # the official LARS: momentum before the lr
  presets.pil_blur(config)  # PIL GaussianBlur(radius=sigma) in the source

  config.recipe.source = 'Zbontar et al. 2021 (arXiv:2103.03230) "Implementation details"; facebookresearch/barlowtwins main.py'
  config.recipe.source_values = (
      ('batch_size', 2048, 'paper: batch 2048'),
      ('epochs', 1000.0, 'paper: 1000 epochs'),
      ('warmup_epochs', 10.0, 'paper: 10 warm-up epochs'),
      ('lr_peak', 1.6, 'paper: 0.2 x 2048/256'),
      ('optimizer', 'lars (pytorch)', 'main.py LARS'),
      ('optimizer.weight_decay', 1.5e-06, 'paper: 1.5e-6'),
      ('optimizer.trust_coefficient', 0.001, 'main.py eta 0.001'),
      ('method.views_forward', 'per_view', 'main.py: y1 and y2 through the backbone apart'),
  )
  config.recipe.source_values += (
      ('method.lambd', 0.0051, 'main.py --lambd 0.0051'),
      ('method.projector_hidden', (8192, 8192), 'main.py --projector 8192-8192-8192'),
      ('method.projector_dim', 8192, 'main.py --projector 8192-8192-8192'),
      ('model.zero_init_last_bn', True, 'main.py resnet50(zero_init_residual=True)'),
      ('views.view1.saturation', 0.2, 'main.py Transform: ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8'),
      ('views.view1.blur_p', 1.0, 'main.py Transform: GaussianBlur(p=1.0)'),
      ('views.view1.solarize_p', 0.0, 'main.py Transform: Solarization(p=0.0)'),
      ('views.view2.blur_p', 0.1, 'main.py Transform: GaussianBlur(p=0.1)'),
      ('views.view2.solarize_p', 0.2, 'main.py Transform: Solarization(p=0.2)'),
      ('views.view1.blur_kernel', 'sigma', 'main.py GaussianBlur: PIL ImageFilter.GaussianBlur(sigma)'),
      presets.imagenet_crop_interpolation(config, "barlow_twins"),
  )
  config.recipe.departures = (
      ('-',
       'one learning rate for every parameter (the paper gives biases and BatchNorm parameters 0.0048 x batch/256); the cosine decays to 0 instead of 1/1000 of the peak'),
      ('-',
       "the projector's output is a plain Dense; the official code normalizes it with an affine-free BatchNorm (the loss's standardization stands in)"),
  )
  return config
