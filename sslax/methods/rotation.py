"""Rotation prediction (RotNet; Gidaris, Singh & Komodakis 2018): every image rotated by
0, 90, 180 and 270 degrees, and a 4-way classifier on the backbone features predicts
which rotation was applied,

  L = mean over images x and k in {0, 1, 2, 3} of CE(classifier(f(rot(x, k))), k),

rot(x, k) = x rotated counterclockwise by k * 90 degrees (np.rot90(x, k) on the
spatial axes). As the paper does (it feeds all four rotated copies of an image in the
same mini-batch), the four rotations of every image of the batch are built inside the
loss and go through the network in one call, so the effective batch is 4 x the images
and BatchNorm statistics cover all of them. Rotations need no randomness, so the
example keys are unused.

Head: config.method.classifier_hidden; () (the default) is a linear classifier on the
global-average-pooled backbone features, which `encode` returns for the frozen
evaluation. The paper's NIN instead predicts from its last conv block and probes
earlier blocks; here the evaluated layer is the backbone output, as for every method.
Train accuracy of the rotation task over the global batch is logged as `accuracy`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax.methods.base import Method, StepInputs, name_of
from sslax.methods.common.pretext import build_parts_classifier, classification_loss

NUM_ROTATIONS = 4


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      classifier_hidden=(),  # () : a linear 4-way classifier on the backbone features
  ))


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return build_parts_classifier(config, num_parts=1, num_classes=NUM_ROTATIONS)


def rotate_all(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """x [B, S, S, C] (square) -> the 4 rotations [4B, S, S, C], rotation k of image b at
  k * B + b, counterclockwise by k * 90 degrees, and the labels k [4B] int32."""
  if x.shape[1] != x.shape[2]:
    raise ValueError(f"rotation prediction needs square views, got {x.shape[1]}x{x.shape[2]}")
  rotated = jnp.concatenate([jnp.rot90(x, k, axes=(1, 2)) for k in range(NUM_ROTATIONS)])
  labels = jnp.repeat(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), x.shape[0])
  return rotated, labels


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  rotated, labels = rotate_all(inputs.views[0])
  return classification_loss(model, variables, rotated, labels, axis_name)


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1)
