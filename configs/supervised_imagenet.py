"""Supervised baseline on ImageNet (ILSVRC-2012) with a ResNet-50: the backbone of the SSL
ImageNet configs (configs/*_imagenet.py) trained with labels.

  python -m sslax.main --config=configs/supervised_imagenet.py --workdir=gs://BUCKET/supervised_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Goyal et al. 2017 ("Accurate, Large Minibatch SGD") and torchvision's ResNet-50 reference
recipe: 90 epochs, SGD momentum 0.9, lr 0.1 x batch/256, weight decay 1e-4, 5 epochs of
linear warmup (Goyal et al. section 2.2), the last BatchNorm of each residual block
initialized to zero (our ResNet's zero_init_last_bn, Goyal et al. section 5.1), random
resized crop (0.08, 1) + horizontal flip only, no label smoothing.
Departures: cosine decay to 0 instead of the step schedule (x0.1 at epochs 30, 60, 80);
biases and BatchNorm parameters take no weight decay (the trainer's mask); batch 1024
(lr 0.4) is this file's choice (the paper's rule covers 256 to 8k).
"""

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.supervised import defaults as supervised_defaults


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(
      supervised_defaults(), batch_size=1024, epochs=90, checkpoint_every_epochs=2)
  config.data.num_classes = 1000


  config.views.view1 = crop_flip_view_config((0.08, 1.0))

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.1       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 5 * steps_per_epoch
  # As every configs/*_imagenet.py (presets.imagenet_resnet50): kNN and the few-label probes
  # on the whole training split, and raw pixels at 224x224x3 are no baseline.

  config.recipe.source = 'Goyal et al. 2017 (arXiv:1706.02677); torchvision references/classification ResNet-50 recipe'
  config.recipe.source_values = (
      ('batch_size', 256, 'torchvision recipe: 32 x 8 GPUs'),
      ('epochs', 90.0, '90 epochs'),
      ('warmup_epochs', 5.0, 'Goyal et al. section 2.2'),
      ('lr_peak', 0.1, '0.1 x 256/256'),
      ('optimizer', 'sgd', 'SGD momentum 0.9'),
      ('optimizer.weight_decay', 0.0001, '1e-4'),
  )
  config.recipe.departures = (
      ('batch_size',
       "batch 1024 (lr 0.4 by the linear rule, Goyal et al. cover 256 to 8k) is this file's choice"),
      ('lr_peak',
       '0.4: the linear rule at batch 1024'),
      ('-',
       'cosine decay to 0 instead of the step schedule; biases and BatchNorm parameters undecayed'),
  )
  return config
