"""SimSiam on CIFAR-10 with a CIFAR-style ResNet-18 (3x3 stem, no max-pool).

  python -m sslax.main --config=configs/simsiam_cifar10.py --workdir=runs/simsiam_cifar10 \
      --config.data.download=True

solo-learn's recipe (vturrisi/solo-learn, scripts/pretrain/cifar/simsiam.yaml with
augmentations/symmetric_weak.yaml; defaults from solo/methods/base.py and main_pretrain.py):
batch 256, SGD lr 0.5 x batch/256, momentum 0.9, weight decay 1e-5, 10 warmup epochs
then cosine decay, 1000 epochs; projector 2048-2048-2048, predictor bottleneck 512;
views: random resized crop (0.08, 1), colour jitter (0.4, 0.4, 0.4, 0.1) p 0.8,
grayscale p 0.2, Gaussian blur p 0.5, no solarization, horizontal flip.
Departures: solo-learn keeps the predictor at a fixed learning rate (`static_lr`) and
decays biases and BatchNorm parameters; here the predictor follows the one schedule and
the trainer's mask leaves biases and BatchNorm parameters undecayed.
"""

from sslax import presets
from sslax.data.augment import default_view_config
from sslax.methods.simsiam import defaults as simsiam_defaults


def get_config():
  config, steps_per_epoch = presets.cifar10_resnet18(
      simsiam_defaults(), batch_size=256, epochs=1000)
  config.method.projector_hidden = (2048, 2048)
  config.method.projector_dim = 2048
  config.method.predictor_hidden = (512,)

  view = default_view_config(crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                             hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.5, solarize_p=0.0)
  config.views.view1 = view
  config.views.view2 = view.copy_and_resolve_references()

  config.optimizer.name = "sgd"
  config.optimizer.base_lr = 0.5       # x batch/256
  config.optimizer.lr_scaling = "linear"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 1e-5
  config.optimizer.warmup_steps = 10 * steps_per_epoch
  return config
