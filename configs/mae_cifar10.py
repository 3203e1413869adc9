"""MAE on CIFAR-10 with a ViT-S/4: solo-learn's recipe.

  python -m sslax.main --config=configs/mae_cifar10.py --workdir=runs/mae_cifar10 \
      --config.data.download=True
  python -m sslax.recipe --config=configs/mae_cifar10.py   # the recipe card

vturrisi/solo-learn scripts/pretrain/cifar/mae.yaml with augmentations/reconstruction.yaml
(solo/methods/mae.py): ViT-S (384 wide, 12 blocks, 6 heads) on 4x4 patches of the 32x32
image (64 tokens), decoder 512 wide, 8 blocks, 16 heads, mask ratio 0.75, normalized pixel
targets; AdamW lr 2e-4 x batch/256, betas (0.9, 0.95), weight decay 0.05 on every parameter
(solo-learn's exclude_bias_n_norm_wd default False), batch 256, 10 warm-up epochs from
3e-5 then cosine, 1000 epochs; one view: random resized crop (0.08, 1) and flip.
solo-learn's README lists no CIFAR-10 MAE number. Departures: `config.recipe.departures`.
"""

import ml_collections

from sslax import presets
from sslax.data.augment import crop_flip_view_config
from sslax.methods.mae import defaults as mae_defaults
from sslax.models import encoder_config

YAML = "mae.yaml"
LR, WD = 2e-4, 0.05


def get_config():
  config, _ = presets.solo_learn_cifar10(mae_defaults(), optimizer="adamw", lr=LR, weight_decay=WD)
  config.model = encoder_config("vit_small", patch_size=4)
  config.method.mask_ratio = 0.75
  config.method.decoder_dim = 512
  config.method.decoder_depth = 8
  config.method.decoder_heads = 16
  config.method.norm_pix_loss = True
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.95
  config.views = ml_collections.ConfigDict({"view1": crop_flip_view_config((0.08, 1.0))})

  presets.set_crop_interpolation(config, "bicubic")  # solo/data/pretrain_dataloader.py
  where = f"scripts/pretrain/cifar/{YAML}"
  aug = "scripts/pretrain/cifar/augmentations/reconstruction.yaml"
  shared = [row for row in presets.solo_learn_values(YAML, optimizer="adamw", lr=LR, weight_decay=WD)
            if not row[0].startswith("model.")]  # the ResNet rows
  config.recipe.source = f"{presets.SOLO_LEARN} {where} (+ {aug}, solo/methods/mae.py)"
  config.recipe.source_values = tuple(shared) + (
      ("model.name", "vit_small", f"{where} backbone.name"),
      ("model.patch_size", 4, f"{where} backbone.kwargs.patch_size"),
      ("method.decoder_dim", 512, f"{where} decoder_embed_dim"),
      ("method.decoder_depth", 8, f"{where} decoder_depth"),
      ("method.decoder_heads", 16, f"{where} decoder_num_heads"),
      ("method.mask_ratio", 0.75, f"{where} mask_ratio"),
      ("method.norm_pix_loss", True, f"{where} norm_pix_loss"),
      ("optimizer.b2", 0.95, f"{where} optimizer.kwargs.betas"),
      ("views", 1, f"{aug} num_crops 1"),
      ("views.view1.crop_scale", (0.08, 1.0), f"{aug} rrc"),
      ("views.view1.jitter_p", 0.0, f"{aug} color_jitter.prob"),
  )
  config.recipe.departures = presets.SOLO_LEARN_DEPARTURES
  return config
