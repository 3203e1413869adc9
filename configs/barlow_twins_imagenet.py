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

from sslax import config as config_lib
from sslax.data.augment import byol_view_configs
from sslax.methods.barlow_twins import defaults as barlow_twins_defaults
from sslax.models import encoder_config

TRAIN_EXAMPLES = 1_281_167


def get_config():
  config = config_lib.base_config()
  config.batch_size = 2048
  steps_per_epoch = TRAIN_EXAMPLES // config.batch_size
  config.total_steps = 1000 * steps_per_epoch
  config.log_every_steps = 100
  config.checkpoint_every_steps = 5 * steps_per_epoch

  config.data.name = "imagenet2012"
  config.data.train_split = "train"
  config.data.test_split = "validation"
  config.data.image_size = 224
  config.data.in_memory = False   # random access, decoded and resized on the host

  config.model = encoder_config("resnet50", stem="imagenet")
  config.method = barlow_twins_defaults()
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
  config.eval.batch_size = 1024
  # As configs/simclr_imagenet.py: the probe and kNN fit on the first 100k training images.
  config.eval.max_train_examples = 100_000
  config.eval.raw_pixel_baseline = False
  return config
