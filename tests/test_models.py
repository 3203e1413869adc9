"""Tests for sslax.models: shapes, parameter counts, cross-device BN, configs.

Reference facts used here (independent of this code):
  * torchvision parameter counts with the 1000-way ``fc`` layer removed:
    resnet18 11,689,512 - 513,000 = 11,176,512;
    resnet34 21,797,672 - 513,000 = 21,284,672;
    resnet50 25,557,032 - 2,049,000 = 23,508,032.
    (BN's scale and shift are parameters in both libraries; running statistics
    are buffers / ``batch_stats``.)
  * BatchNorm over a batch split across devices, with statistics averaged over
    the device axis, equals BatchNorm over the whole batch on one device.

Big models are only traced (``jax.eval_shape``), never run, to keep this fast.
"""

import json
import os
import subprocess
import sys
import textwrap

import flax.linen
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sslax.models import (
  ENCODERS,
  MLP,
  ConvNet,
  ResNet,
  build_encoder,
  encoder_config,
  feature_dim,
  resnet18,
  resnet34,
  resnet50,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def abstract_variables(model, shape):
  """Variables as ShapeDtypeStructs: traced, never computed."""
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))


def init(model, x):
  """Jitted ``model.init``, compiled fast.

  Eager flax runs op by op (many tiny compiles). And with jax's default
  ``jax_threefry_partitionable=True`` XLA CPU compiles random initialisers very
  slowly (measured: 20 small ``jax.random.normal`` calls 23 s vs 2 s; a small
  ResNet's init 10-15 s vs 2-4 s). Which random numbers come out does not
  matter here.
  """
  with jax.threefry_partitionable(False):
    return jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)


def apply_train(model, variables, x):
  """Jitted train-mode forward: ``(features, {"batch_stats": ...})``."""
  return jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)


def apply_eval(model, variables, x):
  return jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)


def num_params(variables):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))


# ----------------------------------------------------------------- ResNet ---


@pytest.mark.parametrize(
  "factory, expected",
  [
    (resnet18, 11_176_512),
    (resnet34, 21_284_672),
    (resnet50, 23_508_032),
  ],
)
def test_resnet_param_count_matches_torchvision(factory, expected):
  variables = abstract_variables(factory(), (1, 224, 224, 3))
  assert num_params(variables) == expected


def test_cifar_stem_only_changes_the_first_conv():
  # 7x7x3x64 kernel (9,408) replaced by 3x3x3x64 (1,728); everything else equal.
  variables = abstract_variables(resnet18(stem="cifar"), (1, 32, 32, 3))
  assert num_params(variables) == 11_176_512 - 9_408 + 1_728


@pytest.mark.parametrize(
  "factory, stem, hw, dim",
  [
    (resnet18, "imagenet", 224, 512),
    (resnet18, "cifar", 32, 512),
    (resnet34, "cifar", 32, 512),
    (resnet50, "imagenet", 224, 2048),
    (resnet50, "cifar", 32, 2048),
  ],
)
def test_resnet_feature_shapes(factory, stem, hw, dim):
  model = factory(stem=stem)
  variables = abstract_variables(model, (2, hw, hw, 3))
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, hw, hw, 3)), train=False), variables)
  assert out.shape == (2, dim)
  assert out.dtype == jnp.float32


def test_width_multiplier_scales_features():
  assert feature_dim(resnet50(width_multiplier=2.0), (64, 64, 3)) == 4096
  assert feature_dim(resnet18(width_multiplier=0.5), (32, 32, 3)) == 256


def test_resnet_spatial_reduction():
  # ImageNet stem: /4 before stage 1, then /2 per later stage -> /32 in total.
  # CIFAR stem: no reduction before stage 1 -> /8 for 4 stages.
  def last_map_shape(stem, hw):
    model = ResNet(stage_sizes=(1, 1, 1, 1), num_filters=8, stem=stem)
    x = jnp.zeros((1, hw, hw, 3))
    _, state = jax.eval_shape(
      lambda: model.init_with_output(jax.random.key(0), x, train=False, capture_intermediates=True)
    )
    return state["intermediates"]["stage4_block1"]["__call__"][0].shape

  assert last_map_shape("imagenet", 224) == (1, 7, 7, 64)
  assert last_map_shape("cifar", 32) == (1, 4, 4, 64)


@pytest.mark.parametrize("block, stem", [("basic", "cifar"), ("bottleneck", "imagenet")])
def test_small_resnet_runs_and_updates_batch_stats(block, stem):
  model = ResNet(stage_sizes=(1, 1), block=block, num_filters=8, stem=stem)
  x = jax.random.normal(jax.random.key(1), (4, 16, 16, 3)) + 1.0
  variables = init(model, x)
  feats, updates = apply_train(model, variables, x)
  assert feats.shape == (4, 16 * (4 if block == "bottleneck" else 1))
  assert np.all(np.isfinite(feats))
  before = variables["batch_stats"]["stem_bn"]["mean"]
  after = updates["batch_stats"]["stem_bn"]["mean"]
  assert not np.allclose(before, after)
  # The running mean moves a tenth of the way (momentum 0.9) to the batch mean of the stem
  # convolution's output, computed here with lax's convolution from the stem's kernel.
  kernel = variables["params"]["stem_conv"]["kernel"]
  stride, pad = (2, 3) if stem == "imagenet" else (1, 1)
  stem_out = jax.lax.conv_general_dilated(x, kernel, (stride, stride), [(pad, pad)] * 2,
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(after, 0.9 * before + 0.1 * np.asarray(stem_out).mean((0, 1, 2)),
                             rtol=1e-4, atol=1e-6)
  # Eval mode uses the running averages: no batch dependence.
  single = apply_eval(model, variables, x[:1])
  np.testing.assert_allclose(single, apply_eval(model, variables, x)[:1], rtol=1e-5, atol=1e-5)


def test_zero_init_last_bn():
  def block_scales(zero_init):
    model = ResNet(
      stage_sizes=(1, 1), block="basic", num_filters=4, stem="cifar", zero_init_last_bn=zero_init
    )
    params = init(model, jnp.zeros((1, 8, 8, 3)))["params"]
    block = params["stage2_block1"]
    return block["BatchNorm_1"]["scale"], block["proj_bn"]["scale"]

  last, proj = block_scales(True)
  assert np.all(last == 0) and np.all(proj == 1)  # shortcut BN is not zeroed
  last, _ = block_scales(False)
  assert np.all(last == 1)


def test_bfloat16_compute_keeps_float32_params():
  model = ResNet(stage_sizes=(1, 1), num_filters=8, stem="cifar", dtype=jnp.bfloat16)
  x = jnp.ones((2, 8, 8, 3))
  variables = init(model, x)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
  feats, _ = apply_train(model, variables, x)
  assert feats.dtype == jnp.float32


# ---------------------------------------------------------------- ConvNet ---


@pytest.mark.parametrize(
  "kwargs, shape, dim",
  [
    ({}, (28, 28, 1), 128),
    ({"pool": "flatten"}, (28, 28, 1), 4 * 4 * 128),  # 28 -> 14 -> 7 -> 4
    ({"pool": "flatten"}, (32, 32, 3), 4 * 4 * 128),  # 32 -> 16 -> 8 -> 4
    ({"pool": "flatten", "stem_stride": 1, "downsample": "conv"}, (28, 28, 1), 7 * 7 * 128),
    ({"pool": "flatten", "downsample": "avgpool"}, (28, 28, 1), 4 * 4 * 128),
    ({"widths": (16, 32), "blocks_per_stage": 2}, (32, 32, 3), 32),
    ({"widths": (16, 32), "pool": "flatten", "stem_stride": 1}, (32, 32, 3), 16 * 16 * 32),
  ],
)
def test_convnet_shapes(kwargs, shape, dim):
  model = ConvNet(**kwargs)
  x = jax.random.normal(jax.random.key(0), (3,) + shape)
  variables = init(model, x)
  feats, _ = apply_train(model, variables, x)
  assert feats.shape == (3, dim)
  assert np.all(np.isfinite(feats))
  assert feature_dim(model, shape) == dim


@pytest.mark.parametrize("side", [1, 2, 5])
def test_conv3x3_equals_flax_conv_on_tiny_and_normal_maps(side):
  """The patch-matmul path (maps <= 2x2) and the convolution path both compute
  nn.Conv(3x3, padding 1, no bias) with the same parameter: values and gradients."""
  from sslax.models.convnet import Conv3x3

  x = jax.random.normal(jax.random.key(1), (4, side, side, 6))
  ours = Conv3x3(5)
  kernel = ours.init(jax.random.key(2), x)["params"]["kernel"]
  ref = flax.linen.Conv(5, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)

  def loss(apply, kernel, x):
    return jnp.sum(jnp.sin(apply({"params": {"kernel": kernel}}, x)))
  got = jax.value_and_grad(lambda k, x: loss(ours.apply, k, x), argnums=(0, 1))(kernel, x)
  want = jax.value_and_grad(lambda k, x: loss(ref.apply, k, x), argnums=(0, 1))(kernel, x)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
  for g, w in zip(got[1], want[1]):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_convnet_layer_count():
  params = abstract_variables(ConvNet(widths=(8, 16, 32), blocks_per_stage=2), (1, 28, 28, 1))["params"]
  assert sum(k.startswith("stage") and "conv" in k for k in params) == 6


# ------------------------------------------------------------------ heads ---


def test_mlp_heads():
  x = jax.random.normal(jax.random.key(0), (4, 32))
  # SimCLR v1: Dense-BN-ReLU, Dense.
  v1 = MLP(hidden_dims=(64,), out_dim=16)
  params = abstract_variables(v1, x.shape)["params"]
  assert sorted(params) == ["bn1", "dense1", "dense_out"]
  assert "bias" not in params["dense1"] and "bias" in params["dense_out"]
  # SimCLR v2: 3 layers, BN on the output.
  v2 = MLP(hidden_dims=(64, 64), out_dim=16, last_bn=True)
  out, _ = apply_train(v2, init(v2, x), x)
  assert out.shape == (4, 16)
  # Train-mode output BN: every feature has zero batch mean.
  np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
  # No BN at all: every Dense has a bias, no batch_stats.
  plain = MLP(hidden_dims=(64,), out_dim=16, use_bn=False)
  variables = abstract_variables(plain, x.shape)
  assert "batch_stats" not in variables
  assert all("bias" in layer for layer in variables["params"].values())


# ------------------------------------------------- cross-device BatchNorm ---

# Runs in a subprocess: the 8 fake CPU devices must be configured before JAX
# initialises its backend, which pytest's process has already done.
SYNC_BN_SCRIPT = textwrap.dedent("""
    import json
    import flax.linen as nn
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from sslax.models import MLP, ConvNet, ResNet

    class Net(nn.Module):  # both encoders side by side + a head: every BN, one compile
      bn_axis_name: str | None

      @nn.compact
      def __call__(self, x, train):
        # zero_init_last_bn=False: zero-scaled BNs would hide their statistics.
        h1 = ResNet(stage_sizes=(1, 1), block="bottleneck", num_filters=4, stem="cifar",
                    zero_init_last_bn=False, bn_axis_name=self.bn_axis_name)(x, train)
        h2 = ConvNet(widths=(8, 16), bn_axis_name=self.bn_axis_name)(x, train)
        h = jnp.concatenate([h1, h2], axis=-1)
        return MLP((16,), 8, last_bn=True, bn_axis_name=self.bn_axis_name)(h, train)

    mesh = jax.make_mesh((8,), ("data",))
    x = jax.random.normal(jax.random.key(0), (16, 8, 8, 3)) * 2.0 + 1.0
    # Loss = sum(out * c): its gradient also flows through the BN statistics.
    c = jax.random.normal(jax.random.key(2), (16, 8))
    ref_model = Net(None)
    with jax.threefry_partitionable(False):  # ~10x faster to compile on CPU
      variables = jax.jit(lambda x: ref_model.init(jax.random.key(1), x, train=False))(x)

    def loss_fn(params, batch_stats, x, c, model):
      out, upd = model.apply({"params": params, "batch_stats": batch_stats}, x,
                             train=True, mutable=["batch_stats"])
      return jnp.sum(out * c), (out, upd["batch_stats"])

    grad_fn = jax.grad(loss_fn, has_aux=True)
    ref_grads, (ref_out, ref_stats) = jax.jit(grad_fn, static_argnums=4)(
        variables["params"], variables["batch_stats"], x, c, ref_model)

    # -> (grads or None, out [16, 8], batch_stats with a leading [8] device axis)
    def run_sharded(model, with_grads):
      def step(variables, x_local, c_local):  # x_local: [16 / 8, 8, 8, 3]
        if with_grads:
          # The params are replicated (invariant over "data"), so shard_map's
          # autodiff sums their per-device gradients: the full-batch gradient.
          grads, (out, stats) = grad_fn(variables["params"], variables["batch_stats"],
                                        x_local, c_local, model)
        else:
          grads = None
          out, upd = model.apply(variables, x_local, train=True, mutable=["batch_stats"])
          stats = upd["batch_stats"]
        # A leading device axis so the per-device statistics all come back.
        return grads, out, jax.tree.map(lambda a: a[None], stats)

      sharded = jax.jit(jax.shard_map(
          step, mesh=mesh, in_specs=(P(), P("data"), P("data")),
          out_specs=(P(), P("data"), P("data"))))
      return sharded(jax.device_put(variables, NamedSharding(mesh, P())),
                     jax.device_put(x, NamedSharding(mesh, P("data"))),
                     jax.device_put(c, NamedSharding(mesh, P("data"))))

    def max_err(a, b):  # b broadcasts against a's leading device axis
      return max(float(jnp.max(jnp.abs(u - v)))
                 for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    result = {"out_scale": float(jnp.max(jnp.abs(ref_out))),
              "grad_scale": max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(ref_grads))}
    # Forward only without axis_name: showing the outputs differ is enough there.
    for axis_name, with_grads in (("data", True), (None, False)):
      grads, out, stats = run_sharded(Net(axis_name), with_grads)
      result[str(axis_name)] = {
          "out_err": max_err(out, ref_out),
          "stat_err": max_err(stats, jax.tree.map(lambda a: a[None], ref_stats)),
          "grad_err": max_err(grads, ref_grads) if with_grads else None,
      }
    print("RESULT" + json.dumps(result))
""")


@pytest.fixture(scope="module")
def sync_bn_result():
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
    PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
  )
  proc = subprocess.run(
    [sys.executable, "-c", SYNC_BN_SCRIPT], env=env, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1]
  return json.loads(line[len("RESULT") :])


def test_sync_bn_matches_single_device_full_batch(sync_bn_result):
  r = sync_bn_result["data"]
  assert sync_bn_result["out_scale"] > 0.1  # not a trivial 0 == 0 comparison
  assert r["out_err"] < 1e-4, r
  assert r["stat_err"] < 1e-4, r
  assert r["grad_err"] < 1e-5 * sync_bn_result["grad_scale"], r


def test_per_device_bn_differs_from_full_batch(sync_bn_result):
  # Without axis_name each device normalises with its own 2 examples: the test
  # above would catch a model that ignored bn_axis_name.
  r = sync_bn_result["None"]
  assert r["out_err"] > 1e-2, r
  assert r["stat_err"] > 1e-3, r


# ------------------------------------------------------ build_encoder ---


@pytest.mark.parametrize(
  "cfg, shape, dim",
  [
    ({"name": "resnet18", "stem": "cifar"}, (32, 32, 3), 512),
    ({"name": "resnet34"}, (64, 64, 3), 512),
    ({"name": "resnet50", "width_multiplier": 2.0}, (64, 64, 3), 4096),
    ({"name": "convnet", "widths": [16, 32], "pool": "flatten"}, (28, 28, 1), 7 * 7 * 32),
    ({"name": "convnet"}, (28, 28, 1), 128),
  ],
)
def test_build_encoder(cfg, shape, dim):
  model = build_encoder(ml_collections.ConfigDict(cfg), bn_axis_name="data")
  assert model.bn_axis_name == "data"
  assert feature_dim(model, shape) == dim
  assert feature_dim(model, (5,) + shape) == dim


def test_encoder_registry():
  assert sorted(ENCODERS) == ["convnet", "cpc_encoder", "gru_stack", "resnet18", "resnet34",
                              "resnet50", "sequence_transformer", "skipgram_embeddings", "vit",
                              "vit_base", "vit_small", "vit_tiny"]


def test_vit_sizes_are_the_papers():
  """ViT-Tiny/Small/Base (DeiT; Dosovitskiy et al. 2021 table 1): width, depth, heads, MLP 4x."""
  for name, (width, depth, heads) in {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6),
                                      "vit_base": (768, 12, 12)}.items():
    vit = build_encoder(encoder_config(name, patch_size=16))
    assert (vit.hidden_dim, vit.depth, vit.num_heads, vit.mlp_dim or 4 * vit.hidden_dim) == (
        width, depth, heads, 4 * width)
    params = jax.eval_shape(lambda v=vit: v.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3))))
    count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    if name == "vit_base":  # 86.6 M in timm's vit_base_patch16_224 with its 1000-class head
      assert abs(count - (86_567_656 - 769_000)) < 200_000, count


def test_build_encoder_unknown_name():
  with pytest.raises(ValueError, match="resnet17") as err:
    build_encoder(ml_collections.ConfigDict({"name": "resnet17"}))
  for valid in ENCODERS:
    assert valid in str(err.value)


def test_build_encoder_unknown_key():
  cfg = ml_collections.ConfigDict({"name": "convnet", "width": (32, 64)})
  with pytest.raises(ValueError, match="'width'") as err:
    build_encoder(cfg)
  assert "widths" in str(err.value) and "blocks_per_stage" in str(err.value)
  # A ResNet key is not a ConvNet key and vice versa; keys fixed by a factory
  # (resnet18's stage_sizes) and the argument-only bn_axis_name are refused too.
  for bad in (
    {"name": "convnet", "stem": "cifar"},
    {"name": "resnet18", "widths": (8,)},
    {"name": "resnet18", "stage_sizes": (1, 1)},
    {"name": "resnet50", "bn_axis_name": "data"},
  ):
    with pytest.raises(ValueError, match="valid keys"):
      build_encoder(ml_collections.ConfigDict(bad))
