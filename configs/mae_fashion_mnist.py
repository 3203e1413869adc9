"""MAE on Fashion-MNIST with a small ViT: the CPU counterpart of the paper's ViT-B recipe
(configs/mae_imagenet.py), same data, steps and batch as the other CPU configs
(`presets.fashion_mnist_cpu`).

  python -m sslax.main --config=configs/mae_fashion_mnist.py --workdir=runs/mae_fmnist

From the paper (He et al. 2022, appendix A.1): mask ratio 0.75, normalized pixel targets,
AdamW (beta2 0.95, weight decay 0.05) at 1.5e-4 x batch/256, cosine schedule with warmup,
random resized crop and flip only, fixed 2-D sin-cos position embeddings.

Choices and departures, for 28x28 grayscale on a 2-core CPU:
* ViT (`presets.fashion_mnist_vit`): 4x4 patches (49 tokens), 128 wide, 4 blocks, 4
  heads; decoder 64 wide, 2 blocks, 4 heads (the paper's is 512 wide, 8 deep);
* crop scale (0.5, 1) as the other CPU configs (the paper's (0.2, 1) is for 224 px);
* lr 1e-3 x batch/256 (the paper's 1.5e-4 is for 800 epochs at batch 4096; this run is
  a few epochs) with a 200-step warmup.
Not swept on this dataset.
"""

import ml_collections

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.mae import defaults as mae_defaults


def get_config():
  method = mae_defaults()
  method.decoder_dim = 64
  method.decoder_depth = 2
  method.decoder_heads = 4
  config = presets.fashion_mnist_cpu(method)
  config.model = presets.fashion_mnist_vit()
  config.views = ml_collections.ConfigDict({"view1": crop_flip_view_config((0.5, 1.0))})

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 1e-3
  config.optimizer.b2 = 0.95
  config.optimizer.weight_decay = 0.05
  config.optimizer.warmup_steps = 200
  return config
