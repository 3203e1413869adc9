"""SimCLR on ImageNet (ILSVRC-2012) with a ResNet-50: the paper's recipe.

  python -m sslax.main --config=configs/simclr_imagenet.py --workdir=gs://BUCKET/simclr_r50 \
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Chen et al. 2020, section 4 and appendix B.1: batch 4096, LARS with learning rate
0.3 x batch/256 and weight decay 1e-6 (biases and BN parameters excluded), 10 warmup
epochs then cosine decay, temperature 0.1, a 2-layer projection head (2048 -> 128),
random resized crop (0.08, 1), flip, colour jitter with strength 1.0 (p 0.8),
grayscale (p 0.2), Gaussian blur (p 0.5); 100 epochs here (the paper's ablations;
its headline number trains 1000). `imagenet2012` needs the manual download that
TFDS describes (see README: Data). The official code (google-research/simclr) concatenates
the two views in one batch (shared BatchNorm statistics), ends the head in a BatchNorm
(scale, no shift), zero-initializes each block's last BN, blurs with a kernel of 10% of
the side and steps LARS as optax.lars does (momentum after the learning rate).
  python -m sslax.recipe --config=configs/simclr_imagenet.py   # the recipe card
Departures: `config.recipe.departures`.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.simclr import defaults as simclr_defaults


def get_config():
  config, steps_per_epoch = presets.imagenet_resnet50(
      simclr_defaults(), batch_size=4096, epochs=100, checkpoint_every_epochs=2)
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
  # Evaluation: the paper's own linear evaluation (python -m sslax.evaluate.linear_eval;
  # settings and source: sslax/evaluate/linear_eval_recipes.py, "simclr").
  config.linear_eval.recipe = "simclr"

  paper = "Chen et al. 2020 (arXiv:2002.05709)"
  code = "google-research/simclr (tf2)"
  config.recipe.source = f"{paper}, section 4 and appendix B.1; {code}"
  config.recipe.source_values = (
      ("batch_size", 4096, f"{paper} section 2.2; {code} run.py --train_batch_size 4096"),
      ("epochs", 1000.0, f"{paper} Table 6 (the 69.3 linear-evaluation row trains 1000 epochs)"),
      ("warmup_epochs", 10.0, f"{paper} section 2.2; {code} run.py --warmup_epochs 10"),
      ("optimizer.warmup_start_lr", 0.0, f"{code} model.py WarmUpAndCosineDecay: linear warm-up from 0"),
      ("lr_peak", 4.8, f"{paper} appendix B.1: 0.3 x 4096/256; {code} run.py --learning_rate 0.3 linear"),
      ("optimizer", "lars (optax)", f"{code} lars_optimizer.py: momentum after the scaled lr"),
      ("optimizer.weight_decay", 1e-6, f"{paper} section 2.2; {code} run.py --weight_decay 1e-6"),
      ("optimizer.trust_coefficient", 0.001, f"{code} lars_optimizer.py eeta 0.001"),
      ("method.temperature", 0.1, f"{paper} appendix B.9; {code} run.py --temperature 0.1"),
      ("method.projector_hidden", (2048,), f"{paper} section 2.1: 2-layer MLP head"),
      ("method.projector_dim", 128, f"{code} run.py --proj_out_dim 128"),
      ("method.projector_last_bn", True, f"{code} model.py ProjectionHead: BN on the output"),
      ("method.views_forward", "concatenated", f"{code} model.py: both views in one batch"),
      ("model.zero_init_last_bn", True, f"{code} resnet.py BatchNormRelu(init_zero=True)"),
      ("views", 2, f"{paper} section 2.1"),
      ("views.view1.crop_scale", (0.08, 1.0), f"{paper} appendix A: crop 0.08-1"),
      ("views.view1.brightness", 0.8, f"{paper} appendix A: colour strength 1.0"),
      ("views.view1.blur_p", 0.5, f"{paper} appendix A: blur p 0.5"),
      ("views.view1.blur_kernel", "fraction", f"{paper} appendix A: kernel 10% of the side"),
  )
  config.recipe.source_values += (presets.imagenet_crop_interpolation(config, "simclr"),)
  config.recipe.departures = (
      ("epochs", "100 epochs, the length of the paper's ablations (its Figure 9 compares "
                 "lengths); the published 69.3 trains 1000"),
      ("-", "the crop box is torchvision's RandomResizedCrop's (10 tries, then the centred box); "
            "the official data_util.py draws tf.image.sample_distorted_bounding_box "
            "(min_object_covered 0.1, 100 tries, then the whole image)"),
      presets.TF_RESIZE_DEPARTURE,
  )
  return config
