"""Colorization on ImageNet (ILSVRC-2012) with a ResNet-50 and a convolutional decoder from
its pooled 2048-d features to the ab channels at 224 px.

  python -m sslax.main --config=configs/colorization_imagenet.py --workdir=gs://BUCKET/colorization_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

From the paper (Zhang, Isola & Efros 2016): Adam with beta1 0.9, beta2 0.99, weight decay
1e-3, lr 3e-5 at batch 40 for 450k iterations (about 14 epochs). The loss here is the L2
regression of ab / 110 (the paper's own L2 baseline; its main loss classifies 313 ab bins),
see sslax/methods/colorization.py.

Choices and departures (not run at this scale):
* ResNet-50 instead of the paper's VGG-style fully convolutional network, and a decoder from
  the pooled features: 7x7x256 from a Dense layer of 2048 x 12544 (26 M parameters), then 5
  upsamplings to 224x224x2 (sslax/models/decoder.py).
* Batch 256 with AdamW (decoupled decay 1e-3), lr 2e-4 (the paper's 3e-5 x 256 / 40), 1
  warmup epoch and cosine decay instead of its two lr drops, 15 epochs.
* One view, random resized crop (0.2, 1) and flip, no colour jitter and no grayscale (the
  target is the view's own colour).
"""

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.colorization import defaults as colorization_defaults


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(
      colorization_defaults(), batch_size=256, epochs=15, checkpoint_every_epochs=1)
  config.views.view1 = crop_flip_view_config((0.2, 1.0))

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 2e-4
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.99
  config.optimizer.weight_decay = 1e-3
  config.optimizer.warmup_steps = steps_per_epoch

  config.recipe.source = 'Zhang, Isola & Efros 2016 (arXiv:1603.08511)'
  config.recipe.source_values = (
      ('optimizer.b2', 0.99, 'paper'),
  )
  config.recipe.departures = (
      ('-',
       'AdamW (decoupled decay) for Adam with an L2 term'),
      ('-',
       "ResNet-50 and a decoder from pooled features instead of the paper's fully convolutional VGG-style network; the L2 ab loss (the paper's baseline), not its 313-bin classification; batch 256, lr 2e-4, cosine, 15 epochs instead of 450k iterations at batch 40"),
  )
  return config
