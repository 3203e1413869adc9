"""Relative patch position (context prediction) on Fashion-MNIST: the encoder, data,
steps and batch of the other CPU configs (`presets.fashion_mnist_cpu`), evaluated by
the same frozen linear probe and kNN on full 28 px images.

  python -m sslax.main --config=configs/relative_patch_fashion_mnist.py --workdir=runs/relative_patch_fmnist

From the paper (Doersch et al. 2015): 96 px patches, a 48 px gap between neighbours,
up to 7 px of jitter per patch, chromatic-aberration guards (color dropping or
projection), one pair (centre, one of 8 neighbours) per sample, an AlexNet-style
network up to fc6 per patch, fc7 and fc8 over the pair (late fusion); SGD.

Choices and departures, for 28x28 grayscale on a 2-core CPU:
* The view is the shared CPU view (crop scale (0.5, 1), flip, brightness / contrast
  jitter p 0.8) output at 32 px; patches of 8 px with a 2 px gap and up to 1 px of
  jitter (the grid spans 28 px, so its corner also takes 3 positions per axis). The
  paper's gap is half a patch; at 8 px patches that would leave no room in the image,
  so the gap is a quarter of a patch (0 to 4 px with the jitter) and the jitter an
  eighth (paper: 7 / 96).
* chroma_guard "drop" is kept as the default but is a no-op: one channel has no
  chromatic aberration. Patches are not standardized (normalize_patches False).
* Classifier: the two pooled 256-d features concatenated -> 512 (BN, ReLU) -> 8,
  instead of fc6 per patch -> fc7 4096 -> fc8.
* SGD with Nesterov momentum 0.9, lr 0.1 x batch/256, weight decay 5e-4, 100-step warmup
  and cosine decay: the supervised baseline's optimizer (the task is an 8-way
  classification), with BatchNorm in the network.
* One pair per image per step, as the paper: the cheapest step of all methods (2
  patches of 8 px per image).
Not swept on this dataset.
"""

import ml_collections

from sslax import presets
from sslax.methods.relative_patch import defaults as relative_patch_defaults


def get_config():
  method = relative_patch_defaults()
  method.patch_size = 8
  method.patch_gap = 2
  method.patch_jitter = 1
  method.classifier_hidden = (512,)
  config = presets.fashion_mnist_cpu(method)
  view = config.views.view1
  view.size = 32
  config.views = ml_collections.ConfigDict({"view1": view})

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.1       # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.optimizer.warmup_steps = 100
  return config
