"""Scale-out behaviour against independent references: a run stopped by SIGTERM and
restarted equals an uninterrupted run; a checkpoint written on 8 devices continues on 2
as the 8-device run does; bf16 compute keeps fp32 parameters and a loss close to fp32;
k micro-batches of gradient accumulation equal one big batch; remat changes no result;
benchmarks/mfu.py's FLOP counts agree with torchvision's and XLA's."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sslax import models, preemption, train
from sslax.errors import ConfigError
from sslax.methods import get_method
from tests.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return tiny_fashion_mnist


def read_losses(workdir, key: str = "loss") -> dict[int, float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  steps = [r["step"] for r in records]
  assert len(steps) == len(set(steps)), f"a step logged twice: {steps}"
  return {r["step"]: r[key] for r in records}


def params_of(state):
  return jax.tree.map(np.asarray, jax.device_get(state.params))


def cli_overrides(config, data_dir) -> list[str]:
  """The `python -m sslax.main` flags that build tiny_config(data_dir) with `config`'s steps."""
  return ["--config=configs/simclr_fashion_mnist.py", f"--config.data.data_dir={data_dir}",
          f"--config.batch_size={config.batch_size}", f"--config.total_steps={config.total_steps}",
          "--config.log_every_steps=1", f"--config.checkpoint_every_steps={config.checkpoint_every_steps}",
          "--config.model.widths=(8,16)", "--config.method.projector_hidden=(32,)",
          "--config.method.projector_dim=16", "--config.optimizer.warmup_steps=1",
          "--config.eval.enabled=False", "--mode=train",
          # As conftest sets them in this process: the resumed run must build the same state.
          "--config.online_probe.enabled=False", "--config.diagnostics.enabled=False"]


def wait_for_step(workdir, step: int, process: subprocess.Popen, timeout: float = 240.0) -> int:
  """Polls metrics.jsonl until it holds `step`; -> the last step logged."""
  path = os.path.join(workdir, "metrics.jsonl")
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    assert process.poll() is None, "the run ended before it could be interrupted"
    if os.path.exists(path):
      with open(path) as f:
        lines = [line for line in f if line.endswith("\n")]
      if lines and json.loads(lines[-1])["step"] >= step:
        return json.loads(lines[-1])["step"]
    time.sleep(0.02)
  raise TimeoutError(f"no step {step} in {path} after {timeout} s")


def test_sigterm_saves_checkpoint_and_resume_equals_uninterrupted_run(data_dir, tmp_path):
  config = tiny_config(data_dir)
  config.total_steps = 30
  config.checkpoint_every_steps = 1000  # the only checkpoint before the end: the preemption one
  config.async_checkpoints = True       # the default, and the path a real job takes
  straight = str(tmp_path / "straight")
  reference, _, _ = train.train(config, straight)

  workdir = str(tmp_path / "preempted")
  log = tmp_path / "stderr.txt"  # a file, not a pipe nobody reads while the run goes on
  with open(log, "w") as stderr_file:
    run = subprocess.Popen(
        [sys.executable, "-m", "sslax.main", *cli_overrides(config, data_dir), f"--workdir={workdir}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr_file)
    try:
      wait_for_step(workdir, 3, run)
      run.send_signal(signal.SIGTERM)
      run.wait(timeout=120)
    finally:
      run.kill()
  stderr = log.read_text()
  assert run.returncode == preemption.EXIT_STATUS, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  assert "run the same command again to resume" in stderr
  saved = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())
  assert len(saved) == 1 and 3 <= saved[0] < config.total_steps, saved
  assert max(read_losses(workdir)) <= saved[0]

  resumed, _, _ = train.train(config, workdir)  # the next start: same config and workdir
  want, got = read_losses(straight), read_losses(workdir)
  assert sorted(got) == list(range(1, config.total_steps + 1))
  np.testing.assert_allclose([got[s] for s in sorted(want)], [want[s] for s in sorted(want)],
                             rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               params_of(resumed), params_of(reference))


def test_checkpoint_from_8_devices_continues_on_2_as_on_8(data_dir, tmp_path):
  """Elastic restore: the state is replicated and the step is written for the global
  batch, so a run checkpointed on 8 devices continues on 2 with the 8-device losses."""
  config = tiny_config(data_dir)  # 4 steps, checkpoints at 2 and 4
  eight = str(tmp_path / "eight")
  reference, _, _ = train.train(config, eight)

  # The 8-device run as it stood after its checkpoint at step 2 (what a run stopped there
  # leaves: the later checkpoint gone; its metrics after step 2 are dropped on resume).
  elastic = str(tmp_path / "elastic")
  shutil.copytree(eight, elastic)
  shutil.rmtree(os.path.join(elastic, "checkpoints", "4"))
  second = tiny_config(data_dir)
  second.num_devices = 2
  state, _, mesh = train.train(second, elastic)
  assert mesh.devices.size == 2 and len(state.step.sharding.device_set) == 2

  want, got = read_losses(eight), read_losses(elastic)
  assert sorted(got) == [1, 2, 3, 4]
  np.testing.assert_allclose([got[3], got[4]], [want[3], want[4]], rtol=2e-5)
  # As in tests/test_train.py: 8 partial sums + all-reduce vs 2, amplified by AdamW.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
               params_of(state), params_of(reference))


def test_bfloat16_policy_keeps_float32_state_and_loss_close_to_float32(data_dir, tmp_path):
  runs = {}
  for precision in ("float32", "bfloat16"):
    config = tiny_config(data_dir)
    config.total_steps = 2
    config.precision = precision
    state, model, _ = train.train(config, str(tmp_path / precision))
    runs[precision] = read_losses(tmp_path / precision), state, model
  (losses32, _, _), (losses16, state16, model16) = runs["float32"], runs["bfloat16"]
  assert model16.encoder.dtype == jnp.bfloat16
  floats = [leaf for tree in (state16.params, state16.opt_state, state16.batch_stats,
                              state16.method_state)
            for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.floating)]
  assert floats and all(leaf.dtype == jnp.float32 for leaf in floats)
  # The convolutions do run in bfloat16 (the losses differ), and the fp32 loss and
  # softmax keep the result within bf16's ~3 significant digits of the fp32 run.
  variables = {"params": state16.params, "batch_stats": state16.batch_stats}
  jaxpr = str(jax.make_jaxpr(lambda v, x: model16.apply(v, x, train=False))(
      variables, jnp.zeros((2, 28, 28, 1))))
  convs = [line for line in jaxpr.splitlines() if "conv_general_dilated" in line]
  assert convs and all("bf16[" in line for line in convs)
  assert losses16[1] != losses32[1]
  np.testing.assert_allclose([losses16[s] for s in (1, 2)], [losses32[s] for s in (1, 2)], rtol=1e-2)


class DenseEncoder(nn.Module):
  """A BN-free encoder: with it the supervised loss is a plain mean over examples."""
  features: int = 32
  bn_axis_name: str | None = None
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    return nn.relu(nn.Dense(self.features, dtype=self.dtype)(x.reshape(x.shape[0], -1)))


def supervised_dense_config(data_dir):
  config = tiny_config(data_dir)
  config.total_steps = 3
  config.method = get_method("supervised").defaults()
  del config.views["view2"]
  config.model = ml_collections.ConfigDict({"name": "dense_test", "features": 32})
  return config


def test_accumulated_micro_batches_equal_one_big_batch(data_dir, tmp_path, monkeypatch):
  """Per-example-mean loss, no batch statistics: the mean of k micro-batch gradients is
  the big-batch gradient, so the run follows the accumulation_steps=1 run."""
  monkeypatch.setitem(models.ENCODERS, "dense_test", DenseEncoder)
  runs = {}
  for steps in (1, 2):  # 16 images on 8 devices: 2 per device, in 2 micro-batches of 1
    config = supervised_dense_config(data_dir)
    config.accumulation_steps = steps
    config.optimizer.name = "sgd"  # unlike Adam, SGD's update shows a wrongly scaled gradient
    config.optimizer.base_lr = 0.5
    state, _, _ = train.train(config, str(tmp_path / f"k{steps}"))
    runs[steps] = (read_losses(tmp_path / f"k{steps}"), read_losses(tmp_path / f"k{steps}", "grad_norm"),
                   params_of(state))
  (want, want_norm, params1), (got, got_norm, params2) = runs[1], runs[2]
  assert sorted(got) == [1, 2, 3] and want[3] != want[1]
  np.testing.assert_allclose([got[s] for s in (1, 2, 3)], [want[s] for s in (1, 2, 3)], rtol=1e-5)
  np.testing.assert_allclose([got_norm[s] for s in (1, 2, 3)], [want_norm[s] for s in (1, 2, 3)],
                             rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params2, params1)


def test_accumulation_carries_batchnorm_statistics_through_micro_batches(data_dir, tmp_path):
  """SimCLR with BatchNorm: each micro-batch normalizes with its own statistics and moves
  the running averages once, so 2 micro-batches move them twice per step."""
  runs = {}
  for steps in (1, 2):
    config = tiny_config(data_dir)
    config.total_steps = 1
    config.accumulation_steps = steps
    config.model.bn_momentum = 0.0  # running average := the last batch's statistics
    state, _, _ = train.train(config, str(tmp_path / f"k{steps}"))
    runs[steps] = read_losses(tmp_path / f"k{steps}"), jax.device_get(state.batch_stats)
  (want, stats1), (got, stats2) = runs[1], runs[2]
  assert np.isfinite(got[1]) and got[1] != want[1]  # negatives from 8 images, not 16
  # Global-batch mean of the first BN = mean of the two micro-batches' means; with momentum
  # 0 the k=2 running mean is the last micro-batch's alone, so the two differ.
  mean1 = stats1["encoder"]["stage1_bn1"]["mean"]
  mean2 = stats2["encoder"]["stage1_bn1"]["mean"]
  assert mean1.shape == mean2.shape and not np.allclose(mean1, mean2)


def test_accumulation_rejects_stateful_methods_and_indivisible_batches(data_dir, tmp_path):
  from sslax import config as config_lib

  config = tiny_config(data_dir)
  config.method = get_method("byol").defaults()
  config.accumulation_steps = 2
  with pytest.raises(ConfigError, match="set accumulation_steps=1"):
    config_lib.validate(config)
  config = tiny_config(data_dir)
  config.accumulation_steps = 4  # 16 images, 8 devices: 2 per device, not 4 micro-batches
  with pytest.raises(ConfigError, match="multiple of 32"):
    train.train(config, str(tmp_path / "run"))


def test_resnet_remat_gives_the_same_loss_and_gradients():
  """Recomputing each block in the backward pass changes memory, not results: the
  network without remat is the reference."""
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  results = {}
  for remat in (False, True):
    net = models.ResNet(stage_sizes=(2,), block="bottleneck", num_filters=4, stem="cifar",
                        zero_init_last_bn=False, remat=remat)
    # NumPy-random variables of init's shapes: compiling init's own RNG costs seconds.
    shapes = jax.eval_shape(lambda net=net: net.init(jax.random.key(1), x, train=False))
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.3, s.shape), s.dtype), shapes)

    def loss(params, net=net, variables=variables):
      out, _ = net.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
      return jnp.sum(out ** 2)

    results[remat] = jax.jit(jax.value_and_grad(loss))(variables["params"])
    jaxpr = str(jax.make_jaxpr(loss)(variables["params"]))
    assert ("checkpoint" in jaxpr or "remat" in jaxpr) == remat
  assert jax.tree.structure(results[True]) == jax.tree.structure(results[False])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               results[True], results[False])


def load_mfu_benchmark():
  spec = importlib.util.spec_from_file_location("mfu", os.path.join(REPO, "benchmarks", "mfu.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_mfu_analytic_counts_match_torchvision_and_xla():
  """benchmarks/mfu.py's hand counts: torchvision's published multiply-adds at 224 px
  (ResNet-50 4.09 G, ResNet-18 1.81 G), and XLA's cost analysis of sslax's own forward."""
  mfu = load_mfu_benchmark()
  assert round(mfu.resnet_macs((3, 4, 6, 3), True, 64, 224, "imagenet") / 1e9, 2) == 4.09
  assert round(mfu.resnet_macs((2, 2, 2, 2), False, 64, 224, "imagenet") / 1e9, 2) == 1.81

  x = jnp.zeros((1, 64, 64, 3))
  resnet = models.resnet50(num_filters=16)
  vit = models.ViT(patch_size=16, hidden_dim=128, depth=2, num_heads=2)
  ratios = {}
  for net, analytic in (
      (resnet, mfu.resnet_macs((3, 4, 6, 3), True, 16, 64, "imagenet")),
      (vit, 16 * 128 * 16 * 16 * 3 + 2 * mfu.vit_block_macs(17, 128, 512))):
    variables = jax.eval_shape(lambda net=net: net.init(jax.random.key(0), x, train=False))
    compiled = jax.jit(lambda v, net=net: net.apply(v, x, train=False)).lower(variables).compile()
    ratios[type(net).__name__] = mfu.cost_flops(compiled) / (2 * analytic)
  # XLA also counts normalization, activations, softmax and pooling (ViT: above 1), and
  # leaves out the zero padding of convolutions, most of a 3x3 kernel on the 2x2 maps of
  # this 64 px ResNet's last stage (about 1.5% at 224 px: below 1).
  assert 1.0 < ratios["ViT"] < 1.05 and 0.9 < ratios["ResNet"] < 1.0, ratios


@pytest.mark.parametrize("env, expected", [
    ({}, None),                                                        # a plain single process
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "16"}, None),               # the sbatch shell, not srun
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "16", "SLURM_STEP_NODELIST": "n[1-2]"}, {}),  # srun
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1", "SLURM_STEP_NODELIST": "n1"}, None),
    ({"TPU_WORKER_HOSTNAMES": "w0,w1"}, {}),                           # GKE TPU slice
    ({"SSLAX_DISTRIBUTED": "auto"}, {}),
    ({"SSLAX_DISTRIBUTED": "off", "SLURM_JOB_ID": "7", "SLURM_NTASKS": "16",
      "SLURM_STEP_NODELIST": "n[1-2]"}, None),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"},
     {"coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}),
])
def test_distributed_initialization_is_detected_from_the_environment(monkeypatch, env, expected):
  from sslax import parallel

  for name in ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_STEP_NODELIST", "TPU_WORKER_HOSTNAMES",
               "MEGASCALE_COORDINATOR_ADDRESS", "SSLAX_DISTRIBUTED", "JAX_COORDINATOR_ADDRESS"):
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  monkeypatch.setenv("JAX_PLATFORMS", "tpu")  # not cpu: no gloo switch in this test
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
  parallel.maybe_initialize_distributed()
  assert calls == ([] if expected is None else [expected])


def test_unknown_sslax_distributed_value_says_what_is_accepted(monkeypatch):
  from sslax import parallel

  monkeypatch.setenv("SSLAX_DISTRIBUTED", "yes")
  with pytest.raises(ValueError, match="use 'auto', 'off' or leave it unset"):
    parallel.maybe_initialize_distributed()
