"""MoCo v2 on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's 200-epoch recipe.

  python -m sslax.main --config=configs/moco_v2_imagenet.py --workdir=gs://BUCKET/moco_v2_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Chen, Fan, Girshick, He 2020 (table 1) and the official code (facebookresearch/moco,
`main_moco.py --mlp --moco-t 0.2 --aug-plus --cos`, lr 0.03, batch 256): SGD momentum
0.9, learning rate 0.03 x batch/256, weight decay 1e-4, cosine decay, no warmup, 200
epochs (800 for the paper's best row), queue 65536, m 0.999, T 0.2, MLP head 2048 -> 128,
views: random resized crop (0.2, 1), colour jitter (0.4, 0.4, 0.4, 0.1) p 0.8,
grayscale p 0.2, blur p 0.5 with sigma in (0.1, 2), flip.
Departure: BatchNorm statistics over the global batch instead of shuffle BN (see
sslax/methods/moco_v2.py).
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.moco_v2 import defaults as moco_v2_defaults


def get_config():
  config, _ = presets.imagenet_resnet50(moco_v2_defaults(), batch_size=256, epochs=200)
  config.method.temperature = 0.2
  config.method.queue_size = 65536
  config.method.base_momentum = 0.999
  config.method.momentum_schedule = "constant"
  config.method.projector_hidden = (2048,)
  config.method.projector_dim = 128
  view = default_view_config(crop_scale=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                             hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0))
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.03      # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 0
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "moco_v2").
  config.linear_eval.recipe = "moco_v2"
  config.optimizer.decay_all_parameters = True
  config.model.zero_init_last_bn = False
  presets.pil_blur(config)  # PIL GaussianBlur(radius=sigma) in the source

  config.recipe.source = 'Chen, Fan, Girshick, He 2020 (arXiv:2003.04297) Table 1; facebookresearch/moco main_moco.py'
  config.recipe.source_values = (
      ('batch_size', 256, 'main_moco.py -b 256'),
      ('epochs', 200.0, 'MoCo v2 Table 1: 200 epochs'),
      ('warmup_epochs', 0.0, 'main_moco.py: no warm-up'),
      ('lr_peak', 0.03, 'main_moco.py --lr 0.03'),
      ('optimizer', 'sgd', 'main_moco.py torch.optim.SGD'),
      ('optimizer.weight_decay', 0.0001, 'main_moco.py --wd 1e-4'),
      ('optimizer.decay_all_parameters', True, 'main_moco.py: SGD over model.parameters(), every one decayed'),
      ('model.zero_init_last_bn', False, 'main_moco.py: torchvision resnet50 defaults'),
      ('method.temperature', 0.2, '--moco-t 0.2'),
      ('method.queue_size', 65536, '--moco-k 65536'),
      ('method.symmetric', False, 'builder.py: one direction'),
  )
  aug = "main_moco.py --aug-plus augmentation"
  config.recipe.source_values += (
      ('method.base_momentum', 0.999, 'main_moco.py --moco-m 0.999'),
      ('method.projector_dim', 128, 'main_moco.py --moco-dim 128'),
      ('optimizer.momentum', 0.9, 'main_moco.py --momentum 0.9'),
      ('views.view1.crop_scale', (0.2, 1.0), f'{aug}: RandomResizedCrop(224, scale=(0.2, 1.0))'),
      ('views.view1.brightness', 0.4, f'{aug}: ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8'),
      ('views.view1.saturation', 0.4, f'{aug}: ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8'),
      ('views.view1.hue', 0.1, f'{aug}: ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8'),
      ('views.view1.gray_p', 0.2, f'{aug}: RandomGrayscale(p=0.2)'),
      ('views.view1.blur_p', 0.5, f'{aug}: RandomApply([GaussianBlur([0.1, 2.0])], p=0.5)'),
      presets.imagenet_crop_interpolation(config, "moco_v2"),
  )
  config.recipe.departures = (
      ('-',
       'BatchNorm statistics over the global batch instead of shuffle BN (sslax/methods/moco_v2.py)'),
  )
  return config
