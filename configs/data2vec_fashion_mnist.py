"""data2vec on Fashion-MNIST with MAE's small ViT (`presets.fashion_mnist_vit`), same data,
steps and batch as the other CPU configs.

  python -m sslax.main --config=configs/data2vec_fashion_mnist.py --workdir=runs/data2vec_fmnist

From the paper (Baevski et al. 2022, section 4.1, ViT-B): 60% of the patches masked, targets
the average of the top K = 6 blocks (of 12; here 3 of the 4), AdamW (beta2 0.999 there,
weight decay 0.05), cosine schedule; crop and flip only.

Departures, for a run of a few epochs on a 2-core CPU: the teacher's EMA rate starts at
0.996 and rises to 1 (cosine), as BYOL's, instead of 0.9998 -> 0.99999 (which over 4000
steps would leave the teacher almost at its random initialization); lr 1e-3 x batch/256
with a 200-step warmup. Not swept on this dataset.
"""

import ml_collections

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.data2vec import defaults as data2vec_defaults


def get_config():
  method = data2vec_defaults()
  method.top_k_blocks = 3
  method.base_momentum = 0.996
  method.final_momentum = 1.0
  config = presets.fashion_mnist_cpu(method)
  config.model = presets.fashion_mnist_vit()
  config.views = ml_collections.ConfigDict({"view1": crop_flip_view_config((0.5, 1.0))})

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 1e-3
  config.optimizer.weight_decay = 0.05
  config.optimizer.warmup_steps = 200
  return config
