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
  return config
