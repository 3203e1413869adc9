"""Denoising autoencoder on Fashion-MNIST: the encoder, data and batch of the other CPU
configs (`presets.fashion_mnist_cpu`), a convolutional decoder from the ConvNet's pooled
256-d features, evaluated by the same frozen linear probe and kNN on clean 28 px images.

  python -m sslax.main --config=configs/denoising_ae_fashion_mnist.py --workdir=runs/dae_fmnist

From the papers (Vincent et al. 2008, 2010): masking noise, a fixed 25% of the pixels set
to 0 (black, the Fashion-MNIST background); the squared error over the whole image (the
emphasized variant, `--config.method.loss_on=corrupted`, counts only those pixels).

Choices and departures (not swept on this dataset):
* One mild view: crop scale (0.5, 1) and flip, no colour jitter (the reconstruction target
  is the view itself, so augmentation only varies the data; the papers use none).
* Decoder: 7x7x128 from the features, 2 conv-BN-ReLU + upsampling stages (64, 32 channels)
  to 28x28x1, about the encoder's multiply-adds (sslax/models/decoder.py).
* AdamW lr 1e-3, weight decay 1e-4, 100 warmup steps, cosine decay, as the SimCLR CPU
  config (the papers train MLPs with plain SGD).
* total_steps 3000 (13 epochs) fits pretraining in about 8 minutes on this project's 2-core
  CPU: a step (batch 256) costs about 0.28 s of CPU time, SimCLR's CPU config 0.31 s, whose
  step takes 0.16 s on the idle machine (benchmarks/throughput.py; measured while the machine
  was shared, so by CPU time rather than wall time).
"""

import ml_collections

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.denoising_ae import defaults as denoising_ae_defaults


def get_config():
  method = denoising_ae_defaults()
  method.decoder_width = 128
  config = presets.fashion_mnist_cpu(method)
  config.total_steps = 3000
  config.views = ml_collections.ConfigDict({"view1": crop_flip_view_config((0.5, 1.0))})

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 1e-3
  config.optimizer.warmup_steps = 100
  config.optimizer.weight_decay = 1e-4
  return config
