"""SimCLR on Fashion-MNIST with a small ConvNet: the CPU default, sized to finish
pretraining and evaluation in about 10 minutes on 2 CPU cores.

  python -m sslax.main --config=configs/simclr_fashion_mnist.py --workdir=runs/simclr_fmnist

Departures from the ImageNet recipe (Chen et al. 2020), because images are 28x28
grayscale and the budget is minutes: no colour jitter beyond brightness and
contrast (saturation, hue and grayscale do nothing on one channel), no blur
(it erases most of a 28x28 image, as SimCLR's CIFAR-10 setting also drops it),
a milder crop scale, and a small ConvNet instead of a ResNet-50.
"""

from sslax import config as config_lib
from sslax.data.augment import default_view_config
from sslax.methods.simclr import defaults as simclr_defaults


def get_config():
  config = config_lib.base_config()
  config.seed = 0
  config.batch_size = 256
  config.total_steps = 1000
  config.log_every_steps = 25
  config.checkpoint_every_steps = 250

  config.data.name = "fashion_mnist"
  config.data.image_size = 28

  config.model.name = "convnet"
  config.model.widths = (32, 64, 128)

  config.method = simclr_defaults()
  config.method.temperature = 0.2
  config.method.projector_hidden = (512,)
  config.method.projector_dim = 128

  view = default_view_config(
      crop_scale=(0.2, 1.0), blur_p=0.0, jitter_p=0.8, brightness=0.4, contrast=0.4,
      saturation=0.0, hue=0.0, gray_p=0.0, solarize_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 1.0
  config.optimizer.warmup_steps = 50
  config.optimizer.weight_decay = 1e-6
  return config
