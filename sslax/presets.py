"""Dataset and recipe presets the experiment files in configs/ start from: the CPU budget
every Fashion-MNIST config shares, the sequence and text budget, and the ImageNet and CIFAR-10
setups of the paper configs (durations in epochs resolved to steps).
"""

from __future__ import annotations

import ml_collections

from sslax import config as config_lib
from sslax.data.augment import default_view_config
from sslax.models import encoder_config


def fashion_mnist_cpu(method: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The CPU budget shared by every configs/*_fashion_mnist.py, so methods compare at the
  same data, encoder, views, steps and batch: `base_config()` plus those, with `method`.

  Choices from the 2000-step sweep (benchmarks/fashion_mnist_sweep.sh, README): widths
  (64,128,256) beat (32,64,128) by 2.2 points of linear probe; crops (0.5, 1) beat
  (0.2, 1) by 0.7. Global-average-pooled features, the standard evaluated representation.
  """
  config = config_lib.base_config()
  config.batch_size = 256
  config.total_steps = 4000
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500
  config.data.name = "fashion_mnist"
  config.data.image_size = 28
  config.model = encoder_config("convnet", widths=(64, 128, 256))
  config.method = method
  # Saturation, hue and grayscale do nothing on one channel; blur is off (a 3-tap kernel
  # at 28 px, and SimCLR's CIFAR-10 setting drops it too).
  view = default_view_config(
      crop_scale=(0.5, 1.0), blur_p=0.0, jitter_p=0.8, brightness=0.4, contrast=0.4,
      saturation=0.0, hue=0.0, gray_p=0.0, solarize_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()
  config.online_probe.enabled = True
  config.diagnostics.enabled = True
  return config


def fashion_mnist_vit() -> ml_collections.ConfigDict:
  """The ViT of the CPU configs of MAE and data2vec, sized for 28x28 on a 2-core CPU: 4x4
  patches (49 tokens), 128 wide, 4 blocks of 4 heads."""
  return encoder_config("vit", patch_size=4, hidden_dim=128, depth=4, num_heads=4)


def sequence_cpu(data: ml_collections.ConfigDict, model: ml_collections.ConfigDict,
                 method: ml_collections.ConfigDict, *, batch_size: int, total_steps: int,
                 base_lr: float, warmup_steps: int, weight_decay: float, b2: float = 0.999,
                 checkpoint_every_steps: int = 500) -> ml_collections.ConfigDict:
  """What every frame-sequence and text config shares (configs/*_japanese_vowels.py,
  *_fashion_mnist_rows.py, *_fortunes.py): `base_config()` with `data`, `model`, `method`,
  the given batch and step budget, a log line every 50 steps, and the online probe and
  diagnostics on, as in `fashion_mnist_cpu`.

  The optimizer is AdamW with `base_lr` used as given (lr_scaling "none"): APC, CPC,
  Mockingjay, BERT and GPT train with Adam at a learning rate stated for their own batch, not
  one per 256 examples as the image recipes' linear scaling assumes (word2vec's SGD is
  replaced by the same Adam). weight_decay 0 makes it plain Adam; `b2` 0.999 is Adam's
  default (the Transformer configs take RoBERTa's 0.98).

  The evaluation follows the dataset. JapaneseVowels has 9 speakers of 30 training
  utterances each: kNN votes with k = 10, and few-label results are by count, 1 and 3
  utterances a speaker over 10 draws. Fashion-MNIST rows are all 28 long, so the raw
  baseline flattens them (the 784 pixels, as for images) instead of averaging the frames.
  """
  config = config_lib.base_config()
  config.data = data
  config.model = model
  config.method = method
  config.batch_size = batch_size
  config.total_steps = total_steps
  config.log_every_steps = 50
  config.checkpoint_every_steps = checkpoint_every_steps

  config.optimizer.name = "adamw"
  config.optimizer.base_lr = base_lr
  config.optimizer.lr_scaling = "none"
  config.optimizer.warmup_steps = warmup_steps
  config.optimizer.weight_decay = weight_decay
  config.optimizer.b2 = b2

  config.online_probe.enabled = True
  config.diagnostics.enabled = True
  # Sequence and text encoders are evaluated frozen (--mode=finetune refuses them): no image
  # view to fine-tune with.
  del config.finetune["view"]
  if data.name == "japanese_vowels":
    config.eval.knn_k = 10                 # 30 utterances a speaker: k=200 would vote with most of them
    config.eval.few_label_fractions = ()  # 1% and 10% of 30 are the 1 and 3 per class below
    config.eval.few_label_per_class = (1, 3)
    config.eval.few_label_draws = 10
  elif data.name == "fashion_mnist_rows":
    config.eval.raw_frames = "flatten"  # the raw baseline is then the 784 pixels, as for images
  return config


IMAGENET_TRAIN_EXAMPLES = 1_281_167
CIFAR10_TRAIN_EXAMPLES = 50_000


def _epochs(config: ml_collections.ConfigDict, train_examples: int, batch_size: int, epochs: int,
            checkpoint_every_epochs: int) -> int:
  """Sets batch size, steps, logging and checkpoint period from epochs; -> steps per epoch."""
  steps_per_epoch = train_examples // batch_size
  config.batch_size = batch_size
  config.total_steps = epochs * steps_per_epoch
  config.log_every_steps = 100
  config.checkpoint_every_steps = checkpoint_every_epochs * steps_per_epoch
  return steps_per_epoch


def imagenet_resnet50(method: ml_collections.ConfigDict, *, batch_size: int, epochs: int,
                      checkpoint_every_epochs: int = 5) -> tuple[ml_collections.ConfigDict, int]:
  """What every configs/*_imagenet.py shares: `base_config()` with ImageNet (ILSVRC-2012,
  224 px, read by random access), a ResNet-50 with the ImageNet stem, `method`, and an
  evaluation of the frozen features of the whole training split: kNN (k 200, T 0.07: Wu et
  al. 2018, solo-learn; DINO's configs set k 20), the few-label probes on 1% / 10% of it,
  and the diagnostics (ResNet-50 features of all 1.28M images: 10.5 GB of float32 on the
  host). The linear probe is the papers' SGD linear evaluation, a training run
  (sslax/evaluate/linear_eval.py; each config names its recipe), not the L-BFGS probe on
  stored features; raw pixels at 224x224x3 are no baseline at this size.
  -> (config, steps per epoch); the caller sets views and optimizer."""
  config = config_lib.base_config()
  steps_per_epoch = _epochs(config, IMAGENET_TRAIN_EXAMPLES, batch_size, epochs,
                            checkpoint_every_epochs)
  config.data.name = "imagenet2012"
  config.data.train_split = "train"
  config.data.test_split = "validation"
  config.data.image_size = 224
  config.data.in_memory = False   # random access, decoded and resized on the host
  config.model = encoder_config("resnet50", stem="imagenet")
  config.method = method
  config.eval.batch_size = 1024
  config.eval.max_train_examples = -1   # the whole split: kNN over all of it, as DINO's eval_knn.py
  config.eval.protocols = ("knn", "few_label", "diagnostics")
  config.eval.raw_pixel_baseline = False
  config.online_probe.enabled = True   # BYOL's online classifier, logged as a progress signal
  config.diagnostics.enabled = True
  return config, steps_per_epoch


def cifar10_resnet18(method: ml_collections.ConfigDict, *, batch_size: int, epochs: int,
                     checkpoint_every_epochs: int = 5) -> tuple[ml_collections.ConfigDict, int]:
  """What every configs/*_cifar10.py shares: `base_config()` with CIFAR-10 (32 px, in
  memory), a CIFAR-style ResNet-18 (3x3 stem, no max-pool), `method`.
  -> (config, steps per epoch); the caller sets views and optimizer."""
  config = config_lib.base_config()
  steps_per_epoch = _epochs(config, CIFAR10_TRAIN_EXAMPLES, batch_size, epochs,
                            checkpoint_every_epochs)
  config.data.name = "cifar10"
  config.data.image_size = 32
  config.model = encoder_config("resnet18", stem="cifar")
  config.method = method
  config.eval.batch_size = 1000
  config.online_probe.enabled = True
  config.diagnostics.enabled = True
  return config, steps_per_epoch


SOLO_LEARN = "vturrisi/solo-learn"
# What every solo-learn CIFAR-10 run shares and no yaml spells out: defaults of
# solo/args/pretrain.py (lr x batch/256, SGD/LARS momentum 0.9) and solo/methods/base.py
# (warmup_cosine: 10 warm-up epochs from 3e-5, per step; exclude_bias_n_norm_wd False),
# torchvision's resnet18 (zero_init_residual False) and bicubic crops
# (solo/data/pretrain_dataloader.py).
SOLO_LEARN_DEFAULTS = "solo/args/pretrain.py, solo/methods/base.py defaults"


def solo_learn_cifar10(method: ml_collections.ConfigDict, *, optimizer: str, lr: float,
                       weight_decay: float) -> tuple[ml_collections.ConfigDict, int]:
  """`cifar10_resnet18` at solo-learn's shared settings: batch 256, 1000 epochs, `optimizer`
  ("lars": solo-learn's LARS, eta 0.02, clipped, biases and norms excluded, as every LARS
  yaml of scripts/pretrain/cifar sets; "sgd" or "adamw": every parameter decayed), lr x batch/256,
  momentum 0.9, 10 warm-up epochs from 3e-5 then cosine, the last BN of each residual block
  initialized to 1 (torchvision). -> (config, steps per epoch)."""
  config, steps_per_epoch = cifar10_resnet18(method, batch_size=256, epochs=1000)
  config.model.zero_init_last_bn = False
  opt = config.optimizer
  opt.name = optimizer
  opt.base_lr = lr
  opt.lr_scaling = "linear"
  opt.momentum = 0.9
  opt.weight_decay = weight_decay
  opt.warmup_steps = 10 * steps_per_epoch
  opt.warmup_start_lr = 3e-5
  if optimizer == "lars":
    opt.lars_variant = "solo_learn"
    opt.clip_lr = True
    opt.trust_coefficient = 0.02
  else:
    opt.decay_all_parameters = True
  return config, steps_per_epoch


def solo_learn_values(yaml: str, *, optimizer: str, lr: float, weight_decay: float) -> tuple:
  """The config.recipe.source_values rows every solo-learn CIFAR-10 config shares."""
  where = f"scripts/pretrain/cifar/{yaml}"
  rows = [("batch_size", 256, f"{where} optimizer.batch_size"),
          ("epochs", 1000.0, f"{where} max_epochs"),
          ("warmup_epochs", 10.0, f"{SOLO_LEARN_DEFAULTS}: scheduler.warmup_epochs"),
          ("optimizer.warmup_start_lr", 3e-5, f"{SOLO_LEARN_DEFAULTS}: scheduler.warmup_start_lr"),
          ("lr_peak", lr, f"{where} optimizer.lr x 256/256"),
          ("optimizer.weight_decay", weight_decay, f"{where} optimizer.weight_decay"),
          ("optimizer.momentum", 0.9, f"{SOLO_LEARN_DEFAULTS}: optimizer.kwargs.momentum"),
          ("model.name", "resnet18", f"{where} backbone.name"),
          ("model.zero_init_last_bn", False, "torchvision resnet18 zero_init_residual=False"),
          ("crop_interpolation", "bicubic", "solo/data/pretrain_dataloader.py: RandomResizedCrop("
           "interpolation=InterpolationMode.BICUBIC)")]
  if optimizer == "lars":
    rows += [("optimizer", "lars (solo_learn, clip_lr)", f"{where} optimizer.kwargs.clip_lr True; "
              "solo/utils/lars.py"),
             ("optimizer.trust_coefficient", 0.02, f"{where} optimizer.kwargs.eta")]
  else:
    rows += [("optimizer", optimizer, f"{where} optimizer.name"),
             ("optimizer.decay_all_parameters", True, "solo/methods/base.py exclude_bias_n_norm_wd False")]
  return tuple(rows)


def set_crop_interpolation(config: ml_collections.ConfigDict, interpolation: str) -> None:
  """Every view's random resized crop resamples with `interpolation` ("bilinear" or
  "bicubic"), on the host (full-resolution images) or on the device (in-memory ones)."""
  for view in config.views.values():
    view.interpolation = interpolation


# Departures every solo-learn CIFAR-10 config keeps.
SOLO_LEARN_DEPARTURES = (
    ("-", "evaluation: sslax's frozen protocols (config.eval); solo-learn's table is its "
          "linear classifier on the 1000-epoch backbone"),
)


# Where the ImageNet sources resample their random resized crop, (interpolation, file): what
# each configs/*_imagenet.py sets on its views (host crops from the full image) and records.
IMAGENET_CROP_INTERPOLATION = {
    "simclr": ("bicubic", "google-research/simclr tf2/data_util.py crop_and_resize: "
                          "tf.image.resize(method=BICUBIC)"),
    "byol": ("bicubic", "deepmind-research byol/utils/dataset.py _preprocess_image: "
                        "tf.image.resize(BICUBIC)"),
    "dino": ("bicubic", "facebookresearch/dino main_dino.py DataAugmentationDINO: "
                        "RandomResizedCrop(interpolation=Image.BICUBIC), global and local"),
    "mae": ("bicubic", "facebookresearch/mae main_pretrain.py: RandomResizedCrop(interpolation=3)"),
    "barlow_twins": ("bicubic", "facebookresearch/barlowtwins main.py Transform: "
                                "RandomResizedCrop(224, interpolation=Image.BICUBIC)"),
    "vicreg": ("bicubic", "facebookresearch/vicreg augmentations.py TrainTransform: "
                          "RandomResizedCrop(interpolation=InterpolationMode.BICUBIC)"),
    "moco_v2": ("bilinear", "facebookresearch/moco main_moco.py: RandomResizedCrop(224, "
                            "scale=(0.2, 1.0)), torchvision's default bilinear"),
    "moco_v3": ("bilinear", "facebookresearch/moco-v3 main_moco.py: RandomResizedCrop(224, "
                            "scale=(0.2, 1.)), torchvision's default bilinear"),
    "simsiam": ("bilinear", "facebookresearch/simsiam main_simsiam.py: RandomResizedCrop(224, "
                            "scale=(0.2, 1.)), torchvision's default bilinear"),
    "swav": ("bilinear", "facebookresearch/swav src/multicropdataset.py: RandomResizedCrop("
                         "size, scale), torchvision's default bilinear"),
}


def imagenet_crop_interpolation(config: ml_collections.ConfigDict, source: str) -> tuple:
  """Sets every view's host-crop `interpolation` to `source`'s (IMAGENET_CROP_INTERPOLATION);
  -> the config.recipe.source_values row that records it."""
  interpolation, where = IMAGENET_CROP_INTERPOLATION[source]
  set_crop_interpolation(config, interpolation)
  return ("crop_interpolation", interpolation, where)


# The TensorFlow sources (SimCLR, BYOL) draw the crop box and resize differently from
# torchvision's RandomResizedCrop, which the host crop follows (sslax/data/crops.py).
TF_RESIZE_DEPARTURE = (
    "-", "the crop is resized with antialiasing (PIL's filter widened when downsampling, or "
         "tf.image.resize(antialias=True)); the source's tf.image.resize bicubic does not "
         "antialias")


def pil_blur(config: ml_collections.ConfigDict) -> None:
  """Every view's blur kernel from its sigma, as PIL's GaussianBlur(radius=sigma) of the
  PyTorch sources (MoCo, SimSiam, Barlow Twins, VICReg, DINO, SwAV, solo-learn)."""
  for view in config.views.values():
    view.blur_kernel = "sigma"
