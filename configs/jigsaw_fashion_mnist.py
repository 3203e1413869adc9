"""Jigsaw puzzles (context-free network) on Fashion-MNIST: the encoder, data, steps and
batch of the other CPU configs (`presets.fashion_mnist_cpu`), evaluated by the same
frozen linear probe and kNN on full 28 px images.

  python -m sslax.main --config=configs/jigsaw_fashion_mnist.py --workdir=runs/jigsaw_fmnist

From the paper (Noroozi & Favaro 2016): a 225 px crop cut into 3x3 cells of 75 px, a
64 px tile at a random offset in each cell (gaps and jitter), each tile normalized on
its own, colour channels jittered by up to 2 px, 1000 permutations of maximal Hamming
distance (100 in its set-size study), an AlexNet per tile up to fc6 (512), fc7 4096
over the 9 concatenated tiles, fc8 over the permutations; SGD, lr 0.01, batch 256.

Choices and departures, for 28x28 grayscale on a 2-core CPU:
* The view is a random resized crop (scale (0.5, 1)) with flip, output at 30 px, so
  its 3x3 cells are 10 px and the tiles 8 px (tile / cell 0.8, the paper's 0.85): gaps
  of 0 to 4 px between tiles. The ConvNet maps an 8 px tile to 4, 2 and 1 px in its
  three stages (the last two take the patch-matmul path of sslax/models/convnet.py).
* No brightness / contrast jitter on the view: each tile is standardized on its own
  (as the paper), which undoes a per-view affine intensity change (up to clipping).
  Channel jitter and grayscale do nothing on one channel.
* 100 permutations (the issue's default; the paper's main results use 1000), chosen by
  the greedy maximin rule of sslax/methods/jigsaw.py: minimum pairwise Hamming distance 6.
* Classifier: the 9 pooled 256-d tile features concatenated (2304) -> 512 (BN, ReLU) ->
  100, instead of fc6 512 per tile -> fc7 4096 -> fc8.
* SGD with Nesterov momentum 0.9, lr 0.1 x batch/256, weight decay 5e-4, 100-step warmup
  and cosine decay: the supervised baseline's optimizer (the task is a 100-way
  classification); the paper's lr 0.01 was for an AlexNet without BatchNorm.
Not swept on this dataset.
"""

import ml_collections

from sslax import presets
from sslax.methods.jigsaw import defaults as jigsaw_defaults


def get_config():
  method = jigsaw_defaults()
  method.num_permutations = 100
  method.tile_size = 8
  method.classifier_hidden = (512,)
  config = presets.fashion_mnist_cpu(method)
  view = config.views.view1
  view.size = 30
  view.jitter_p = 0.0
  config.views = ml_collections.ConfigDict({"view1": view})

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.1       # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.optimizer.warmup_steps = 100
  return config
