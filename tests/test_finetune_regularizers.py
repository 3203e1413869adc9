"""MAE's fine-tuning regularizers against independent references:

* Mixup and CutMix (sslax/data/mixing.py) against NumPy given lambda and box; every CutMix
  box is one that timm's rand_bbox can draw (all centres enumerated in NumPy) and lambda is
  corrected to its area; the draws' frequencies and Beta moments; the targets against timm's
  mixup_target formula (and timm itself where torch is installed); the mixed loss against
  NumPy's soft-target cross-entropy (timm's SoftTargetCrossEntropy);
* stochastic depth (sslax/models/vit.py): each example's branch zeroed or scaled by
  1 / (1 - p), the kept fraction near 1 - p, the rates linear over depth (timm's linspace),
  rate 0 and evaluation identical to a network without it, each example's draw its own;
* the supervised loss with all of them on is the same on one device and on four;
* one tiny fine-tuning run (tiny ViT, MAE's recipe switched on) finishes with finite losses.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import parallel
from sslax.data import mixing
from sslax.evaluate import finetune
from sslax.methods import get_method
from sslax.methods.base import StepInputs
from sslax.models.vit import ViT, drop_path
from tests.helpers import tiny_config

# ----------------------------------------------------------------------------
# Mixup / CutMix
# ----------------------------------------------------------------------------


def test_mixup_and_cutmix_images_match_numpy_given_lambda_and_box():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 6, 5, 3)).astype(np.float32)
  partner = x[::-1]
  mixup = mixing.MixParams(jnp.float32(0.3), jnp.bool_(False), jnp.array([1, 4, 2, 5]))
  np.testing.assert_allclose(mixing.mix_images(x, partner, mixup), 0.3 * x + 0.7 * partner, rtol=1e-6)
  cutmix = mixing.MixParams(jnp.float32(0.6), jnp.bool_(True), jnp.array([1, 4, 2, 5]))
  expected = x.copy()
  expected[:, 1:4, 2:5] = partner[:, 1:4, 2:5]  # timm: x[:, :, yl:yh, xl:xh] = x.flip(0)[...]
  np.testing.assert_array_equal(mixing.mix_images(x, partner, cutmix), expected)
  unmixed = mixing.MixParams(jnp.float32(1.0), jnp.bool_(False), jnp.zeros(4, jnp.int32))
  np.testing.assert_array_equal(mixing.mix_images(x, partner, unmixed), x)


def timm_boxes(lam: float, height: int, width: int) -> set:
  """Every box timm's rand_bbox (margin 0) can draw at lam: all centres enumerated."""
  ratio = np.sqrt(1 - lam)
  cut_h, cut_w = int(height * ratio), int(width * ratio)
  return {(int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height)),
           int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width)))
          for cy in range(height) for cx in range(width)}


def test_cutmix_boxes_are_timms_and_lambda_is_the_unboxed_fraction():
  keys = jax.random.split(jax.random.key(0), 40)
  lams = np.linspace(0.02, 0.98, 40).astype(np.float32)
  boxes = np.asarray(jax.vmap(lambda k, lam: mixing.cutmix_box(k, lam, 12, 9))(keys, lams))
  for lam, box in zip(lams.tolist(), boxes):
    assert tuple(box.tolist()) in timm_boxes(lam, 12, 9), (lam, box)
    area = (box[1] - box[0]) * (box[3] - box[2])
    assert float(mixing.box_lambda(jnp.asarray(box), 12, 9)) == pytest.approx(1 - area / 108, abs=1e-6)


def test_one_draw_per_batch_has_timms_frequencies_and_beta_moments():
  keys = jax.random.split(jax.random.key(1), 4000)

  def draw(prob, mixup_alpha, cutmix_alpha):
    return jax.vmap(lambda k: mixing.sample_mix(
        k, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, prob=prob, switch_prob=0.5,
        height=32, width=32))(keys)
  both = draw(1.0, 0.8, 1.0)
  use_cutmix, lam = np.asarray(both.use_cutmix), np.asarray(both.lam)
  assert abs(use_cutmix.mean() - 0.5) < 0.03
  mixup_lam = lam[~use_cutmix]  # Beta(0.8, 0.8): mean 1/2, variance 0.8^2 / (1.6^2 * 2.6)
  assert abs(mixup_lam.mean() - 0.5) < 0.02 and abs(mixup_lam.var() - 0.64 / (2.56 * 2.6)) < 0.01
  # CutMix's corrected lambda is the unboxed fraction of its box.
  boxes = np.asarray(both.box)[use_cutmix]
  area = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
  np.testing.assert_allclose(lam[use_cutmix], 1 - area / 1024, atol=1e-6)
  half = draw(0.5, 0.8, 0.0)  # prob 0.5, Mixup only
  unmixed = np.asarray(half.lam) == 1.0
  assert abs(unmixed.mean() - 0.5) < 0.03 and not np.asarray(half.use_cutmix).any()
  assert np.all(np.asarray(draw(0.0, 0.8, 1.0).lam) == 1.0)


def numpy_targets(labels, partner_labels, lam, num_classes, eps):
  """timm's mixup_target: one_hot with on = 1 - eps + eps / C, off = eps / C."""
  def one_hot(y):
    t = np.full((len(y), num_classes), eps / num_classes)
    t[np.arange(len(y)), y] = 1 - eps + eps / num_classes
    return t
  return lam * one_hot(labels) + (1 - lam) * one_hot(partner_labels)


def test_targets_and_mixed_loss_are_timms_soft_target_cross_entropy():
  from sslax import losses
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 5, 6)
  logits = rng.normal(size=(6, 5)).astype(np.float32)
  targets = numpy_targets(labels, labels[::-1], 0.35, 5, 0.1)
  np.testing.assert_allclose(mixing.mixed_targets(labels, labels[::-1], 0.35, 5, 0.1), targets, atol=1e-6)
  log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  soft_ce = np.mean(np.sum(-targets * log_probs, axis=1))  # timm's SoftTargetCrossEntropy
  mixed = (0.35 * losses.label_smoothed_cross_entropy(logits, labels, 0.1)
           + 0.65 * losses.label_smoothed_cross_entropy(logits, labels[::-1], 0.1))
  assert float(mixed) == pytest.approx(soft_ce, rel=1e-5)
  torch = pytest.importorskip("torch", reason="torch and torchvision are the optional bench/interop extras; CI installs neither")
  timm_mixup = pytest.importorskip("timm.data.mixup", reason="timm (the reference implementation compared with) is the optional interop extra; CI does not install it")
  expected = timm_mixup.mixup_target(torch.tensor(labels), 5, lam=0.35, smoothing=0.1).numpy()
  np.testing.assert_allclose(targets, expected, atol=1e-6)


# ----------------------------------------------------------------------------
# Stochastic depth
# ----------------------------------------------------------------------------

def test_drop_path_zeroes_or_scales_each_example_by_the_numpy_formula():
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2000, 3, 2)), jnp.float32)
  keys = jax.random.split(jax.random.key(5), 2000)
  out = np.asarray(drop_path(x, keys, 0.25))
  kept = np.all(out != 0, axis=(1, 2))
  expected = np.where(kept[:, None, None], np.asarray(x) / (1 - 0.25), 0.0)  # timm: x.div(keep) * mask
  np.testing.assert_allclose(out, expected, rtol=1e-6)
  assert abs(kept.mean() - 0.75) < 0.03
  np.testing.assert_array_equal(drop_path(x, keys, 0.0), x)
  np.testing.assert_array_equal(drop_path(x, None, 0.25), x)


def tiny_vit(rate):
  return ViT(patch_size=4, hidden_dim=16, depth=4, num_heads=2, mlp_dim=32, pool="cls", drop_path_rate=rate)


def test_drop_path_rates_are_linear_over_depth_and_off_at_rate_zero_and_in_evaluation():
  x = jnp.asarray(np.random.default_rng(4).normal(size=(6, 8, 8, 3)), jnp.float32)
  keys = jax.random.split(jax.random.key(6), 6)
  params = tiny_vit(0.0).init(jax.random.key(0), x, train=False)
  dropped = tiny_vit(0.3)
  # The same parameters: drop path adds none.
  assert jax.tree.structure(dropped.init(jax.random.key(0), x, train=False)) == jax.tree.structure(params)
  rates = [block.drop_path for block in dropped.bind(params).blocks]
  np.testing.assert_allclose(rates, np.linspace(0, 0.3, 4))  # timm: torch.linspace(0, p, depth)
  reference = tiny_vit(0.0).apply(params, x, train=False)
  np.testing.assert_array_equal(tiny_vit(0.0).apply(params, x, train=True, drop_keys=keys), reference)
  np.testing.assert_array_equal(dropped.apply(params, x, train=False, drop_keys=keys), reference)
  trained = dropped.apply(params, x, train=True, drop_keys=keys)
  assert np.any(np.abs(np.asarray(trained) - np.asarray(reference)) > 1e-4)
  # Each example's draw is its own: the batch reversed gives the same rows reversed.
  np.testing.assert_allclose(dropped.apply(params, x[::-1], train=True, drop_keys=keys[::-1]),
                             np.asarray(trained)[::-1], rtol=1e-5, atol=1e-6)
  # Without keys the Flax rng stream "drop_path" drives it.
  assert dropped.apply(params, x, train=True, rngs={"drop_path": jax.random.key(1)}).shape == (6, 16)


def test_a_block_keeps_or_drops_each_branch_with_its_own_rate():
  """Depth 2, rate 0.9: block 0 has rate 0, block 1 rate 0.9. With block 1's both branches
  dropped for an example, the ViT's output is block 0's output through the final norm."""
  x = jnp.asarray(np.random.default_rng(5).normal(size=(64, 8, 8, 3)), jnp.float32)
  keys = jax.random.split(jax.random.key(8), 64)
  model = ViT(patch_size=4, hidden_dim=16, depth=2, num_heads=2, mlp_dim=32, drop_path_rate=0.9)
  params = model.init(jax.random.key(0), x, train=False)
  out = np.asarray(model.apply(params, x, train=True, drop_keys=keys))

  def after_first_block(module, x):
    tokens = module.with_cls(module.embed(x))
    tokens, _ = module.blocks[0](tokens)
    return module.norm(tokens)[:, 0]
  first_only = np.asarray(model.apply(params, x, method=after_first_block))
  block_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
  keep = [np.asarray(jax.vmap(lambda k, b=b: jax.random.bernoulli(jax.random.fold_in(k, b), 0.1))(block_keys))
          for b in (0, 1)]  # the attention branch, then the MLP branch
  both_dropped = ~keep[0] & ~keep[1]
  assert both_dropped.sum() > 40
  np.testing.assert_allclose(out[both_dropped], first_only[both_dropped], rtol=1e-5, atol=1e-5)
  assert np.all(np.abs(out[~both_dropped] - first_only[~both_dropped]).max(axis=1) > 1e-3)


# ----------------------------------------------------------------------------
# The supervised loss with everything on: one device and four
# ----------------------------------------------------------------------------

def vit_supervised_config():
  config = tiny_config("")
  config.model = ml_model()
  config.data.num_classes = 5
  config.method = get_method("supervised").defaults()
  config.method.update(dict(label_smoothing=0.1, mixup_alpha=0.8, cutmix_alpha=1.0,
                            randaugment_layers=1))
  return config


def ml_model():
  from sslax.models import encoder_config
  return encoder_config("vit", patch_size=4, hidden_dim=16, depth=2, num_heads=2, mlp_dim=32,
                        pool="gap", drop_path_rate=0.2)


def test_supervised_loss_with_every_regularizer_is_the_same_on_one_and_four_devices():
  config = vit_supervised_config()
  method = get_method("supervised")
  model = method.build(config)
  rng = np.random.default_rng(6)
  views = jnp.asarray(rng.normal(size=(8, 8, 8, 1)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 5, 8), jnp.int32)
  keys = jax.random.split(jax.random.key(9), 8)
  variables = model.init(jax.random.key(0), views, train=False)
  variables = {"params": variables["params"], "batch_stats": {}}

  def loss_and_grad(views, labels, keys, axis_name):
    def fn(params):
      inputs = StepInputs(views=[views], labels=labels, step=jnp.int32(3), state={}, keys=keys,
                          pixel_mean=(0.3,), pixel_std=(0.4,))
      value, _ = method.loss(model, {"params": params, "batch_stats": {}}, inputs, config, axis_name)
      return value
    return jax.value_and_grad(fn)(variables["params"])

  one = jax.jit(lambda v, y, k: loss_and_grad(v, y, k, None))(views, labels, keys)
  mesh = parallel.make_mesh(4)
  spec = jax.sharding.PartitionSpec(parallel.DATA_AXIS)
  four = jax.jit(jax.shard_map(lambda v, y, k: loss_and_grad(v, y, k, parallel.DATA_AXIS), mesh=mesh,
                               in_specs=(spec, spec, spec), out_specs=jax.sharding.PartitionSpec()))(
      views, labels, keys)
  assert np.isfinite(float(one[0]))
  np.testing.assert_allclose(float(four[0]), float(one[0]), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(four[1]), jax.tree.leaves(one[1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # The regularizers act: without them the loss differs.
  config.method.update(dict(mixup_alpha=0.0, cutmix_alpha=0.0, randaugment_layers=0))
  off = jax.jit(lambda v, y, k: loss_and_grad(v, y, k, None))(views, labels, keys)
  assert abs(float(off[0]) - float(one[0])) > 1e-4


# ----------------------------------------------------------------------------
# A tiny fine-tuning run with MAE's recipe switched on
# ----------------------------------------------------------------------------

def test_tiny_fine_tuning_with_every_regularizer_finishes_with_finite_losses(tiny_fashion_mnist, tmp_path):
  config = tiny_config(tiny_fashion_mnist)
  config.model = ml_model()
  config.model.drop_path_rate = 0.0
  config.model.pool = "cls"
  config.finetune.update(finetune.mae_vit_b_recipe(steps_per_epoch=1))
  config.finetune.update(dict(init="random", batch_size=16, total_steps=3, warmup_steps=1,
                              checkpoint_every_steps=100))
  config.finetune.view.crop_scale = (0.5, 1.0)
  results = finetune.finetune_latest(config, str(tmp_path))
  with open(os.path.join(tmp_path, "finetune_random_init", "metrics.jsonl")) as f:
    losses = [r["loss"] for r in map(json.loads, f)]
  assert len(losses) == 3 and np.all(np.isfinite(losses)), losses
  assert results["steps"] == 3 and 0 <= results["accuracy"] <= 1
  assert results["settings"]["mixup_alpha"] == 0.8 and results["settings"]["drop_path"] == 0.1


def test_mae_global_pool_restarts_the_final_norm_as_maes_fresh_fc_norm():
  """MAE's global_pool drops the pretrained `norm` for a new fc_norm (weight 1, bias 0); the
  other encoder parameters are the pretrained ones. Without the pool, all are."""
  from sslax import step as step_lib
  config = vit_supervised_config()
  config.model.pool = "cls"
  encoder = {"cls": np.full((1, 1, 16), 0.5, np.float32),
             "norm": {"scale": np.full(16, 2.0, np.float32), "bias": np.full(16, 3.0, np.float32)}}
  state = step_lib.TrainState(step=np.int32(4), params={"encoder": encoder, "classifier": {}},
                              batch_stats={}, opt_state={}, method_state={})
  config.finetune.pool = "gap"
  started = finetune.pretrained_encoder(config, state)["params"]["encoder"]
  np.testing.assert_array_equal(started["norm"]["scale"], np.ones(16))
  np.testing.assert_array_equal(started["norm"]["bias"], np.zeros(16))
  np.testing.assert_array_equal(started["cls"], encoder["cls"])
  config.finetune.pool = ""
  kept = finetune.pretrained_encoder(config, state)["params"]["encoder"]
  np.testing.assert_array_equal(kept["norm"]["scale"], encoder["norm"]["scale"])


@pytest.mark.parametrize("model_name, key, value, message", [
    ("convnet", "drop_path", 0.1, "finetune.drop_path.*stochastic depth is the ViT's"),
    ("convnet", "pool", "gap", "finetune.pool.*CLS token"),
    ("vit", "mixup_alpha", -1.0, "finetune.mixup_alpha"),
    ("vit", "randaugment_layers", -1, "finetune.randaugment_layers"),
    ("vit", "randaugment_magnitude", 11.0, "finetune.randaugment_magnitude"),
])
def test_regularizer_settings_that_cannot_work_stop_at_validation(tiny_fashion_mnist, model_name, key, value, message):
  from sslax import config as config_lib
  from sslax.errors import ConfigError
  config = tiny_config(tiny_fashion_mnist)
  if model_name == "vit":
    config.model = ml_model()
  config.finetune[key] = value
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(config)
