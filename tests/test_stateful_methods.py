"""Methods with state between steps (BYOL's and MoCo's target networks, MoCo v2's queue)
through the trainer on tiny local data: 8 devices equal 1 device (losses, target, queue),
the target follows its recursion, the queue holds the keys of the global batch in order,
and a checkpoint restores all of it (a preempted run resumes exactly)."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import assemble, optim, parallel, train
from sslax import checkpoint as checkpoint_lib
from sslax import step as step_lib
from sslax.data import pipeline
from sslax.methods import get_method
from tests.helpers import tiny_config

# moco_v2_symmetric and moco_v3 forward per view; moco_v2_queue0 has queue_size=0.
STATEFUL = ("byol", "moco_v2", "moco_v2_symmetric", "moco_v2_queue0", "moco_v3")


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def method_config(name: str, data_dir: str):
  """tiny_config with `name`'s defaults, tiny heads and a queue of 3 global batches, so
  4 steps wrap around it (none for moco_v2_queue0)."""
  config = tiny_config(data_dir)
  config.method = get_method(name.removesuffix("_symmetric").removesuffix("_queue0")).defaults()
  if name.endswith("_symmetric"):  # solo-learn's MoCo v2+: two queues, both directions
    config.method.symmetric = True
  config.method.projector_hidden = (32,)
  config.method.projector_dim = 16
  if "predictor_hidden" in config.method:
    config.method.predictor_hidden = (8,)
  if "queue_size" in config.method:
    config.method.queue_size = 0 if name.endswith("_queue0") else 3 * config.batch_size
  config.optimizer.name = "lars"
  config.optimizer.base_lr = 0.5
  return config


def read_losses(workdir) -> dict[int, float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["loss"] for r in map(json.loads, f)}


def host(tree):
  return jax.tree.map(np.asarray, parallel.to_host(tree))


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
  """name -> {devices: (losses, final state on the host)} for 4 steps on 1 and 8 devices."""
  out = {}
  for name in STATEFUL:
    out[name] = {}
    for devices in (1, 8):
      config = method_config(name, data_dir)
      config.num_devices = devices
      workdir = str(tmp_path_factory.mktemp(f"{name}_d{devices}"))
      state, _, _ = train.train(config, workdir)
      out[name][devices] = (read_losses(workdir), host(state), workdir)
  return out


@pytest.mark.parametrize("name", STATEFUL)
def test_same_losses_and_method_state_on_1_and_8_devices(name, runs):
  (losses1, state1, _), (losses8, state8, _) = runs[name][1], runs[name][8]
  assert sorted(losses1) == [1, 2, 3, 4]
  np.testing.assert_allclose([losses8[s] for s in range(1, 5)], [losses1[s] for s in range(1, 5)],
                             rtol=2e-5, atol=1e-6)
  assert losses1[4] != losses1[1], "the loss moved"
  assert jax.tree.structure(state1.method_state) == jax.tree.structure(state8.method_state)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
               state8.method_state, state1.method_state)


@pytest.mark.parametrize("name", STATEFUL)
def test_target_follows_its_recursion_over_one_step(name, data_dir, tmp_path):
  """After one step: target = tau_0 * initial + (1 - tau_0) * new online params, and the
  target covers the encoder and projector (MoCo v2: its whole key network)."""
  config = method_config(name, data_dir)
  config.total_steps = 1
  method = get_method(config.method.name)
  model = method.build(config)
  schedule = optim.learning_rate_schedule(config.optimizer, config.batch_size, config.total_steps)
  initial = step_lib.initial_state(config, method, model, optim.make_optimizer(config.optimizer, schedule), 1)
  state, _, _ = train.train(config, str(tmp_path / "run"))
  state = host(state)
  tau0 = config.method.base_momentum  # the cosine schedule starts at tau_base too
  target = state.method_state["target"].ema.target
  assert int(state.method_state["target"].ema.count) == 1
  assert set(target) == ({"encoder", "projector"})
  for part in target:
    want = jax.tree.map(lambda p0, p1: tau0 * p0 + (1 - tau0) * p1,
                        initial.params[part], state.params[part])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 target[part], want)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), target[part],
                                         initial.params[part]))
    assert max(moved) > 0, "the target moved"


def test_moco_queue_holds_the_global_batch_keys_in_order(data_dir, tmp_path):
  """One step on 8 devices into a queue of 48: rows 0-15 must be the normalized keys of the
  global batch in stream order, recomputed here on the host from the initial key encoder
  (the target before its first update is the initial network) and the trainer's view 2;
  rows 16-47 keep their initial random keys; the index moves to 16."""
  config = method_config("moco_v2", data_dir)
  config.total_steps = 1
  config.num_devices = 8
  state, model, _ = train.train(config, str(tmp_path / "run"))
  queue = host(state).method_state["queue"]

  method = get_method("moco_v2")
  source = assemble.open_split(config, config.data.train_split)
  schedule = optim.learning_rate_schedule(config.optimizer, config.batch_size, 1)
  initial = step_lib.initial_state(config, method, model, optim.make_optimizer(config.optimizer, schedule), 1)
  batch = next(iter(pipeline.host_batches(source, global_batch=16, seed=config.seed, start_step=0)))
  views = step_lib.make_views_fn(config, source)(
      jnp.asarray(batch["image"]), jnp.asarray(batch["position"]))

  def keys(view):  # BatchNorm syncs over the mesh axis: name it with a vmap over 1 "device"
    return model.apply({"params": initial.params, "batch_stats": initial.batch_stats}, view,
                       train=True, mutable=["batch_stats"])[0]
  k = jax.vmap(keys, axis_name=parallel.DATA_AXIS)(views[1][None])[0]
  want = np.asarray(k) / np.linalg.norm(np.asarray(k), axis=1, keepdims=True)
  np.testing.assert_allclose(queue[:16], want, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(queue[16:], np.asarray(initial.method_state["queue"])[16:])
  assert int(host(state).method_state["queue_index"]) == 16


def _initial_state_and_views(config, model):
  """The initial train state and the trainer's two views of the first global batch."""
  method = get_method(config.method.name)
  source = assemble.open_split(config, config.data.train_split)
  schedule = optim.learning_rate_schedule(config.optimizer, config.batch_size, 1)
  initial = step_lib.initial_state(config, method, model, optim.make_optimizer(config.optimizer, schedule), 1)
  batch = next(iter(pipeline.host_batches(source, global_batch=config.batch_size, seed=config.seed,
                                          start_step=0)))
  views = step_lib.make_views_fn(config, source)(
      jnp.asarray(batch["image"]), jnp.asarray(batch["position"]))
  return initial, views


def test_moco_queue_0_contrasts_the_other_keys_of_the_batch(runs, data_dir):
  """queue_size=0: no queue state, and the first step's logged loss (1 device) is the NumPy
  InfoNCE of each query against its own key and the other 15 keys of the batch, from the
  initial networks (query and key encoder are equal before the first update)."""
  losses1, state1, _ = runs["moco_v2_queue0"][1]
  assert set(state1.method_state) == {"target"}
  config = method_config("moco_v2_queue0", data_dir)
  model = get_method("moco_v2").build(config)
  initial, views = _initial_state_and_views(config, model)

  def embed(view):  # BatchNorm syncs over the mesh axis: name it with a vmap over 1 "device"
    out = jax.vmap(lambda v: model.apply({"params": initial.params, "batch_stats": initial.batch_stats},
                                         v, train=True, mutable=["batch_stats"])[0],
                   axis_name=parallel.DATA_AXIS)(view[None])[0]
    out = np.asarray(out, np.float64)
    return out / np.linalg.norm(out, axis=1, keepdims=True)
  q, k = embed(views[0]), embed(views[1])
  tau = config.method.temperature
  want = np.mean([-np.log(np.exp(q[i] @ k[i] / tau) / np.sum(np.exp(q[i] @ k.T / tau)))
                  for i in range(len(q))])
  np.testing.assert_allclose(losses1[1], want, rtol=1e-4)


@pytest.mark.parametrize("name", ["byol", "moco_v2"])
def test_preempted_run_resumes_with_target_and_queue(name, runs, data_dir, tmp_path, monkeypatch):
  """A run killed after its step-2 checkpoint, then restarted, logs the same losses at
  steps 3-4 and ends with the same target (and queue) as the uninterrupted run."""
  class Preempted(Exception):
    pass

  save = checkpoint_lib.Checkpointer.save

  def save_then_die(self, step, state, **kwargs):
    save(self, step, state, **kwargs)
    if step == 2:
      raise Preempted

  config = method_config(name, data_dir)
  config.num_devices = 1
  workdir = str(tmp_path / "resumed")
  monkeypatch.setattr(checkpoint_lib.Checkpointer, "save", save_then_die)
  with pytest.raises(Preempted):
    train.train(config, workdir)
  monkeypatch.setattr(checkpoint_lib.Checkpointer, "save", save)
  state, _, _ = train.train(config, workdir)

  want_losses, want_state, _ = runs[name][1]
  got_losses = read_losses(workdir)
  np.testing.assert_allclose([got_losses[s] for s in (3, 4)], [want_losses[s] for s in (3, 4)],
                             rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               host(state).method_state, want_state.method_state)
