"""SimCLR on STL-10 at 96x96: pretrain on the 100k-image `unlabelled` split, evaluate
on `train` / `test` (5k / 8k labelled images, 10 classes).

  python -m sslax.main --config=configs/simclr_stl10.py --workdir=runs/simclr_stl10 \
      --config.data.download=True

ResNet-18 with the ImageNet stem (96 px is large enough for the 7x7/2 stem and
max-pool), SimCLR's ImageNet augmentations including blur (Chen et al. 2020,
appendix A), LARS 1.0 x batch/256, temperature 0.2 as solo-learn's STL-10 setting.
"""

from sslax import config as config_lib
from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.simclr import defaults as simclr_defaults
from sslax.models import encoder_config

UNLABELLED_EXAMPLES = 100_000


def get_config():
  config = config_lib.base_config()
  config.batch_size = 256
  steps_per_epoch = UNLABELLED_EXAMPLES // config.batch_size
  config.total_steps = 400 * steps_per_epoch
  config.log_every_steps = 100
  config.checkpoint_every_steps = 5 * steps_per_epoch

  config.data.name = "stl10"
  config.data.train_split = "unlabelled"
  config.data.test_split = "test"
  config.data.image_size = 96

  config.model = encoder_config("resnet18", stem="imagenet")
  config.method = simclr_defaults()
  config.method.temperature = 0.2
  config.method.projector_hidden = (2048,)
  config.method.projector_dim = 128

  view = default_view_config()
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 1.0
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  config.optimizer.weight_decay = 1e-6
  # The probe and kNN fit on the labelled `train` split, not on the unlabelled one.
  config.eval.train_split = "train"

  presets.set_crop_interpolation(config, "bicubic")  # SimCLR's crop_and_resize
  paper = "Chen et al. 2020 (arXiv:2002.05709)"
  config.recipe.source = (f"{paper} appendix A (augmentations) and B.1 (LARS); no published "
                          "STL-10 recipe: batch, epochs and temperature are this file's choices")
  config.recipe.source_values = (
      ("optimizer", "lars (optax)", f"{paper} appendix B.1"),
      ("method.temperature", 0.2, "solo-learn's STL-10 temperature"),
      ("views.view1.brightness", 0.8, f"{paper} appendix A: colour strength 1.0"),
      ("views.view1.blur_p", 0.5, f"{paper} appendix A"),
      ("crop_interpolation", "bicubic", "google-research/simclr tf2/data_util.py crop_and_resize: "
       "tf.image.resize(method=BICUBIC)"),
  )
  config.recipe.departures = (
      ("views.view1.brightness", "colour strength 0.5 (default_view_config), not appendix A's 1.0"),
  )
  return config
