"""BYOL on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's recipe.

  python -m sslax.main --config=configs/byol_imagenet.py --workdir=gs://BUCKET/byol_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Grill et al. 2020, section 3.3 and appendix B/C, and the official JAX code
(deepmind-research/byol, configs/byol.py): batch 4096, LARS (eta 0.001, momentum 0.9,
biases and BatchNorm parameters excluded from weight decay and the trust ratio),
learning rate 0.2 x batch/256, weight decay 1.5e-6, 10 warmup epochs then cosine decay,
1000 epochs, tau_base 0.996 cosine-increased to 1, projector and predictor
Dense(4096)-BN-ReLU-Dense(256), the asymmetric BYOL views (table 6: blur p 1.0 / 0.1,
solarization p 0 / 0.2, colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, a blur
kernel of 23 px = 10% of the side), each view through the networks on its own, each
block's last BN zero-initialized (haiku's ResNet), LARS as optax.lars (the issue's and the
audit's reading of the official optimizer; see config.recipe).
  python -m sslax.recipe --config=configs/byol_imagenet.py   # the recipe card
Departures: `config.recipe.departures`.
"""

from sslax import presets
from sslax.data.augment import byol_view_configs
from sslax.methods.byol import defaults as byol_defaults


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(
      byol_defaults(), batch_size=4096, epochs=1000)
  config.method.projector_hidden = (4096,)
  config.method.projector_dim = 256
  config.method.predictor_hidden = (4096,)
  config.method.base_momentum = 0.996
  config.views.view1, config.views.view2 = byol_view_configs()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.2       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.trust_coefficient = 0.001
  config.optimizer.weight_decay = 1.5e-6
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "byol").
  config.linear_eval.recipe = "byol"
  config.method.views_forward = "per_view"

  paper = "Grill et al. 2020 (arXiv:2006.07733)"
  code = "deepmind-research byol/configs/byol.py"
  config.recipe.source = f"{paper}, section 3.3 and appendix B/C; {code}"
  config.recipe.source_values = (
      ("batch_size", 4096, f"{paper} section 3.3"),
      ("epochs", 1000.0, f"{paper} section 3.3 / Table 1"),
      ("warmup_epochs", 10.0, f"{paper} section 3.3"),
      ("optimizer.warmup_start_lr", 0.0, f"{code}: linear warm-up from 0"),
      ("lr_peak", 3.2, f"{paper} section 3.3: 0.2 x 4096/256"),
      ("optimizer", "lars (optax)", f"{code} (LARS, momentum 0.9)"),
      ("optimizer.weight_decay", 1.5e-6, f"{paper} section 3.3"),
      ("optimizer.trust_coefficient", 0.001, f"{paper} section 3.3 (eta 1e-3)"),
      ("method.projector_hidden", (4096,), f"{paper} section 3.3"),
      ("method.projector_dim", 256, f"{paper} section 3.3"),
      ("method.predictor_hidden", (4096,), f"{paper} section 3.3"),
      ("method.base_momentum", 0.996, f"{paper} section 3.3 (tau_base)"),
      ("method.views_forward", "per_view", "byol_experiment.py: one forward per view"),
      ("model.zero_init_last_bn", True, "haiku ResNet block: last BatchNorm scale_init zeros"),
      ("views", 2, f"{paper} Table 6"),
      ("views.view1.blur_p", 1.0, f"{paper} Table 6"),
      ("views.view2.blur_p", 0.1, f"{paper} Table 6"),
      ("views.view2.solarize_p", 0.2, f"{paper} Table 6"),
      ("views.view1.blur_kernel", "fraction", f"{paper} Table 6: kernel 23 px (10% of 224)"),
  )
  config.recipe.source_values += (presets.imagenet_crop_interpolation(config, "byol"),)
  config.recipe.departures = (
      ("-", "the crop box is torchvision's RandomResizedCrop's (10 tries, then the centred box); "
            "the official utils/dataset.py _decode_and_random_crop draws once and clamps the "
            "width and height to the image"),
      presets.TF_RESIZE_DEPARTURE,
  )
  return config
