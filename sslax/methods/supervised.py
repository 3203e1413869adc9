"""The supervised baseline: the same backbone trained with labels, so the frozen
evaluation (and transfer) of each self-supervised encoder has a supervised encoder of
the same architecture, data and budget next to it.

One augmented view per image; the encoder's features go through a linear classifier
of config.data.num_classes outputs (the trainer fills it from the dataset when it is
0), and the loss is the softmax cross-entropy with the labels, averaged over the
global batch, with optional label smoothing (Szegedy et al. 2016):

  L = (1 - eps) * CE(logits, y) + eps * mean_c(-log softmax(logits)_c),

which is the cross-entropy with the target (1 - eps) * onehot(y) + eps / C.
`encode` returns the backbone features, before the classifier: what the frozen
evaluation probes, as for every other method.

Train accuracy of the global batch (on the augmented view, in train-mode BatchNorm)
is logged as `accuracy`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.networks import apply_to_views
from sslax.models import build_encoder


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      label_smoothing=0.0,  # eps; 0: plain cross-entropy (Goyal et al. 2017, torchvision's ResNet recipe)
  ))


class EncoderWithClassifier(nn.Module):
  encoder: nn.Module
  num_classes: int

  def setup(self):
    # Flax's Dense default init (LeCun normal, zero bias); the classifier is a weight
    # layer like any other, so it takes weight decay (biases excepted, sslax/optim.py).
    self.classifier = nn.Dense(self.num_classes, name="classifier")

  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """x: [B, H, W, C] -> logits [B, num_classes]."""
    return self.classifier(self.encoder(x, train=train))

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  num_classes = config.data.get("num_classes", 0)
  if num_classes <= 0:  # 0 is valid in a config: the trainer fills it from the dataset
    raise ConfigError(
        f"config.data.num_classes: the supervised baseline needs the number of classes, got "
        f"{num_classes}; the trainer sets it from the dataset, or set it in the config")
  return EncoderWithClassifier(encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
                               num_classes=num_classes)


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  (logits,), batch_stats = apply_to_views(model, variables, inputs.views)
  labels = inputs.labels.astype(jnp.int32)
  value = losses.label_smoothed_cross_entropy(logits, labels, cfg.label_smoothing, axis_name)
  correct = (jnp.argmax(jax.lax.stop_gradient(logits), axis=-1) == labels).astype(jnp.float32)
  metrics = {"accuracy": parallel.global_mean(correct, axis_name)}
  return value, LossAux(batch_stats, metrics)


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1)
