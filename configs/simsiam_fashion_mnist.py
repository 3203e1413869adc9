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

from sslax import presets
from sslax.methods.simsiam import defaults as simsiam_defaults


def get_config():
  method = simsiam_defaults()
  # The README's Fashion-MNIST numbers were measured with both views in one call (shared
  # BatchNorm statistics); the source forwards each view apart (the method's default).
  method.views_forward = "concatenated"
  method.projector_hidden = (512, 512)
  method.projector_dim = 512
  method.predictor_hidden = (128,)
  config = presets.fashion_mnist_cpu(method)

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.05      # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 100
  return config
