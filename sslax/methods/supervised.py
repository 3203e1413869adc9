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

Fine-tuning's regularizers (MAE's recipe, sslax/evaluate/finetune.py sets them; all off by
default), in timm's order: RandAugment on the view's pixels (sslax/data/randaugment.py),
then Mixup / CutMix of the normalized batch (sslax/data/mixing.py), whose targets are
lam * smooth(y) + (1 - lam) * smooth(y_partner): the loss is lam * L(y) + (1 - lam) *
L(y_partner), the cross-entropy being linear in its target. Stochastic depth is the ViT's
`drop_path_rate` (config.model). RandAugment and drop path draw from each example's key,
Mixup / CutMix from the step, so a step is the same on any device count.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.data import mixing, randaugment
from sslax.errors import ConfigError
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.networks import apply_to_views
from sslax.models import build_encoder


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      label_smoothing=0.0,  # eps; 0: plain cross-entropy (Goyal et al. 2017, torchvision's ResNet recipe)
      # Mixup / CutMix (timm's Mixup, mode "batch"): Beta(alpha, alpha); 0 turns each off.
      mixup_alpha=0.0, cutmix_alpha=0.0,
      mix_prob=1.0,         # probability that a batch is mixed at all
      mix_switch_prob=0.5,  # with both on: probability of CutMix rather than Mixup
      # RandAugment (timm's rand-m{magnitude}-mstd{magnitude_std}-inc1, n = layers); 0 layers: off.
      randaugment_layers=0, randaugment_magnitude=9.0, randaugment_magnitude_std=0.5,
      # The papers' linear evaluation (sslax/evaluate/linear_eval.py): only the classifier
      # trains; the encoder runs in evaluation mode (BatchNorm on its running statistics,
      # moco main_lincls.py's model.eval()) and is put back after every optimizer step, so
      # no weight decay or momentum moves it.
      frozen_encoder=False,
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  cfg = config.method

  def require(ok: bool, key: str, what: str):
    if not ok:
      raise ConfigError(f"config.method.{key}: {what}, got {cfg.get(key)!r}")
  require(0 <= cfg.get("label_smoothing", 0.0) < 1, "label_smoothing", "must be in [0, 1)")
  require(cfg.get("mixup_alpha", 0.0) >= 0, "mixup_alpha", "must be >= 0 (0: no Mixup)")
  require(cfg.get("cutmix_alpha", 0.0) >= 0, "cutmix_alpha", "must be >= 0 (0: no CutMix)")
  for key in ("mix_prob", "mix_switch_prob"):
    require(0 <= cfg.get(key, 0.5) <= 1, key, "must be a probability in [0, 1]")
  layers = cfg.get("randaugment_layers", 0)
  require(isinstance(layers, int) and layers >= 0, "randaugment_layers",
          "must be an integer >= 0 (timm's n, 2; 0: no RandAugment)")
  require(0 <= cfg.get("randaugment_magnitude", 9.0) <= randaugment.MAX_LEVEL, "randaugment_magnitude",
          "must be in [0, 10] (timm's m)")
  require(cfg.get("randaugment_magnitude_std", 0.5) >= 0, "randaugment_magnitude_std", "must be >= 0")
  rate = config.model.get("drop_path_rate", 0.0)
  if not 0 <= rate < 1:
    raise ConfigError(f"config.model.drop_path_rate: must be in [0, 1) (0: no stochastic depth), got {rate!r}")


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


# Streams folded into each example's key (RandAugment, drop path) and into the seed (Mixup).
RANDAUGMENT_STREAM, DROP_PATH_STREAM, MIX_STREAM = 0, 1, 2


def rand_augment_view(view: jax.Array, keys: jax.Array, inputs: StepInputs, cfg) -> jax.Array:
  """A normalized view [B, H, W, C] RandAugmented on its pixels and normalized again; the
  geometric ops fill with the mean pixel (timm's img_mean)."""
  mean = jnp.asarray(inputs.pixel_mean, jnp.float32)
  std = jnp.asarray(inputs.pixel_std, jnp.float32)
  pixels = (view.astype(jnp.float32) * std + mean) * 255.0
  augmented = randaugment.rand_augment_batch(
      keys, pixels, num_layers=cfg.randaugment_layers, magnitude=cfg.randaugment_magnitude,
      magnitude_std=cfg.randaugment_magnitude_std, fill=jnp.round(mean * 255.0))
  return ((augmented / 255.0 - mean) / std).astype(view.dtype)


def example_keys(inputs: StepInputs, stream: int) -> jax.Array:
  return jax.vmap(lambda k: jax.random.fold_in(k, stream))(inputs.keys)


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  view = inputs.views[0]
  if cfg.get("randaugment_layers", 0):
    view = rand_augment_view(view, example_keys(inputs, RANDAUGMENT_STREAM), inputs, cfg)
  labels = inputs.labels.astype(jnp.int32)
  mix = None
  if cfg.get("mixup_alpha", 0.0) > 0 or cfg.get("cutmix_alpha", 0.0) > 0:
    # One draw per step, the same on every device; partners from the reversed global batch.
    step_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), MIX_STREAM), inputs.step)
    mix = mixing.sample_mix(step_key, mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha,
                            prob=cfg.mix_prob, switch_prob=cfg.mix_switch_prob,
                            height=view.shape[1], width=view.shape[2])
    view = mixing.mix_images(view, parallel.reverse_global_batch(view, axis_name), mix)
  apply_method = None
  if cfg.get("frozen_encoder", False):
    def apply_method(module, x, train):
      del train
      return module.classifier(jax.lax.stop_gradient(module.encoder(x, train=False)))
  elif config.model.get("drop_path_rate", 0.0) > 0:
    drop_keys = example_keys(inputs, DROP_PATH_STREAM)

    def apply_method(module, x, train):
      return module.classifier(module.encoder(x, train=train, drop_keys=drop_keys))
  (logits,), batch_stats = apply_to_views(model, variables, [view], method=apply_method)
  value = losses.label_smoothed_cross_entropy(logits, labels, cfg.label_smoothing, axis_name)
  if mix is not None:
    partner_labels = parallel.reverse_global_batch(labels, axis_name)
    value = mix.lam * value + (1.0 - mix.lam) * losses.label_smoothed_cross_entropy(
        logits, partner_labels, cfg.label_smoothing, axis_name)
  correct = (jnp.argmax(jax.lax.stop_gradient(logits), axis=-1) == labels).astype(jnp.float32)
  metrics = {"accuracy": parallel.global_mean(correct, axis_name)}
  return value, LossAux(batch_stats, metrics)


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  """With frozen_encoder: the encoder's parameters, put back after each step."""
  if not config.method.get("frozen_encoder", False):
    return {}
  return {"frozen_encoder": variables["params"]["encoder"]}


def update_state(config, params, state, outputs, step):
  if not config.method.get("frozen_encoder", False):
    return params, state
  return {**params, "encoder": state["frozen_encoder"]}, state


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=1, validate=validate,
                init_state=init_state, update_state=update_state, state_reads_outputs=False)
