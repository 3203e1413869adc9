"""SwAV on Fashion-MNIST with a small ConvNet: the CPU counterpart of the other
configs/*_fashion_mnist.py (same data, encoder, steps and batch from
`config.fashion_mnist_cpu`), with multi-crop views.

  python -m sslax.main --config=configs/swav_fashion_mnist.py --workdir=runs/swav_fmnist

From the paper / official code (Caron et al. 2020; facebookresearch/swav main_swav.py
and its README's batch-256 command): temperature 0.1, Sinkhorn epsilon 0.05 with 3
iterations, 128-d l2-normalized embeddings, prototypes frozen for 313 iterations,
LARS (trust coefficient 0.001, momentum 0.9, weight decay 1e-6) at learning rate 0.6
for batch 256, a queue of 3840 embeddings per global crop (15 batches of 256) since
the batch is small.

Choices for a 2-core CPU and 28x28 grayscale (not swept):
* 2 global crops at 28 px, scale (0.4, 1) (official for 2 x 224: (0.14, 1)), + 4 local
  crops at 12 px, scale (0.05, 0.4) (official: 6 x 96 at (0.05, 0.14); 12/28 = 96/224);
  the wider scales follow the DINO defaults, since at 28 px a 14% crop is 10 px wide.
* The colour jitter of the shared CPU views (brightness and contrast 0.4, p 0.8; no
  saturation, hue or grayscale on one channel), no blur (3 taps at 28 px).
* Projector hidden 512 (official 2048), 1024 prototypes (official 3000 for ImageNet's
  1000 classes; Fashion-MNIST has 10, and the paper finds the number matters little).
* The queue starts at step 500, about 2 of the 17 epochs (official: epoch 15 of 400+),
  and is used from step 515 on, once full.
* 100 warm-up steps (the README's batch-256 command has none).
"""

import ml_collections

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.swav import defaults as swav_defaults

NUM_LOCAL = 4


def get_config():
  method = swav_defaults()
  method.projector_hidden = (512,)
  method.projector_dim = 128
  method.num_prototypes = 1024
  method.queue_length = 3840
  method.queue_start_step = 500
  config = presets.fashion_mnist_cpu(method)

  jitter = dict(blur_p=0.0, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.0,
                hue=0.0, gray_p=0.0, solarize_p=0.0)
  views = {"global1": default_view_config(crop_scale=(0.4, 1.0), **jitter),
           "global2": default_view_config(crop_scale=(0.4, 1.0), **jitter)}
  for i in range(1, NUM_LOCAL + 1):
    views[f"local{i}"] = default_view_config(crop_scale=(0.05, 0.4), size=12, **jitter)
  config.views = ml_collections.ConfigDict(views)  # replaces the shared view1/view2

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.6       # x batch/256 (lr_scaling "linear")
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.weight_decay = 1e-6
  config.optimizer.warmup_steps = 100
  return config
