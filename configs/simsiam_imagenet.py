"""SimSiam on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's 100-epoch recipe.

  python -m sslax.main --config=configs/simsiam_imagenet.py --workdir=gs://BUCKET/simsiam_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Chen & He 2021 ("Baseline settings") and the official code
(facebookresearch/simsiam main_simsiam.py, whose defaults are these): batch 512, SGD
with lr 0.05 x batch/256, momentum 0.9, weight decay 1e-4, cosine decay, no warmup,
100 epochs; projector 3 layers 2048 wide, predictor 2048 -> 512 -> 2048; views: random
resized crop (0.2, 1), colour jitter (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale p 0.2,
Gaussian blur sigma (0.1, 2) with p 0.5, horizontal flip (main_simsiam.py, "SimSiam v2's
aug"). Departures: the official command's `--fix-pred-lr` (the predictor kept at the
base lr) is not available, the predictor follows the cosine schedule with everything
else; biases and BatchNorm parameters take no weight decay (the trainer's mask; the
official SGD decays every parameter).
"""

from sslax import config as config_lib
from sslax.data.augment import default_view_config
from sslax.methods.simsiam import defaults as simsiam_defaults
from sslax.models import encoder_config

TRAIN_EXAMPLES = 1_281_167


def get_config():
  config = config_lib.base_config()
  config.batch_size = 512
  steps_per_epoch = TRAIN_EXAMPLES // config.batch_size
  config.total_steps = 100 * steps_per_epoch
  config.log_every_steps = 100
  config.checkpoint_every_steps = 2 * steps_per_epoch

  config.data.name = "imagenet2012"
  config.data.train_split = "train"
  config.data.test_split = "validation"
  config.data.image_size = 224
  config.data.in_memory = False   # random access, decoded and resized on the host

  config.model = encoder_config("resnet50", stem="imagenet")
  config.method = simsiam_defaults()
  config.method.projector_hidden = (2048, 2048)
  config.method.projector_dim = 2048
  config.method.predictor_hidden = (512,)

  view = default_view_config(crop_scale=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                             hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.5, solarize_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.05      # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 0
  config.eval.batch_size = 1024
  # As configs/simclr_imagenet.py: the probe and kNN fit on the first 100k training images.
  config.eval.max_train_examples = 100_000
  config.eval.raw_pixel_baseline = False
  return config
