"""MAE on ImageNet (ILSVRC-2012) with a ViT-B/16: the paper's pretraining recipe.

  python -m sslax.main --config=configs/mae_imagenet.py --workdir=gs://BUCKET/mae_vitb \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

He et al. 2022, appendix A.1 (table 8) and the official code (facebookresearch/mae):
ViT-B/16 with fixed 2-D sin-cos position embeddings and a CLS token, mask ratio 0.75,
decoder 512 wide, 8 blocks, 16 heads, normalized pixel targets, AdamW (beta1 0.9, beta2
0.95, weight decay 0.05; biases, norms, tokens undecayed) at 1.5e-4 x batch/256, batch
4096, cosine schedule with 40 warmup epochs, 800 epochs, random resized crop (0.2, 1) and
horizontal flip only. Evaluation: the frozen CLS features (linear probe, kNN) and
fine-tuning with MAE's ViT-B recipe (facebookresearch/mae FINETUNE.md; see
sslax.evaluate.finetune.mae_vit_b_recipe): batch 1024, blr 5e-4, layer decay 0.65, 100
epochs (5 warm-up), drop path 0.1, Mixup 0.8, CutMix 1.0, RandAugment(9, 0.5), label
smoothing 0.1, global average pooling.
"""

import ml_collections

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.evaluate.finetune import mae_vit_b_recipe
from sslax.methods.mae import defaults as mae_defaults
from sslax.models import encoder_config


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(mae_defaults(), batch_size=4096, epochs=800)
  config.model = encoder_config("vit_base", patch_size=16)
  config.views = ml_collections.ConfigDict({"view1": crop_flip_view_config((0.2, 1.0))})

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 1.5e-4    # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.95
  config.optimizer.weight_decay = 0.05
  config.optimizer.warmup_steps = 40 * steps_per_epoch

  # Fine-tuning at MAE's batch 1024: its own steps per epoch.
  finetune_steps_per_epoch = presets.IMAGENET_TRAIN_EXAMPLES // 1024
  config.finetune.update(mae_vit_b_recipe(finetune_steps_per_epoch))
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "mae").
  config.linear_eval.recipe = "mae"
  config.recipe.source = 'He et al. 2022 (arXiv:2111.06377) appendix A.1 Table 8; facebookresearch/mae main_pretrain.py'
  config.recipe.source_values = (
      ('batch_size', 4096, 'Table 8: batch 4096'),
      ('epochs', 800.0, 'Table 8 ablations: 800 epochs'),
      ('warmup_epochs', 40.0, 'Table 8: 40 warm-up epochs'),
      ('lr_peak', 0.0024, 'Table 8: blr 1.5e-4 x 4096/256'),
      ('optimizer', 'adamw', 'Table 8: AdamW'),
      ('optimizer.weight_decay', 0.05, 'Table 8'),
      ('optimizer.b2', 0.95, 'Table 8: beta2 0.95'),
      ('method.mask_ratio', 0.75, 'section 4'),
  )
  config.recipe.source_values += (presets.imagenet_crop_interpolation(config, "mae"),)
  config.recipe.departures = ()
  return config
