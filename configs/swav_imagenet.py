"""SwAV on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's 800-epoch multi-crop
recipe (2 x 224 + 6 x 96), 75.3% linear top-1 in the paper.

  python -m sslax.main --config=configs/swav_imagenet.py --workdir=gs://BUCKET/swav_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

facebookresearch/swav scripts/swav_800ep_pretrain.sh (64 GPUs x 64 = batch 4096):
  --nmb_crops 2 6 --size_crops 224 96 --min_scale_crops 0.14 0.05 --max_scale_crops 1. 0.14
  --crops_for_assign 0 1 --temperature 0.1 --epsilon 0.05 --sinkhorn_iterations 3
  --feat_dim 128 --nmb_prototypes 3000 --queue_length 0 --epochs 800 --batch_size 64
  --base_lr 4.8 --final_lr 0.0048 --freeze_prototypes_niters 313 --wd 0.000001
  --warmup_epochs 10 --start_warmup 0.3 --arch resnet50
main_swav.py: projector 2048 -> 2048 -> 128 (hidden_mlp 2048), LARC (trust coefficient
0.001, clip False) around SGD momentum 0.9; the learning rate is not scaled by the
batch (lr_scaling "none" here). Augmentations (src/multicropdataset.py): random resized
crop, flip, colour distortion of strength 1 (jitter 0.8, 0.8, 0.8, 0.2 with p 0.8,
grayscale p 0.2), Gaussian blur p 0.5 with radius in (0.1, 2), on every crop.

LARC is solo-learn's LARS unclipped on every tensor (lars_variant "solo_learn", the same
step: apex LARC is where solo-learn's comes from). Departures: warm-up from 0 (official
0.3) and cosine to 0 (official 0.0048); no fp16.
"""

import ml_collections

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.swav import defaults as swav_defaults

NUM_LOCAL = 6


def get_config():
  # 2048 -> 128, 3000 prototypes, 0.1, 0.05, 3 iterations
  config, steps_per_epoch = presets.imagenet_resnet50(
      swav_defaults(), batch_size=4096, epochs=800)
  config.method.freeze_prototypes_steps = 313
  config.method.queue_length = 0

  common = dict(color_strength=1.0, jitter_p=0.8, gray_p=0.2, blur_p=0.5,
                blur_sigma=(0.1, 2.0), solarize_p=0.0)
  views = {"global1": default_view_config(crop_scale=(0.14, 1.0), **common),
           "global2": default_view_config(crop_scale=(0.14, 1.0), **common)}
  for i in range(1, NUM_LOCAL + 1):
    views[f"local{i}"] = default_view_config(crop_scale=(0.05, 0.14), size=96, **common)
  config.views = ml_collections.ConfigDict(views)

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 4.8
  config.optimizer.lr_scaling = "none"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.weight_decay = 1e-6
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "swav").
  config.linear_eval.recipe = "swav"
  config.optimizer.lars_variant = "solo_learn"  # apex LARC, clip False
  config.optimizer.decay_all_parameters = True  # LARC adapts and decays every tensor
  # The source blurs with cv2.GaussianBlur, a fixed 23x23 kernel, sigma U(0.1, 2)
  # (src/multicropdataset.py RandomGaussianBlur); the kernel from sigma (radius ceil(3 sigma),
  # 13 taps at sigma 2) drops only the tails beyond 3 sigma, also on the 96 px local crops.
  presets.pil_blur(config)

  config.recipe.source = 'facebookresearch/swav scripts/swav_800ep_pretrain.sh and main_swav.py (Caron et al. 2020, arXiv:2006.09882)'
  config.recipe.source_values = (
      ('batch_size', 4096, '64 GPUs x --batch_size 64'),
      ('epochs', 800.0, '--epochs 800'),
      ('warmup_epochs', 10.0, '--warmup_epochs 10'),
      ('lr_peak', 4.8, '--base_lr 4.8, not batch-scaled'),
      ('optimizer', 'lars (solo_learn)', 'main_swav.py LARC(clip=False) around SGD'),
      ('optimizer.decay_all_parameters', True, 'main_swav.py: LARC over every parameter'),
      ('optimizer.weight_decay', 1e-06, '--wd 0.000001'),
  )
  script = "scripts/swav_800ep_pretrain.sh"
  crops = "src/multicropdataset.py"
  config.recipe.source_values += (
      ('views', 8, f'{script} --nmb_crops 2 6'),
      ('views.global1.crop_scale', (0.14, 1.0), f'{script} --min_scale_crops 0.14 --max_scale_crops 1.'),
      ('views.local1.crop_scale', (0.05, 0.14), f'{script} --min_scale_crops 0.05 --max_scale_crops 0.14'),
      ('views.local1.size', 96, f'{script} --size_crops 224 96'),
      ('views.global1.brightness', 0.8, f'{crops} get_color_distortion(s=1.0): ColorJitter(0.8, 0.8, 0.8, 0.2)'),
      ('views.global1.jitter_p', 0.8, f'{crops} get_color_distortion: RandomApply p 0.8'),
      ('views.global1.blur_p', 0.5, f'{crops} RandomGaussianBlur: np.random.rand() > 0.5'),
      ('views.local1.blur_p', 0.5, f'{crops} RandomGaussianBlur on every crop'),
      ('method.temperature', 0.1, f'{script} --temperature 0.1'),
      ('method.epsilon', 0.05, f'{script} --epsilon 0.05'),
      ('method.sinkhorn_iterations', 3, f'{script} --sinkhorn_iterations 3'),
      ('method.projector_dim', 128, f'{script} --feat_dim 128'),
      ('method.num_prototypes', 3000, f'{script} --nmb_prototypes 3000'),
      ('method.queue_length', 0, f'{script} --queue_length 0'),
      ('method.freeze_prototypes_steps', 313, f'{script} --freeze_prototypes_niters 313'),
      presets.imagenet_crop_interpolation(config, "swav"),
  )
  config.recipe.departures = (
      ('-',
       'warm-up from 0 (official --start_warmup 0.3) and cosine to 0 (official --final_lr 0.0048); no fp16'),
  )
  return config
