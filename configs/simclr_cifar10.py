"""SimCLR on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool).

  python -m sslax.main --config=configs/simclr_cifar10.py --workdir=runs/simclr_cifar10 \
      --config.data.download=True

Chen et al. 2020, appendix B.9 (CIFAR-10): 3x3 stride-1 stem without max-pool, no
Gaussian blur, colour strength 0.5, LARS with learning rate 1.0 x batch/256, weight
decay 1e-6, temperature 0.5, 10 warmup epochs, up to 1000 epochs. The backbone is the
ResNet-18 that solo-learn and most CIFAR tables use instead of the paper's ResNet-50.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.simclr import defaults as simclr_defaults


def get_config():
  config, steps_per_epoch = presets.cifar10_resnet18(
      simclr_defaults(), batch_size=512, epochs=1000)
  config.method.temperature = 0.5
  config.method.projector_hidden = (512,)
  config.method.projector_dim = 128

  view = default_view_config(color_strength=0.5, blur_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "lars"
  config.optimizer.base_lr = 1.0
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  config.optimizer.weight_decay = 1e-6
  return config
