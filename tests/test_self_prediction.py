"""The ViT, its attention and the masked-prediction methods (sslax/models/vit.py,
attention.py, sslax/methods/mae.py, data2vec.py) against independent references:
attention against a NumPy softmax(QK^T/sqrt(d))V per head, patchify against NumPy
slicing, the masks' counts and per-key reproducibility, MAE's loss against its NumPy
formula (and blind to the visible patches), data2vec's targets against a NumPy average
of normalized block outputs; through the trainer, the same losses (and teacher) on 1
and 8 devices, and the ViT as the encoder of the joint-embedding methods."""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import assemble, losses, parallel, train
from sslax import step as step_lib
from sslax.data import pipeline
from sslax.errors import ConfigError
from sslax.methods import data2vec, get_method, mae
from sslax.methods.common.masking import random_masking
from sslax.methods.common.patches import patchify, unpatchify
from sslax.methods.common.tokens import gather_tokens
from sslax.models import build_encoder, encoder_config
from sslax.models.attention import MultiHeadAttention
from sslax.models.vit import sincos_2d
from tests.helpers import tiny_config

TINY_VIT = dict(patch_size=7, hidden_dim=16, depth=2, num_heads=2)


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def method_config(name: str, data_dir: str, num_devices: int = 1):
  """tiny_config with `name`'s defaults on a tiny ViT (16 patches of 7x7) and one view."""
  config = tiny_config(data_dir)
  config.num_devices = num_devices
  config.model = encoder_config("vit", **TINY_VIT)
  config.method = get_method(name).defaults()
  if name == "mae":
    config.method.update(decoder_dim=8, decoder_depth=1, decoder_heads=2)
  elif name == "data2vec":
    config.method.update(top_k_blocks=2, base_momentum=0.9)
  else:
    config.method.projector_hidden = (32,)
    config.method.projector_dim = 16
  if get_method(name).num_views == 1:
    with config.unlocked():
      del config.views["view2"]
  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 1e-3
  config.eval.random_init_baseline = False
  config.eval.raw_pixel_baseline = False
  return config


def keys(n: int, seed: int = 0) -> jax.Array:
  return jax.random.split(jax.random.key(seed), n)


# ----------------------------------------------------------------------------
# Attention and the ViT
# ----------------------------------------------------------------------------

def numpy_attention(x, params, num_heads, mask=None, causal=False):
  """softmax(Q K^T / sqrt(d) + masks) V per head (Vaswani et al. 2017, eq. 1), then the
  output projection; float64."""
  x = x.astype(np.float64)
  b, t, width = x.shape
  d = width // num_heads
  w, bias = np.asarray(params["qkv"]["kernel"], np.float64), np.asarray(params["qkv"]["bias"], np.float64)
  out = np.zeros((b, t, num_heads, d))
  for h in range(num_heads):
    q, k, v = (x @ w[:, i, h] + bias[i, h] for i in range(3))           # [b, t, d]
    logits = q @ k.transpose(0, 2, 1) / np.sqrt(d)                      # [b, t, t]
    if mask is not None:
      logits = np.where(mask[:, None, :], logits, -np.inf)
    if causal:
      logits = np.where(np.tril(np.ones((t, t), bool))[None], logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out[:, :, h] = weights @ v
  wo, bo = np.asarray(params["out"]["kernel"], np.float64), np.asarray(params["out"]["bias"], np.float64)
  return np.einsum("bthd,hdo->bto", out, wo) + bo


@pytest.mark.parametrize("causal,with_mask", [(False, False), (False, True), (True, False)])
def test_attention_matches_numpy(causal, with_mask):
  x = np.random.default_rng(0).normal(size=(3, 5, 12)).astype(np.float32)
  mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 1, 1, 0]], bool) if with_mask else None
  module = MultiHeadAttention(num_heads=3, causal=causal)
  variables = module.init(jax.random.key(1), jnp.asarray(x))
  out = module.apply(variables, jnp.asarray(x), None if mask is None else jnp.asarray(mask))
  np.testing.assert_allclose(np.asarray(out), numpy_attention(x, variables["params"], 3, mask, causal),
                             rtol=1e-4, atol=1e-5)


def test_sincos_position_embeddings_follow_the_formula():
  table = sincos_2d(3, 4, 8)                                   # 12 positions, 8 channels
  omega = 1.0 / 10000 ** (np.arange(2) / 2)
  for pos in range(12):
    row, col = divmod(pos, 4)
    expected = np.concatenate([np.sin(row * omega), np.cos(row * omega),
                               np.sin(col * omega), np.cos(col * omega)])
    np.testing.assert_allclose(table[pos], expected, atol=1e-6)


@pytest.mark.parametrize("pool", ["cls", "avg"])
def test_vit_output_and_pooling(pool):
  vit = build_encoder(encoder_config("vit", **TINY_VIT, pool=pool, posemb="learned"))
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 28, 28, 1)), jnp.float32)
  variables = vit.init(jax.random.key(0), x)
  assert vit.apply(variables, x).shape == (2, 16)
  tokens = vit.apply(variables, vit.apply(variables, x, method="embed"), method="transform")
  assert tokens.shape == (2, 17 if pool == "cls" else 16, 16)
  pooled = np.asarray(tokens[:, 0] if pool == "cls" else tokens.mean(1))
  np.testing.assert_allclose(np.asarray(vit.apply(variables, x)), pooled, rtol=1e-5, atol=1e-6)
  assert ("cls" in variables["params"]) == (pool == "cls")
  assert variables["params"]["pos_embed"]["embedding"].shape == (16, 16)


def test_vit_rejects_an_image_that_is_not_a_multiple_of_the_patch():
  vit = build_encoder(encoder_config("vit", **{**TINY_VIT, "patch_size": 5}))
  with pytest.raises(ValueError, match="patch_size"):
    vit.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


# ----------------------------------------------------------------------------
# Patches and masks
# ----------------------------------------------------------------------------

def test_patchify_matches_numpy_slicing_and_round_trips():
  images = np.random.default_rng(0).normal(size=(2, 12, 8, 3)).astype(np.float32)
  patches = np.asarray(patchify(jnp.asarray(images), 4))
  assert patches.shape == (2, 6, 48)
  for b in range(2):
    for i in range(6):
      r, c = divmod(i, 2)                           # row by row, 2 patches per row
      np.testing.assert_array_equal(patches[b, i], images[b, 4 * r:4 * r + 4, 4 * c:4 * c + 4].reshape(-1))
  np.testing.assert_array_equal(np.asarray(unpatchify(jnp.asarray(patches), 4, 12, 8)), images)


@pytest.mark.parametrize("ratio,num_patches", [(0.75, 49), (0.75, 196), (0.6, 16)])
def test_masking_hides_exactly_the_configured_count_and_follows_the_key(ratio, num_patches):
  keep, mask, restore = map(np.asarray, random_masking(keys(6), num_patches, ratio))
  num_keep = int(num_patches * (1 - ratio))
  assert keep.shape == (6, num_keep) and mask.shape == (6, num_patches)
  np.testing.assert_array_equal(mask.sum(1), num_patches - num_keep)   # same count per example
  for b in range(6):
    assert len(set(keep[b])) == num_keep
    np.testing.assert_array_equal(mask[b, keep[b]], 0)                 # kept = not hidden
    # restore sends every kept patch to its rank among the kept ones, hidden ones after
    np.testing.assert_array_equal(restore[b, keep[b]], np.arange(num_keep))
  assert len({tuple(m) for m in mask}) == 6                             # keys differ -> masks differ
  # Reproducible: the mask of an example depends only on its key.
  again = np.asarray(random_masking(keys(6)[::-1], num_patches, ratio)[1])
  np.testing.assert_array_equal(again, mask[::-1])


def test_a_ratio_that_leaves_no_patch_is_a_config_error():
  with pytest.raises(ConfigError, match="mask_ratio"):
    random_masking(keys(2), 16, 0.99)


def test_gather_tokens_equals_take_along_axis():
  tokens = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, 3)), jnp.float32)
  index = jnp.asarray([[6, 0, 3], [1, 1, 5]])
  np.testing.assert_allclose(np.asarray(gather_tokens(tokens, index)),
                             np.asarray(tokens)[np.arange(2)[:, None], np.asarray(index)], rtol=1e-6)


# ----------------------------------------------------------------------------
# MAE loss
# ----------------------------------------------------------------------------

def numpy_mae_loss(pred, images, mask, patch, norm_pix):
  """The paper's loss: per-patch MSE against (optionally per-patch normalized) pixels,
  averaged over hidden patches only."""
  b, h, w, c = images.shape
  total, count = 0.0, 0.0
  for n in range(b):
    for i in range(mask.shape[1]):
      r, col = divmod(i, w // patch)
      t = images[n, r * patch:(r + 1) * patch, col * patch:(col + 1) * patch].reshape(-1).astype(np.float64)
      if norm_pix:
        t = (t - t.mean()) / np.sqrt(t.var() + 1e-6)
      total += mask[n, i] * np.mean((pred[n, i] - t) ** 2)
      count += mask[n, i]
  return total / count


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_loss_matches_numpy_and_ignores_visible_patches(norm_pix):
  rng = np.random.default_rng(0)
  images = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
  pred = rng.normal(size=(3, 4, 32)).astype(np.float32)
  mask = np.array([[1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 0, 1]], np.float32)
  target = mae.pixel_targets(jnp.asarray(images), 4, norm_pix)
  value = float(losses.masked_patch_mse(jnp.asarray(pred), target, jnp.asarray(mask)))
  np.testing.assert_allclose(value, numpy_mae_loss(pred, images, mask, 4, norm_pix), rtol=1e-5)
  changed = pred.copy()
  changed[mask == 0] += 100.0                                # anything at visible patches
  assert float(losses.masked_patch_mse(jnp.asarray(changed), target, jnp.asarray(mask))) == pytest.approx(value)
  changed[0, 0] += 1.0                                       # a hidden patch moves the loss
  assert float(losses.masked_patch_mse(jnp.asarray(changed), target, jnp.asarray(mask))) != pytest.approx(value)


def test_mae_loss_over_devices_is_the_global_masked_mean():
  rng = np.random.default_rng(1)
  pred, target = rng.normal(size=(2, 4, 5, 6)), rng.normal(size=(2, 4, 5, 6))
  mask = (rng.random((2, 4, 5)) < 0.6).astype(np.float64)
  mask[0] = 0.0
  mask[0, 0, 0] = 1.0                                        # devices with very different counts
  per_device = jax.vmap(lambda p, t, m: losses.masked_patch_mse(p, t, m, "d"), axis_name="d")(
      jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32), jnp.asarray(mask, jnp.float32))
  expected = numpy_mae_loss_flat(pred.reshape(8, 5, 6), target.reshape(8, 5, 6), mask.reshape(8, 5))
  np.testing.assert_allclose(np.asarray(per_device), expected, rtol=1e-5)


def numpy_mae_loss_flat(pred, target, mask):
  return float((((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum())


def test_mae_reconstruction_keeps_the_visible_patches(data_dir):
  config = method_config("mae", data_dir)
  model = mae.build(config)
  variables = step_lib.init_variables(model, config, 1)
  views = jnp.asarray(np.random.default_rng(0).normal(size=(2, 28, 28, 1)), jnp.float32)
  out = {k: np.asarray(v) for k, v in mae.reconstruct(model, variables, views, keys(2), config).items()}
  _, mask, _ = random_masking(keys(2), 16, config.method.mask_ratio)
  pixel_mask = np.asarray(unpatchify(jnp.repeat(mask[:, :, None], 49, axis=2), 7, 28, 28)) > 0
  np.testing.assert_array_equal(out["corrupted"][~pixel_mask], np.asarray(views)[~pixel_mask])
  np.testing.assert_array_equal(out["corrupted"][pixel_mask], 0.0)
  np.testing.assert_allclose(out["reconstruction"][~pixel_mask], np.asarray(views)[~pixel_mask], atol=1e-6)
  assert pixel_mask.mean() == pytest.approx(12 / 16)


def dot_input_dtypes(fn, *args) -> list[tuple[str, ...]]:
  """The input dtypes of every matrix product in fn's jaxpr, nested calls included."""
  found = []

  def visit(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
        found.append(tuple(str(v.aval.dtype) for v in eqn.invars))
      for param in eqn.params.values():
        for sub in param if isinstance(param, (tuple, list)) else [param]:
          if hasattr(sub, "eqns"):
            visit(sub)
          elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):  # a closed jaxpr
            visit(sub.jaxpr)
  visit(jax.make_jaxpr(fn)(*args).jaxpr)
  return found


def test_mae_decoder_computes_in_the_precision_policy_dtype(data_dir):
  """Under config.precision=bfloat16 every matmul of the MAE step's forward, the decoder's
  included (it does more multiply-adds than the encoder), takes bfloat16 inputs, with
  float32 parameters; under float32 none does. The predictions stay close to float32's
  (same parameters: init is deterministic)."""
  from sslax import config as config_lib
  predictions = {}
  for precision in ("float32", "bfloat16"):
    config = method_config("mae", data_dir)
    config.method.update(decoder_dim=16, decoder_depth=2, decoder_heads=2)
    config.precision = precision
    model = mae.build(config_lib.with_precision(config))
    variables = step_lib.init_variables(model, config, 1)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 28, 28, 1)), jnp.float32)
    forward = lambda v, x: model.apply(v, x, keys(4), 0.75, method="forward")[0]  # noqa: E731
    dtypes = dot_input_dtypes(forward, variables, x)
    assert len(dtypes) >= (2 + 2) * 6  # 4 blocks: qkv, scores, weighted sum, out, 2 MLP
    assert {d for pair in dtypes for d in pair} == {precision}, dtypes
    predictions[precision] = np.asarray(forward(variables, x), np.float32)
  np.testing.assert_allclose(predictions["bfloat16"], predictions["float32"], rtol=0.05, atol=0.05)


def test_mae_needs_a_vit(data_dir):
  config = method_config("mae", data_dir)
  config.model = encoder_config("convnet")
  with pytest.raises(ConfigError, match="vit"):
    mae.validate(config)


# ----------------------------------------------------------------------------
# data2vec targets and loss
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("target_norm", ["instance", "layer"])
def test_data2vec_targets_average_the_normalized_top_blocks(data_dir, target_norm):
  config = method_config("data2vec", data_dir)
  config.model.depth = 3
  model = data2vec.build(config)
  variables = step_lib.init_variables(model, config, 1)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 28, 28, 1)), jnp.float32)
  outputs = model.apply(variables, model.apply(variables, x, method=lambda m, x: m.encoder.embed(x)),
                        method=lambda m, t: m.encoder.block_outputs(t))
  top = [np.asarray(o, np.float64) for o in outputs[-2:]]
  axis = 1 if target_norm == "instance" else -1        # over an image's patches / a patch's features
  normalized = [(o - o.mean(axis, keepdims=True)) / np.sqrt(o.var(axis, keepdims=True) + 1e-5) for o in top]
  targets = model.apply(variables, x, 2, target_norm, method="teacher_targets")
  np.testing.assert_allclose(np.asarray(targets), np.mean(normalized, axis=0), rtol=1e-4, atol=1e-5)
  # The block outputs are the MLP outputs before the residual add (the paper's FFN output):
  # block 0's recomputed in NumPy from its input tokens (CLS first, dropped from the output).
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"]["encoder"]["block_0"])
  tokens = np.asarray(model.apply(variables, x, method=lambda m, x: m.encoder.with_cls(m.encoder.embed(x))),
                      np.float64)

  def layer_norm(v, q):
    return (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-6) * q["scale"] + q["bias"]
  h = tokens + numpy_attention(layer_norm(tokens, p["norm1"]), p["attn"], TINY_VIT["num_heads"])
  h = layer_norm(h, p["norm2"]) @ p["mlp"]["fc1"]["kernel"] + p["mlp"]["fc1"]["bias"]
  h = 0.5 * h * (1 + np.vectorize(math.erf)(h / np.sqrt(2)))             # exact GELU
  mlp_out = h @ p["mlp"]["fc2"]["kernel"] + p["mlp"]["fc2"]["bias"]
  np.testing.assert_allclose(np.asarray(outputs[0]), mlp_out[:, 1:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_data2vec_regression_loss_matches_numpy_on_masked_positions(beta):
  rng = np.random.default_rng(0)
  pred, target = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
  mask = np.array([[1, 0, 1, 0, 0], [0, 0, 1, 1, 1]], bool)
  diff = pred - target
  per = diff ** 2 if beta == 0 else np.where(np.abs(diff) < beta, 0.5 * diff ** 2 / beta, np.abs(diff) - beta / 2)
  expected = per.mean(-1)[mask].mean()
  value = losses.masked_regression(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32),
                                 jnp.asarray(mask), beta, None)
  np.testing.assert_allclose(float(value), expected, rtol=1e-5)


# ----------------------------------------------------------------------------
# Through the trainer
# ----------------------------------------------------------------------------

def read_losses(workdir) -> dict[int, float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["loss"] for r in map(json.loads, f)}


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
  out = {}
  for name in ("mae", "data2vec"):
    for devices in (1, 8):
      config = method_config(name, data_dir, devices)
      workdir = str(tmp_path_factory.mktemp(f"{name}_d{devices}"))
      state, _, _ = train.train(config, workdir)
      out[name, devices] = (read_losses(workdir), jax.tree.map(np.asarray, parallel.to_host(state)))
  return out


@pytest.mark.parametrize("name", ["mae", "data2vec"])
def test_same_losses_and_teacher_on_1_and_8_devices(name, runs):
  (losses1, state1), (losses8, state8) = runs[name, 1], runs[name, 8]
  assert sorted(losses1) == [1, 2, 3, 4] and losses1[4] != losses1[1]
  np.testing.assert_allclose([losses8[s] for s in range(1, 5)], [losses1[s] for s in range(1, 5)],
                             rtol=2e-5, atol=1e-6)
  jax.tree_util.tree_map_with_path(compare_without_key_bias, state8.params, state1.params)
  jax.tree_util.tree_map_with_path(compare_without_key_bias, state8.method_state, state1.method_state)


def compare_without_key_bias(path, a, b):
  """The key projection's bias adds q . b_k to every logit of a query alike, which the softmax
  cancels: its gradient is 0 up to rounding, and Adam scales that rounding noise to steps of
  lr, whose signs depend on the reduction order (1 vs 8 devices). Its query and value slices
  are compared like every other parameter."""
  if "qkv" in jax.tree_util.keystr(path) and "bias" in jax.tree_util.keystr(path):
    a, b = a[[0, 2]], b[[0, 2]]  # qkv bias [3, heads, head_dim]: drop the keys' row
  np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_data2vec_teacher_follows_the_ema_of_the_student(runs, data_dir):
  """After 4 steps the teacher is not the student and not the initialization; the
  recursion itself is the shared target transform (tests/test_target_update.py)."""
  _, state = runs["data2vec", 1]
  teacher = state.method_state["teacher"].ema.target["encoder"]
  student = state.params["encoder"]
  init = step_lib.init_variables(data2vec.build(method_config("data2vec", data_dir)),
                              method_config("data2vec", data_dir), 1)["params"]["encoder"]
  k = teacher["block_0"]["mlp"]["fc1"]["kernel"]
  assert not np.allclose(k, student["block_0"]["mlp"]["fc1"]["kernel"])
  assert not np.allclose(k, init["block_0"]["mlp"]["fc1"]["kernel"])


@pytest.mark.parametrize("name", ["simclr", "byol", "moco_v3", "dino"])
def test_vit_is_the_encoder_of_joint_embedding_methods(name, data_dir):
  """One sharded step of each method with the ViT as its backbone: the loss on 2 devices is
  the 1-device one (the global batch's, not each shard's), with a gradient."""
  config = method_config(name, data_dir, 2)
  if name == "dino":
    config.method.out_dim = 32
    config.method.head_hidden = 16
    config.method.head_bottleneck = 8
  results = {}
  for devices in (1, 2):
    mesh = parallel.make_mesh(devices)
    method, source, _, model, state, step_fn, _ = assemble.build(config, mesh)
    batch = next(iter(pipeline.host_batches(source, global_batch=16, seed=0, start_step=0)))
    state, metrics = step_fn(state, parallel.shard_host_batch(
        {k: batch[k] for k in ("image", "label", "position")}, mesh))
    metrics = parallel.to_host(metrics)
    results[devices] = [float(metrics["loss"]), float(metrics["grad_norm"])]
    assert "block_0" in parallel.to_host(state.params)["encoder"]
  assert np.isfinite(results[1]).all() and results[1][1] > 0
  # Summation order differs (2 partial sums + all-reduce): measured up to 2e-5 relative; a
  # per-shard loss would be off by far more. (The gradient norms differ by up to 0.2%, MoCo v3's.)
  np.testing.assert_allclose(results[2][0], results[1][0], rtol=1e-4)


def test_vit_remat_and_bfloat16_compute():
  """remat recomputes blocks in the backward pass: same values and gradients; bfloat16
  compute keeps float32 parameters and stays close to the float32 output."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 28, 28, 1)), jnp.float32)
  plain = build_encoder(encoder_config("vit", **TINY_VIT))
  variables = plain.init(jax.random.key(0), x)
  remat = build_encoder(encoder_config("vit", **TINY_VIT, remat=True))
  grad = lambda m: jax.grad(lambda v: jnp.sum(m.apply(v, x) ** 2))(variables)  # noqa: E731
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), grad(plain), grad(remat))
  bf16 = build_encoder(encoder_config("vit", **TINY_VIT)).clone(dtype=jnp.bfloat16)
  # The graphs, as the ResNet test reads them: only the remat one checkpoints its blocks, and
  # only the bfloat16 one computes in bfloat16 (equal values alone would pass with either ignored).
  for model, rematted in ((plain, False), (remat, True)):
    jaxpr = str(jax.make_jaxpr(lambda v, m=model: jax.grad(lambda v: jnp.sum(m.apply(v, x) ** 2))(v))(variables))
    assert ("checkpoint" in jaxpr or "remat" in jaxpr) == rematted
  # Every matmul in bfloat16 but the attention logits, which sslax/models/attention.py
  # accumulates in float32 for the softmax (one per block); none in the float32 model.
  for model, low in ((bf16, True), (plain, False)):
    outputs = [line.split("dot_general")[0] for line in
               str(jax.make_jaxpr(model.apply)(variables, x)).splitlines() if "dot_general" in line]
    in_bf16 = sum(":bf16[" in out for out in outputs)
    assert (len(outputs) - in_bf16, in_bf16 > 0) == ((TINY_VIT["depth"], True) if low else (len(outputs), False)), outputs
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(bf16.init(jax.random.key(0), x)))
  np.testing.assert_allclose(np.asarray(bf16.apply(variables, x)), np.asarray(plain.apply(variables, x)),
                             rtol=0.05, atol=0.05)
