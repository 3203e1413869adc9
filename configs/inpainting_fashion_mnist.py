"""Inpainting (context encoder) on Fashion-MNIST: the encoder, data and batch of the other
CPU configs (`presets.fashion_mnist_cpu`), a convolutional decoder from the ConvNet's
pooled 256-d features, evaluated by the same frozen linear probe and kNN on whole 28 px
images.

  python -m sslax.main --config=configs/inpainting_fashion_mnist.py --workdir=runs/inpainting_fmnist

From the paper (Pathak et al. 2016): the central block of half the image's side (14 px of
28, as 64 of 128) filled with the dataset mean, the L2 loss on that block.

Choices and departures (not swept on this dataset):
* No adversarial loss and no overlap margin (`--config.method.overlap=2` adds the official
  code's margin, weighted `overlap_weight` 10); `--config.method.block=random` draws one
  block position per example.
* One mild view: crop scale (0.5, 1) and flip, no colour jitter. The crop moves the garment
  under the fixed central block, so the hidden part varies.
* Decoder: 7x7x128 from the features, 2 conv-BN-ReLU + upsampling stages (64, 32 channels)
  to 28x28x1 (sslax/models/decoder.py).
* AdamW lr 1e-3, weight decay 1e-4, 100 warmup steps, cosine decay, as the SimCLR CPU
  config (the paper: Adam at 2e-4 with beta1 0.5, DCGAN's).
* total_steps 3000 (13 epochs) fits pretraining in about 8 minutes on this project's 2-core
  CPU: a step (batch 256) costs about 0.28 s of CPU time, SimCLR's CPU config 0.31 s, whose
  step takes 0.16 s on the idle machine (benchmarks/throughput.py; measured while the machine
  was shared, so by CPU time rather than wall time).
"""

import ml_collections

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.inpainting import defaults as inpainting_defaults


def get_config():
  method = inpainting_defaults()
  method.decoder_width = 128
  config = presets.fashion_mnist_cpu(method)
  config.total_steps = 3000
  config.views = ml_collections.ConfigDict({"view1": crop_flip_view_config((0.5, 1.0))})

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 1e-3
  config.optimizer.warmup_steps = 100
  config.optimizer.weight_decay = 1e-4
  return config
