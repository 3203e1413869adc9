"""VICReg on Fashion-MNIST with a small ConvNet: the CPU counterpart of
configs/simclr_fashion_mnist.py (same data, encoder, views, steps and batch).

  python -m sslax.main --config=configs/vicreg_fashion_mnist.py --workdir=runs/vicreg_fmnist

Departures from the paper (Bardes et al. 2022), for a 2-core CPU and 28x28 grayscale:
* expander 1024-1024-1024 instead of 8192-8192-8192 (the paper reports
  accuracy falling with narrower expanders, so expect some loss from this); the
  loss coefficients stay at the paper's 25 / 25 / 1;
* the views of the SimCLR CPU config (see there), not the ImageNet augmentations;
* the optimizer is the paper's LARS (implementation details and the official code: base lr 0.2
  x batch/256, weight decay 1e-6, biases and BN parameters excluded from decay and
  from the trust ratio), with a 100-step warmup instead of 10 epochs.
Not swept on this dataset.
"""

from sslax import config as config_lib
from sslax.data.augment import default_view_config
from sslax.methods.vicreg import defaults as vicreg_defaults
from sslax.models import encoder_config


def get_config():
  config = config_lib.base_config()
  config.seed = 0
  config.batch_size = 256
  config.total_steps = 4000
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500

  config.data.name = "fashion_mnist"
  config.data.image_size = 28

  config.model = encoder_config("convnet", widths=(64, 128, 256))

  config.method = vicreg_defaults()
  config.method.projector_hidden = (1024, 1024)
  config.method.projector_dim = 1024

  view = default_view_config(
      crop_scale=(0.5, 1.0), blur_p=0.0, jitter_p=0.8, brightness=0.4, contrast=0.4,
      saturation=0.0, hue=0.0, gray_p=0.0, solarize_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.2       # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.weight_decay = 1e-6
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.warmup_steps = 100
  return config
