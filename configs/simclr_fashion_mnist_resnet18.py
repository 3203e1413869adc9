"""SimCLR on Fashion-MNIST with torchvision's ResNet-18 (the ImageNet stem: 7x7/2 conv and
3x3/2 max-pool, 28 px -> 7 px before the first stage), so that the encoder can be exported
for PyTorch (README "Weights to PyTorch"):

  python -m sslax.main --config=configs/simclr_fashion_mnist_resnet18.py --workdir=runs/simclr_r18
  python -m sslax.export --config=configs/simclr_fashion_mnist_resnet18.py \
      --workdir=runs/simclr_r18 --out=runs/simclr_r18_torch --format=torchvision

Everything but the encoder is configs/simclr_fashion_mnist.py's.
"""

import importlib.util
import os

from sslax.models import encoder_config


def get_config():
  spec = importlib.util.spec_from_file_location(
      "simclr_fashion_mnist", os.path.join(os.path.dirname(__file__), "simclr_fashion_mnist.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.model = encoder_config("resnet18", stem="imagenet")
  return config
