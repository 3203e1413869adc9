"""BYOL on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's recipe.

  python -m sslax.main --config=configs/byol_imagenet.py --workdir=gs://BUCKET/byol_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Grill et al. 2020, section 3.3 and appendix B/C, and the official JAX code
(deepmind-research/byol, configs/byol.py): batch 4096, LARS (eta 0.001, momentum 0.9,
biases and BatchNorm parameters excluded from weight decay and the trust ratio),
learning rate 0.2 x batch/256, weight decay 1.5e-6, 10 warmup epochs then cosine decay,
1000 epochs, tau_base 0.996 cosine-increased to 1, projector and predictor
Dense(4096)-BN-ReLU-Dense(256), the asymmetric BYOL views (table 6: blur p 1.0 / 0.1,
solarization p 0 / 0.2, colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2).
"""

from sslax import presets
from sslax.data.augment import byol_view_configs
from sslax.methods.byol import defaults as byol_defaults


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(
      byol_defaults(), batch_size=4096, epochs=1000)
  config.method.projector_hidden = (4096,)
  config.method.projector_dim = 256
  config.method.predictor_hidden = (4096,)
  config.method.base_momentum = 0.996
  config.views.view1, config.views.view2 = byol_view_configs()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.2       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.weight_decay = 1.5e-6
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "byol").
  config.linear_eval.recipe = "byol"
  return config
