"""SimSiam on Fashion-MNIST with a small ConvNet: the CPU counterpart of
configs/simclr_fashion_mnist.py (same data, encoder, views, steps and batch).

  python -m sslax.main --config=configs/simsiam_fashion_mnist.py --workdir=runs/simsiam_fmnist

Departures from the paper (Chen & He 2021), for a 2-core CPU and 28x28 grayscale:
* heads 4x narrower: projector 512-512-512 (paper 2048-2048-2048) and predictor
  bottleneck 512-128-512 (paper 2048-512-2048, the same 4:1 ratio);
* the views of the SimCLR CPU config (see there), not the ImageNet augmentations;
* the optimizer is the paper's ("Baseline settings": SGD, lr 0.05 x batch/256, weight decay
  1e-4, momentum 0.9, cosine decay), since SimSiam was tuned with it, except that
  the paper keeps the predictor at a fixed (undecayed) learning rate; here the
  predictor follows the same cosine schedule as everything else (the trainer has one
  schedule). A 100-step warmup is added (the paper uses none at batch 512).
Not swept on this dataset.
"""

from sslax import config as config_lib
from sslax.data.augment import default_view_config
from sslax.methods.simsiam import defaults as simsiam_defaults
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

  config.method = simsiam_defaults()
  config.method.projector_hidden = (512, 512)
  config.method.projector_dim = 512
  config.method.predictor_hidden = (128,)

  view = default_view_config(
      crop_scale=(0.5, 1.0), blur_p=0.0, jitter_p=0.8, brightness=0.4, contrast=0.4,
      saturation=0.0, hue=0.0, gray_p=0.0, solarize_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.05      # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 100
  return config
