"""DINO on ImageNet (ILSVRC-2012) with a ResNet-50: the official ResNet-50 recipe.

  python -m sslax.main --config=configs/dino_imagenet.py --workdir=gs://BUCKET/dino_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

facebookresearch/dino README, "ResNet-50 and other convnets trainings" (8 GPUs, 100
epochs; the README links its training log):
  main_dino.py --arch resnet50 --optimizer sgd --lr 0.03 --weight_decay 1e-4
      --weight_decay_end 1e-4 --global_crops_scale 0.14 1 --local_crops_scale 0.05 0.14
Every other value is a main_dino.py default: batch 64 per GPU x 8 = 512, 100 epochs,
lr 0.03 x batch/256 after 10 warm-up epochs then cosine, SGD momentum 0.9, weight decay
on weights only (get_params_groups skips biases and norms), --clip_grad 3.0 per tensor,
--out_dim 65536, --norm_last_layer True, --use_bn_in_head False, --momentum_teacher
0.996, teacher temperature 0.04 (warmup_teacher_temp 0.04, 0 warm-up epochs),
--freeze_last_layer 1 epoch, --local_crops_number 8 at 96 px.
Augmentations (DataAugmentationDINO): flip, colour jitter (0.4, 0.4, 0.2, 0.1) with p
0.8, grayscale p 0.2; global crop 1 blurred always, global crop 2 blurred with p 0.1
and solarized with p 0.2, local crops blurred with p 0.5.

Departures: the learning rate decays to 0 (official min_lr 1e-6); no fp16 loss scaling
(bfloat16/float32 here). Every crop is taken on the host from the full image and
resampled bicubically, as DataAugmentationDINO's.
"""

import ml_collections

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.dino import defaults as dino_defaults

NUM_LOCAL = 8


def get_config():
  # out_dim 65536, head 2048-2048-256, no BN, 0.04/0.1
  config, steps_per_epoch = presets.imagenet_resnet50(
      dino_defaults(), batch_size=512, epochs=100, checkpoint_every_epochs=2)
  config.method.base_momentum = 0.996
  config.method.teacher_temp = 0.04
  config.method.warmup_teacher_temp = 0.04
  config.method.warmup_teacher_temp_steps = 0
  config.method.freeze_last_layer_steps = steps_per_epoch

  common = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, jitter_p=0.8,
                gray_p=0.2, blur_sigma=(0.1, 2.0))
  views = {
      "global1": default_view_config(crop_scale=(0.14, 1.0), blur_p=1.0, solarize_p=0.0, **common),
      "global2": default_view_config(crop_scale=(0.14, 1.0), blur_p=0.1, solarize_p=0.2, **common),
  }
  for i in range(1, NUM_LOCAL + 1):
    views[f"local{i}"] = default_view_config(crop_scale=(0.05, 0.14), size=96, blur_p=0.5,
                                             solarize_p=0.0, **common)
  config.views = ml_collections.ConfigDict(views)

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.03
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  config.optimizer.clip_grad_per_tensor = 3.0
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "dino").
  config.linear_eval.recipe = "dino"
  # DINO's kNN numbers: k 20, T 0.07 over the whole training split (dino eval_knn.py).
  config.eval.knn_k = 20
  presets.pil_blur(config)  # PIL GaussianBlur(radius=sigma) in the source

  config.recipe.source = 'facebookresearch/dino README "ResNet-50 and other convnets trainings", main_dino.py defaults (Caron et al. 2021, arXiv:2104.14294)'
  config.recipe.source_values = (
      ('batch_size', 512, 'main_dino.py 64 per GPU x 8'),
      ('epochs', 100.0, 'README command: 100 epochs'),
      ('warmup_epochs', 10.0, 'main_dino.py --warmup_epochs 10'),
      ('lr_peak', 0.06, '--lr 0.03 x 512/256'),
      ('optimizer', 'sgd', 'README: --optimizer sgd'),
      ('optimizer.weight_decay', 0.0001, 'README: --weight_decay 1e-4'),
  )
  config.recipe.source_values += (
      ('views', 10, 'main_dino.py: 2 global crops + --local_crops_number 8'),
      ('views.global1.crop_scale', (0.14, 1.0), 'README command: --global_crops_scale 0.14 1'),
      ('views.local1.crop_scale', (0.05, 0.14), 'README command: --local_crops_scale 0.05 0.14'),
      ('views.local1.size', 96, 'main_dino.py DataAugmentationDINO: RandomResizedCrop(96, ...)'),
      ('views.global1.blur_p', 1.0, 'main_dino.py DataAugmentationDINO: GaussianBlur(1.0)'),
      ('views.global2.blur_p', 0.1, 'main_dino.py DataAugmentationDINO: GaussianBlur(0.1)'),
      ('views.global2.solarize_p', 0.2, 'main_dino.py DataAugmentationDINO: Solarization(0.2)'),
      ('views.local1.blur_p', 0.5, 'main_dino.py DataAugmentationDINO: GaussianBlur(p=0.5)'),
      ('method.out_dim', 65536, 'main_dino.py --out_dim 65536'),
      ('method.base_momentum', 0.996, 'main_dino.py --momentum_teacher 0.996'),
      ('method.teacher_temp', 0.04, 'main_dino.py --teacher_temp 0.04'),
      ('method.warmup_teacher_temp_steps', 0, 'main_dino.py --warmup_teacher_temp_epochs 0'),
      ('method.student_temp', 0.1, 'main_dino.py DINOLoss student_temp 0.1'),
      ('method.center_momentum', 0.9, 'main_dino.py DINOLoss center_momentum 0.9'),
      ('method.head_use_bn', False, 'main_dino.py --use_bn_in_head False'),
      ('method.norm_last_layer', True, 'main_dino.py --norm_last_layer True'),
      ('optimizer.clip_grad_per_tensor', 3.0, 'main_dino.py --clip_grad 3.0'),
      presets.imagenet_crop_interpolation(config, "dino"),
  )
  config.recipe.departures = (
      ('-',
       'the learning rate decays to 0 (official min_lr 1e-6); no fp16 loss scaling'),
  )
  # Not a departure: the two global crops (and the local ones) share BatchNorm statistics per
  # resolution, as the official utils.py MultiCropWrapper forwards each resolution's crops
  # concatenated.
  return config
