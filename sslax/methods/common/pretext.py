"""What the classic pretext tasks share (methods/rotation.py, jigsaw.py, relative_patch.py): one
encoder applied to every *part* of an example (the rotated image, the 9 jigsaw tiles, the
two patches), a classifier over the concatenated part features, and the per-example
patch cropping on device.

`PartsClassifier.encode` is the encoder alone on whatever it is given, so the frozen
evaluation embeds full images (config.data.image_size) with the backbone trained on
tiles or patches, as the papers transfer their convolutional layers.

Every random draw of a part (its position, the permutation, the colour treatment) is a
pure function of the example's key (`StepInputs.keys`: fold_in of the example's global
stream position), so tiles and labels do not depend on the device count.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.data import augment
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, StepInputs
from sslax.models import build_encoder
from sslax.models.heads import MLP


class PartsClassifier(nn.Module):
  """A shared encoder on every part of an example, then a classifier over the
  `num_parts` part features of each example concatenated in order (the late fusion
  of Doersch et al. 2015 and the context-free network of Noroozi & Favaro 2016)."""
  encoder: nn.Module
  classifier: nn.Module
  num_parts: int

  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """Initializes every parameter (the trainer calls it with full images): x [B, H, W, C]
    taken as examples whose `num_parts` parts all are x -> logits [B, classes]. With
    num_parts = 1 (rotation) this is `classify`."""
    features = self.encoder(x, train=train)
    return self.classifier(jnp.tile(features, (1, self.num_parts)), train=train)

  def classify(self, parts: jax.Array, train: bool = True) -> jax.Array:
    """parts [B * num_parts, h, w, C], each example's parts consecutive and in order,
    all through the encoder in one call (BatchNorm statistics cover every part of the
    global batch) -> logits [B, classes]."""
    features = self.encoder(parts, train=train)
    return self.classifier(features.reshape(-1, self.num_parts * features.shape[-1]), train=train)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)


def check_parts(config: ml_collections.ConfigDict, num_parts: int) -> None:
  """The validate-time check of a parts classifier: with several parts, features that do not
  depend on the input size."""
  if num_parts > 1 and config.model.get("pool", "avg") != "avg":
    raise ConfigError(
        f"config.model.pool: {config.method.name} encodes small parts and evaluates full images, "
        f"so the features must not depend on the input size; use 'avg', got {config.model.pool!r}")


def build_parts_classifier(config: ml_collections.ConfigDict, num_parts: int,
                           num_classes: int) -> PartsClassifier:
  """config.model's encoder + MLP(config.method.classifier_hidden, num_classes), every
  BatchNorm synchronized over the mesh axis."""
  return PartsClassifier(
      encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
      classifier=MLP(hidden_dims=tuple(config.method.classifier_hidden), out_dim=num_classes,
                     use_bn=True, bn_axis_name=parallel.DATA_AXIS),
      num_parts=num_parts)


def view_sizes(config: ml_collections.ConfigDict) -> dict[str, int]:
  return {name: augment.view_size(view, config.data.image_size) for name, view in config.views.items()}


def crop(image: jax.Array, origin: jax.Array, size: int) -> jax.Array:
  """image [H, W, C], integer origin [2] (top-left, row then column) -> [size, size, C]."""
  return jax.lax.dynamic_slice(image, (origin[0], origin[1], 0), (size, size, image.shape[-1]))


def standardize(parts: jax.Array, eps: float) -> jax.Array:
  """Each part [..., h, w, C] to zero mean and unit std per channel over its pixels, the
  variance floored by eps (blank parts, e.g. Fashion-MNIST background, become 0)."""
  mean = jnp.mean(parts, axis=(-3, -2), keepdims=True)
  var = jnp.var(parts, axis=(-3, -2), keepdims=True)
  return (parts - mean) * jax.lax.rsqrt(var + eps)


def classification_loss(model: nn.Module, variables: dict, parts: jax.Array, labels: jax.Array,
                        axis_name: str | None):
  """Softmax cross-entropy of model.classify(parts) with labels, global-batch mean, and
  the global-batch accuracy: -> (loss, LossAux)."""
  logits, new_state = model.apply(variables, parts, train=True, mutable=["batch_stats"],
                                  method="classify")
  value = losses.softmax_cross_entropy(logits, labels, axis_name)
  correct = (jnp.argmax(jax.lax.stop_gradient(logits), axis=-1) == labels).astype(jnp.float32)
  return value, LossAux(new_state["batch_stats"], {"accuracy": parallel.global_mean(correct, axis_name)})


def require_keys(inputs: StepInputs, name: str) -> jax.Array:
  if inputs.keys is None:
    raise ValueError(f"{name} draws its parts from StepInputs.keys (one key per example); got None")
  return inputs.keys
