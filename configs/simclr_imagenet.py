"""SimCLR on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's recipe.

  python -m sslax.main --config=configs/simclr_imagenet.py --workdir=gs://BUCKET/simclr_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Chen et al. 2020, section 4 and appendix B.1: batch 4096, LARS with learning rate
0.3 x batch/256 and weight decay 1e-6 (biases and BN parameters excluded), 10 warmup
epochs then cosine decay, temperature 0.1, a 2-layer projection head (2048 -> 128),
random resized crop (0.08, 1), flip, colour jitter with strength 1.0 (p 0.8),
grayscale (p 0.2), Gaussian blur (p 0.5); 100 epochs here (the paper's ablations;
its headline number trains 1000). `imagenet2012` needs the manual download that
TFDS describes (see README: Data).
"""

from sslax import config as config_lib
from sslax.data.augment import default_view_config
from sslax.methods.simclr import defaults as simclr_defaults
from sslax.models import encoder_config

TRAIN_EXAMPLES = 1_281_167


def get_config():
  config = config_lib.base_config()
  config.batch_size = 4096
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
  config.method = simclr_defaults()
  config.method.temperature = 0.1
  config.method.projector_hidden = (2048,)
  config.method.projector_dim = 128

  view = default_view_config(color_strength=1.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.3
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  config.optimizer.weight_decay = 1e-6
  config.eval.batch_size = 1024
  config.eval.knn_k = 200
  # The probe and kNN fit on the first 100k training images (TFDS order): features of
  # all 1.28M would not fit a host. Raw pixels at 224x224x3 are no baseline at this size.
  config.eval.max_train_examples = 100_000
  config.eval.raw_pixel_baseline = False
  return config
