"""DINO and SwAV (multi-crop, stateful methods) through the trainer on tiny local data:
the same losses and method state (teacher, center, queue) on 1 and 8 devices, resume
equal to an uninterrupted run, the teacher-temperature schedule, frozen last layer /
prototypes, unit-norm prototypes, the queue's contents and order; and the per-tensor
gradient clipping of sslax/optim.py against its definition.

The losses themselves (dino_loss, dino_center_update, sinkhorn_knopp) are tested
against the official code in tests/test_joint_losses.py."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from sslax import assemble, optim, parallel, train
from sslax import checkpoint as checkpoint_lib
from sslax import step as step_lib
from sslax.data import pipeline
from sslax.errors import ConfigError
from sslax.methods import dino, get_method, swav
from sslax.methods.common import networks
from tests.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 16
FREEZE = 2          # last layer / prototypes frozen during steps 0 and 1
TEMP_WARMUP = 3     # DINO teacher temperature 0.04 -> 0.07 over steps 0..2
QUEUE = 2 * BATCH   # SwAV queue: two batches ...
QUEUE_START = 1     # ... filled from step 1 on, so in use from step 3 on


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def method_config(name: str, data_dir: str, num_devices: int = 1):
  """tiny_config with the method, optimizer and view kinds of
  configs/<name>_fashion_mnist.py: 2 global 28 px views + 1 local 12 px view, tiny heads."""
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "configs", f"{name}_fashion_mnist.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  full = module.get_config()
  config = tiny_config(data_dir)
  config.batch_size = BATCH
  config.num_devices = num_devices
  config.method = full.method
  config.views = ml_collections.ConfigDict(
      {k: full.views[k] for k in ("global1", "global2", "local1")})
  config.optimizer = full.optimizer
  config.optimizer.warmup_steps = 1
  m = config.method
  if name == "dino":
    m.out_dim, m.head_hidden, m.head_bottleneck = 32, 16, 8
    m.freeze_last_layer_steps = FREEZE
    m.warmup_teacher_temp, m.teacher_temp, m.warmup_teacher_temp_steps = 0.04, 0.07, TEMP_WARMUP
  else:
    m.projector_hidden, m.projector_dim, m.num_prototypes = (16,), 8, 12
    m.freeze_prototypes_steps = FREEZE
    m.queue_length, m.queue_start_step = QUEUE, QUEUE_START
  return config


def read_metrics(workdir) -> dict[int, dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r for r in map(json.loads, f)}


def host(tree):
  return jax.tree.map(np.asarray, jax.device_get(tree))


def run(name, data_dir, workdir, num_devices=1, total_steps=None):
  config = method_config(name, data_dir, num_devices)
  if total_steps is not None:
    config.total_steps = total_steps
  state, model, _ = train.train(config, workdir)
  return dict(state=host(state), metrics=read_metrics(workdir), model=model, config=config,
              workdir=workdir)


def restore(workdir, step, like):
  """The checkpoint of `step` in WORKDIR, restored into the structure of state `like`."""
  checkpointer = checkpoint_lib.Checkpointer(workdir, async_save=False)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  state = checkpointer._manager.restore(step, args=ocp.args.StandardRestore(abstract))
  checkpointer.close()
  return host(state)


@pytest.fixture(scope="module", params=["dino", "swav"])
def runs(request, data_dir, tmp_path_factory):
  """Per method: a 4-step run on 1 and on 8 devices, and the 1-device run preempted after
  its checkpoint at step 2 (the later one removed) and resumed to step 4."""
  name = request.param
  root = tmp_path_factory.mktemp(name)
  one = run(name, data_dir, str(root / "d1"), 1)
  eight = run(name, data_dir, str(root / "d8"), 8)
  # Preempted after step 2: only the checkpoint of step 2 exists.
  os.makedirs(root / "resumed" / "checkpoints")
  shutil.copytree(root / "d1" / "checkpoints" / "2", root / "resumed" / "checkpoints" / "2")
  first = dict(state=restore(str(root / "resumed"), 2, one["state"]))
  resumed = run(name, data_dir, str(root / "resumed"), 1)
  return dict(name=name, one=one, eight=eight, first=first, resumed=resumed)


def losses_of(r):
  return [r["metrics"][s]["loss"] for s in range(1, 5)]


def assert_trees_close(a, b, **tol):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


def test_same_losses_and_method_state_on_1_and_8_devices(runs):
  one, eight = runs["one"], runs["eight"]
  assert sorted(one["metrics"]) == [1, 2, 3, 4]
  np.testing.assert_allclose(losses_of(eight), losses_of(one), rtol=2e-5, atol=1e-6)
  assert all(np.isfinite(losses_of(one)))
  assert losses_of(one)[3] != losses_of(one)[0], "the loss moved"
  # Teacher params and BN statistics, center, queue: the same on any device count, up
  # to summation order amplified over 4 optimizer steps (as tests/test_train.py).
  assert_trees_close(eight["state"].method_state, one["state"].method_state, rtol=1e-3, atol=1e-4)
  assert_trees_close(eight["state"].params, one["state"].params, rtol=1e-3, atol=1e-4)
  if runs["name"] == "dino":
    center = one["state"].method_state["center"]
    assert np.abs(center).max() > 0, "the center moved"
    teacher = one["state"].method_state["teacher"].ema.target
    moved = jax.tree.map(lambda t, s: np.abs(t - s).max(), teacher, one["state"].params)
    assert max(jax.tree.leaves(moved)) > 0, "teacher and student differ after 4 steps"
  else:
    queue = one["state"].method_state["queue"]
    assert queue.shape == (2, QUEUE, 8)
    np.testing.assert_allclose(np.linalg.norm(queue, axis=-1), 1.0, rtol=1e-5)


def test_resume_restores_method_state(runs):
  straight, resumed = runs["one"], runs["resumed"]
  assert sorted(resumed["metrics"]) == [3, 4]
  np.testing.assert_allclose([resumed["metrics"][s]["loss"] for s in (3, 4)], losses_of(straight)[2:],
                             rtol=1e-6)
  assert int(resumed["state"].step) == 4
  # Restored teacher/center/queue: the resumed run ends in the same state.
  assert_trees_close(resumed["state"].method_state, straight["state"].method_state,
                     rtol=1e-5, atol=1e-6)


def initial_params(r):
  return host(step_lib.init_variables(r["model"], r["config"], 1)["params"])


def test_frozen_head_layer_unchanged_then_trained(runs):
  """The last layer (DINO) / prototypes (SwAV) do not move during the first FREEZE steps
  (not even by weight decay, as the official code skips them), the rest does; after."""
  init, after2, after4 = initial_params(runs["one"]), runs["first"]["state"].params, \
      runs["one"]["state"].params
  if runs["name"] == "dino":
    frozen = lambda p: p["head"]["last_layer"]
  else:
    frozen = lambda p: p["prototypes"]
  assert_trees_close(frozen(after2), frozen(init), rtol=1e-6, atol=1e-7)
  encoder_moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), after2["encoder"], init["encoder"])
  assert max(jax.tree.leaves(encoder_moved)) > 0
  last_moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), frozen(after4), frozen(after2))
  assert max(jax.tree.leaves(last_moved)) > 1e-6, "trained once the freeze is over"
  if runs["name"] == "dino":  # the teacher's copy, an EMA of an unchanged layer, too
    teacher2 = runs["first"]["state"].method_state["teacher"].ema.target
    assert_trees_close(frozen(teacher2), frozen(init), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("runs", ["dino"], indirect=True)  # only the DINO runs
def test_dino_teacher_temperature_schedule(runs):
  # np.linspace(0.04, 0.07, 3) for steps 0..2, then 0.07 (official per-epoch schedule).
  want = list(np.linspace(0.04, 0.07, TEMP_WARMUP)) + [0.07]
  got = [runs["one"]["metrics"][s]["teacher_temp"] for s in range(1, 5)]
  np.testing.assert_allclose(got, want, rtol=1e-6)
  cfg = runs["one"]["config"].method
  np.testing.assert_allclose([float(dino.teacher_temperature(cfg, jnp.asarray(s))) for s in
                              (0, 1, 2, 3, 100)], want + [0.07], rtol=1e-6)
  cfg.warmup_teacher_temp_steps = 0
  assert float(dino.teacher_temperature(cfg, jnp.asarray(0))) == pytest.approx(0.07)
  # Entropy of the teacher's distribution: at most log K.
  entropy = runs["one"]["metrics"][1]["teacher_entropy"]
  assert 0 < entropy <= np.log(32) + 1e-5


@pytest.mark.parametrize("runs", ["swav"], indirect=True)  # only the SwAV runs
def test_swav_prototypes_unit_norm(runs):
  init = initial_params(runs["one"])["prototypes"]
  for params in (init, runs["first"]["state"].params, runs["one"]["state"].params,
                 runs["eight"]["state"].params):
    w = params if isinstance(params, np.ndarray) else params["prototypes"]
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), 1.0, rtol=1e-6)


def global_crop_embeddings(r, params, batch_stats, step):
  """Independently recomputed: the l2-normalized embeddings of the 2 global crops of the
  batch of `step` ([2, BATCH, dim], global order), by the network with the given
  variables in train mode on one device."""
  config = r["config"]
  source = assemble.open_split(config, config.data.train_split)
  batches = pipeline.host_batches(source, global_batch=BATCH, seed=config.seed, start_step=step)
  batch = next(batches)
  batches.close()
  views = step_lib.make_views_fn(config, source)(
      jnp.asarray(batch["image"]), jnp.asarray(batch["position"]))
  model = r["model"]

  def forward(views):
    (z, _), _ = networks.multicrop_apply(model, {"params": params, "batch_stats": batch_stats},
                                         views, freeze_prototypes=False)
    return z
  z = jax.vmap(forward, axis_name=parallel.DATA_AXIS)([v[None] for v in views])[0]
  return np.asarray(z[:2])


@pytest.mark.parametrize("runs", ["swav"], indirect=True)  # only the SwAV runs
def test_swav_queue_holds_last_embeddings_in_global_order(runs):
  after2 = runs["first"]["state"]
  # Filled from step 1: after 2 steps the batch of step 1 is at the front, the rest empty.
  queue2 = after2.method_state["queue"]
  np.testing.assert_allclose(np.linalg.norm(queue2[:, :BATCH], axis=-1), 1.0, rtol=1e-5)
  assert not queue2[:, BATCH:].any()
  # After 4 steps: [batch of step 3, batch of step 2], newest first. The batch of step 2
  # is embedded by the parameters after 2 steps: recompute it.
  want = global_crop_embeddings(runs["one"], after2.params, after2.batch_stats, step=2)
  for r in (runs["one"], runs["eight"]):  # 8 devices: gathered in global order
    np.testing.assert_allclose(r["state"].method_state["queue"][:, BATCH:], want,
                               rtol=1e-4, atol=1e-5)
  # The queue was in use at step 3 only (full from then on).
  assert [runs["one"]["metrics"][s]["queue_in_use"] for s in range(1, 5)] == [0, 0, 0, 1]


def test_swav_queue_length_must_divide_by_batch(data_dir):
  config = method_config("swav", data_dir)
  config.method.queue_length = BATCH + 4
  with pytest.raises(ConfigError, match="queue_length"):
    get_method("swav").validate(config)
  config.method.queue_length = 0
  get_method("swav").validate(config)
  assert swav.init_state(config, {}, None) == {}


def test_clip_grad_per_tensor_matches_definition():
  """Official DINO utils.clip_gradients: each tensor scaled by min(1, c / (||g|| + 1e-6))."""
  rng = np.random.default_rng(0)
  grads = {"big": rng.normal(size=(4, 5)).astype(np.float32) * 10,
           "small": rng.normal(size=(3,)).astype(np.float32) * 0.01}
  clip = 3.0
  want = {k: g * min(1.0, clip / (np.linalg.norm(g) + 1e-6)) for k, g in grads.items()}
  got, _ = optim.clip_by_tensor_norm(clip).update(grads, optax.EmptyState())
  assert_trees_close(host(got), want, rtol=1e-6)
  assert np.linalg.norm(got["big"]) == pytest.approx(clip, rel=1e-5)
  np.testing.assert_array_equal(got["small"], grads["small"])

  # Chained before the optimizer: plain SGD (lr 1, no momentum, no decay) steps by -clipped.
  cfg = optim.default_config()
  cfg.name, cfg.momentum, cfg.weight_decay, cfg.clip_grad_per_tensor = "sgd", 0.0, 0.0, clip
  tx = optim.make_optimizer(cfg, lambda step: 1.0)
  params = jax.tree.map(np.zeros_like, grads)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert_trees_close(host(updates), {k: -v for k, v in want.items()}, rtol=1e-6)
  # Off by default: the optimizer is the unclipped one.
  cfg.clip_grad_per_tensor = 0.0
  tx = optim.make_optimizer(cfg, lambda step: 1.0)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert_trees_close(host(updates), {k: -v for k, v in grads.items()}, rtol=1e-6)


@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_dino_head_matches_numpy_reference(norm_last_layer):
  """MLP (Linear-GELU x2, Linear), l2-normalize, weight-normalized Linear without bias:
  W = g * V / ||V|| per output unit (g = 1 when norm_last_layer), as DINOHead."""
  from math import erf

  head = dino.DINOHead(out_dim=6, hidden_dim=5, bottleneck_dim=4, norm_last_layer=norm_last_layer)
  x = np.random.default_rng(0).normal(size=(3, 7)).astype(np.float32)
  params = host(head.init(jax.random.key(0), x)["params"])
  if not norm_last_layer:
    params["last_layer"]["scale"] = np.linspace(0.5, 2.0, 6).astype(np.float32)
  got = np.asarray(head.apply({"params": params}, x))

  gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + erf(v / np.sqrt(2.0))))
  h = x.astype(np.float64)
  for name in ("dense1", "dense2"):
    h = gelu(h @ params[name]["kernel"] + params[name]["bias"])
  h = h @ params["dense3"]["kernel"] + params["dense3"]["bias"]
  h = h / np.linalg.norm(h, axis=1, keepdims=True)
  v = params["last_layer"]["kernel"]
  w = v / np.linalg.norm(v, axis=0, keepdims=True)
  if not norm_last_layer:
    w = w * params["last_layer"]["scale"]
  else:
    assert "scale" not in params["last_layer"]
  np.testing.assert_allclose(got, h @ w, rtol=1e-5, atol=1e-6)
  # The GELU's hand-written derivative equals autodiff of JAX's exact GELU.
  z = jnp.linspace(-4.0, 4.0, 17)
  np.testing.assert_allclose(jax.vmap(jax.grad(dino.gelu))(z),
                             jax.vmap(jax.grad(lambda t: jax.nn.gelu(t, approximate=False)))(z),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("runs", ["dino"], indirect=True)  # only the DINO runs
def test_dino_evaluates_the_teacher_unless_told_otherwise(runs, data_dir):
  """The paper evaluates the teacher (section 3.1): the frozen evaluation embeds with the
  variables the method names, which after training differ from the student's."""
  state = runs["one"]["state"]
  config = method_config("dino", data_dir)
  method = get_method("dino")
  teacher = state.method_state["teacher"]
  evaluated = method.evaluated_variables(config, state.params, state.batch_stats, state.method_state)
  assert_trees_close(evaluated["params"], teacher.ema.target, rtol=0, atol=0)
  assert_trees_close(evaluated["batch_stats"], teacher.batch_stats, rtol=0, atol=0)
  gap = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), teacher.ema.target["encoder"],
                                     state.params["encoder"]))
  assert max(gap) > 0, "teacher and student differ after training"
  config.method.evaluate_teacher = False
  student = method.evaluated_variables(config, state.params, state.batch_stats, state.method_state)
  assert_trees_close(student["params"], state.params, rtol=0, atol=0)


# A config file that gives back a run's config.json (JSON lists back to the config's tuples).
CONFIG_FROM_JSON = """
import json
import ml_collections

def tuples(value):
  if isinstance(value, dict):
    return {k: tuples(v) for k, v in value.items()}
  return tuple(tuples(v) for v in value) if isinstance(value, list) else value

def get_config():
  with open(%r) as f:
    return ml_collections.ConfigDict(tuples(json.load(f)))
"""


@pytest.mark.parametrize("runs", ["dino"], indirect=True)
def test_export_command_writes_the_dino_teacher(runs, tmp_path):
  """`python -m sslax.export` (the default Orbax format) on the DINO run: the encoder it writes
  is the teacher's, which the frozen evaluation embeds with, not the student's."""
  import subprocess
  import sys

  from sslax import export

  workdir = runs["one"]["workdir"]
  config_file = tmp_path / "config.py"
  config_file.write_text(CONFIG_FROM_JSON % os.path.join(workdir, "config.json"))
  out = tmp_path / "export"
  result = subprocess.run(
      [sys.executable, "-m", "sslax.export", f"--config={config_file}", f"--workdir={workdir}",
       f"--out={out}"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "exported the dino encoder of step 4" in result.stdout
  _, variables = export.load_encoder(str(out))
  state = runs["one"]["state"]
  teacher = get_method("dino").evaluated_variables(runs["one"]["config"], state.params,
                                                   state.batch_stats, state.method_state)
  exported = variables["params"]["encoder"]
  assert_trees_close(exported, host(teacher["params"]["encoder"]), rtol=0, atol=0)
  student = host(state.params["encoder"])
  assert any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(exported), jax.tree.leaves(student)))
