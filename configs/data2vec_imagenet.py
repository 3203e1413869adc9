"""data2vec on ImageNet (ILSVRC-2012) with a ViT-B/16: the paper's pretraining recipe.

  python -m sslax.main --config=configs/data2vec_imagenet.py --workdir=gs://BUCKET/d2v_vitb \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Baevski et al. 2022, section 4.1 (ViT-B): 60% of the patches masked, targets the average of
the top K = 6 of 12 blocks' FFN outputs, each normalized without parameters (instance
normalization over the patches, see sslax/methods/data2vec.py), EMA
teacher tau 0.9998 -> 0.99999, AdamW at 2e-3 (batch 2048, beta2 0.999, weight decay 0.05),
cosine schedule with 40 warmup epochs, 800 epochs, crop and flip.

Departures (sslax/methods/data2vec.py): random instead of block-wise masking; the EMA rate
follows a cosine instead of a linear schedule.
"""

import ml_collections

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.data2vec import defaults as data2vec_defaults
from sslax.models import encoder_config


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(
      data2vec_defaults(), batch_size=2048, epochs=800)
  config.model = encoder_config("vit_base", patch_size=16)
  config.views = ml_collections.ConfigDict({"view1": crop_flip_view_config((0.08, 1.0))})

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 2e-3 * 256 / 2048   # the paper's 2e-3 at batch 2048
  config.optimizer.lr_scaling = "linear"
  config.optimizer.b2 = 0.999
  config.optimizer.weight_decay = 0.05
  config.optimizer.warmup_steps = 40 * steps_per_epoch

  config.recipe.source = 'Baevski et al. 2022 (arXiv:2202.03555) section 4.1 (ViT-B)'
  config.recipe.source_values = (
      ('batch_size', 2048, 'section 4.1'),
      ('epochs', 800.0, 'section 4.1'),
      ('warmup_epochs', 40.0, 'section 4.1'),
      ('lr_peak', 0.002, 'section 4.1: lr 2e-3'),
      ('optimizer', 'adamw', 'section 4.1: Adam'),
      ('optimizer.weight_decay', 0.05, 'section 4.1'),
  )
  config.recipe.departures = (
      ('-',
       'random instead of block-wise masking; the EMA rate follows a cosine instead of a linear schedule'),
  )
  return config
