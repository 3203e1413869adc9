"""VICReg on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's recipe.

  python -m sslax.main --config=configs/vicreg_imagenet.py --workdir=gs://BUCKET/vicreg_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Bardes, Ponce, LeCun 2022 (implementation details) and the official code
(facebookresearch/vicreg: main_vicreg.py defaults and the README's 1000-epoch command
`--epochs 1000 --batch-size 2048 --base-lr 0.2`): LARS (eta 0.001, momentum 0.9,
biases and BatchNorm parameters excluded from weight decay and from the trust ratio),
batch 2048, base lr 0.2 x batch/256, weight decay 1e-6, 1000 epochs, 10 warmup epochs
then cosine decay, expander 3 layers 8192 wide, coefficients 25 / 25 / 1, the BYOL
augmentations (augmentations.py `TrainTransform`: crop (0.08, 1), flip, colour jitter
(0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, blur p 1.0 / 0.1, solarization p 0 / 0.2).
Departure: the cosine decays to 0 instead of to 1/1000 of the peak.
"""

from sslax import presets
from sslax.data.augment import byol_view_configs
from sslax.methods.vicreg import defaults as vicreg_defaults


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(
      vicreg_defaults(), batch_size=2048, epochs=1000)
  config.method.sim_coeff = 25.0
  config.method.std_coeff = 25.0
  config.method.cov_coeff = 1.0
  config.method.projector_hidden = (8192, 8192)
  config.method.projector_dim = 8192

  config.views.view1, config.views.view2 = byol_view_configs()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.2       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.weight_decay = 1e-6
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "vicreg").
  config.linear_eval.recipe = "vicreg"
  config.optimizer.lars_variant = "pytorch"  # the official LARS: momentum before the lr
  presets.pil_blur(config)  # PIL GaussianBlur(radius=sigma) in the source

  config.recipe.source = 'Bardes, Ponce, LeCun 2022 (arXiv:2105.04906); facebookresearch/vicreg main_vicreg.py and README'
  config.recipe.source_values = (
      ('batch_size', 2048, 'README: --batch-size 2048'),
      ('epochs', 1000.0, 'README: --epochs 1000'),
      ('warmup_epochs', 10.0, 'main_vicreg.py adjust_learning_rate: 10 warm-up epochs'),
      ('lr_peak', 1.6, 'README: --base-lr 0.2 x 2048/256'),
      ('optimizer', 'lars (pytorch)', 'main_vicreg.py LARS'),
      ('optimizer.weight_decay', 1e-06, 'main_vicreg.py --wd 1e-6'),
      ('method.halve_variance', True, "main_vicreg.py: std_loss halves each view's term"),
      ('method.views_forward', 'per_view', 'main_vicreg.py: x and y through the backbone apart'),
  )
  config.recipe.source_values += (
      ('method.sim_coeff', 25.0, 'main_vicreg.py --sim-coeff 25.0'),
      ('method.std_coeff', 25.0, 'main_vicreg.py --std-coeff 25.0'),
      ('method.cov_coeff', 1.0, 'main_vicreg.py --cov-coeff 1.0'),
      ('method.projector_hidden', (8192, 8192), 'main_vicreg.py --mlp 8192-8192-8192'),
      ('method.projector_dim', 8192, 'main_vicreg.py --mlp 8192-8192-8192'),
      ('model.zero_init_last_bn', True, 'main_vicreg.py resnet50(zero_init_residual=True)'),
      presets.imagenet_crop_interpolation(config, "vicreg"),
  )
  config.recipe.departures = (
      ('-',
       'the cosine decays to 0 instead of to 1/1000 of the peak'),
  )
  return config
