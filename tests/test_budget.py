"""The wall-clock budget (sslax/budget.py): the plan's arithmetic, its file, and the timer."""

import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from sslax import budget, optim
from sslax.errors import ConfigError


def _config(seconds=60.0, total_steps=4000, log_every_steps=50, min_steps=0):
  config = ml_collections.ConfigDict(dict(
      total_steps=total_steps, log_every_steps=log_every_steps, checkpoint_every_steps=500,
      batch_size=256, budget=budget.default_config()))
  config.budget.seconds = seconds
  config.budget.min_steps = min_steps
  return config


class FakeMeasure:
  """measure(n) -> a fixed seconds/step, remembering how it was called."""

  def __init__(self, seconds_per_step):
    self.seconds_per_step = seconds_per_step
    self.calls = []

  def __call__(self, n):
    self.calls.append(n)
    return self.seconds_per_step


def _never(n):
  raise AssertionError(f"measure({n}) was called; the plan file should have answered")


def test_default_config_is_off():
  assert budget.default_config().seconds == 0


@pytest.mark.parametrize("seconds, sps, expected", [
    (600.0, 0.165, 3600),   # floor(3636.4) = 3636 -> 3600, a multiple of 50
    (600.0, 0.33, 1800),    # floor(1818.2) -> 1800: half the speed, half the steps
    (600.0, 0.1, 4000),     # 6000 capped at config.total_steps
    (600.0, 0.30, 2000),    # exactly 2000: already a multiple
    (1.0, 0.5, 50),         # 2 -> 0 -> one log interval, the floor when min_steps is 0
])
def test_plan_is_the_floor_of_budget_over_speed_rounded_down_and_clamped(tmp_path, seconds, sps, expected):
  # Independent of steps_for: the formula written out.
  by_hand = min(max(math.floor(seconds / sps) // 50 * 50, 50), 4000)
  assert by_hand == expected
  measure = FakeMeasure(sps)
  config = _config(seconds)
  assert budget.plan_total_steps(config, str(tmp_path), measure) == expected
  assert measure.calls == [config.budget.measure_steps]


def test_min_steps_holds_on_a_slow_machine(tmp_path):
  config = _config(seconds=60.0, min_steps=1000)
  assert budget.plan_total_steps(config, str(tmp_path), FakeMeasure(1.0)) == 1000


def test_plan_file_is_written_and_a_resumed_run_reads_it_without_measuring(tmp_path):
  config = _config(seconds=600.0)
  steps = budget.plan_total_steps(config, str(tmp_path), FakeMeasure(0.165))
  with open(tmp_path / budget.PLAN_FILE) as f:
    plan = json.load(f)
  assert plan["total_steps"] == steps == 3600
  assert plan["seconds_per_step"] == 0.165
  assert plan["budget"] == {"seconds": 600.0, "min_steps": 0, "max_steps": 4000, "granularity": 50,
                            "warmup_steps": 5, "measure_steps": 30}
  assert plan["machine"]["cpu_count"] == os.cpu_count()
  assert not [name for name in os.listdir(tmp_path) if name != budget.PLAN_FILE]  # no temp file left
  # A resume on a machine twice as fast must not re-plan.
  assert budget.plan_total_steps(config, str(tmp_path), _never) == 3600


def _write(tmp_path, edit):
  config = _config(seconds=600.0)
  budget.plan_total_steps(config, str(tmp_path), FakeMeasure(0.165))
  path = tmp_path / budget.PLAN_FILE
  path.write_text(edit(path.read_text()))
  return config, str(path)


@pytest.mark.parametrize("edit", [
    lambda text: text[: len(text) // 2],                                  # truncated
    lambda text: "",                                                      # empty
    lambda text: text.replace('"total_steps": 3600', '"total_steps": 5000'),  # hand-edited steps
    lambda text: text.replace('"total_steps": 3600', '"total_steps": "3600"'),
    lambda text: text.replace('"seconds_per_step": 0.165', '"seconds_per_step": 0.1'),
    lambda text: text.replace('"seconds_per_step": 0.165', '"seconds_per_step": -1'),
    lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "budget"}),
    lambda text: text.replace('"version": 1', '"version": 99'),
], ids=["truncated", "empty", "steps", "steps-string", "speed", "negative-speed", "no-budget",
        "version"])
def test_a_damaged_or_edited_plan_stops_the_run_and_says_how_to_fix_it(tmp_path, edit):
  config, path = _write(tmp_path, edit)
  with pytest.raises(ConfigError) as error:
    budget.plan_total_steps(config, str(tmp_path), _never)
  assert path in str(error.value)
  assert f"delete {path}" in str(error.value)


def test_resuming_with_another_budget_is_refused(tmp_path):
  budget.plan_total_steps(_config(seconds=600.0), str(tmp_path), FakeMeasure(0.165))
  for changed in (_config(seconds=300.0), _config(seconds=600.0, total_steps=8000),
                  _config(seconds=600.0, log_every_steps=100)):
    with pytest.raises(ConfigError, match="planned this run for budget"):
      budget.plan_total_steps(changed, str(tmp_path), _never)


def test_resuming_a_budgeted_run_with_the_budget_off_needs_its_step_count(tmp_path):
  budget.plan_total_steps(_config(seconds=600.0), str(tmp_path), FakeMeasure(0.165))
  with pytest.raises(ConfigError, match="--config.total_steps=3600"):
    budget.plan_total_steps(_config(seconds=0), str(tmp_path), _never)
  assert budget.plan_total_steps(_config(seconds=0, total_steps=3600), str(tmp_path), _never) == 3600


def test_budget_off_is_total_steps_and_writes_nothing(tmp_path):
  assert budget.plan_total_steps(_config(seconds=0), str(tmp_path), _never) == 4000
  config = _config()
  del config["budget"]
  assert budget.plan_total_steps(config, str(tmp_path), _never) == 4000
  assert not os.listdir(tmp_path)


def test_a_budget_is_not_planned_over_checkpoints_trained_without_one(tmp_path):
  (tmp_path / "checkpoints" / "500").mkdir(parents=True)
  with pytest.raises(ConfigError, match="without a budget plan"):
    budget.plan_total_steps(_config(seconds=600.0), str(tmp_path), _never)


@pytest.mark.parametrize("key, value", [("seconds", -1), ("measure_steps", 0), ("min_steps", 5000),
                                        ("warmup_steps", -1)])
def test_validate_names_the_key(key, value):
  config = _config()
  config.budget[key] = value
  with pytest.raises(ConfigError, match=f"config.budget.{key}"):
    budget.validate(config)


def test_with_total_steps_rebuilds_the_schedule_and_brings_durations_inside(tmp_path):
  config = _config()
  config.optimizer = optim.default_config()
  config.optimizer.warmup_steps = 100
  short = budget.with_total_steps(config, 300)
  assert config.total_steps == 4000 and config.checkpoint_every_steps == 500  # a copy
  assert (short.total_steps, short.checkpoint_every_steps, short.log_every_steps) == (300, 300, 50)
  assert short.optimizer.warmup_steps == 100  # absolute
  # The cosine built from the new config ends at 300: half the peak halfway through the decay.
  schedule = optim.learning_rate_schedule(short.optimizer, short.batch_size, short.total_steps)
  peak = float(schedule(100))
  assert float(schedule(200)) == pytest.approx(peak / 2, rel=1e-5)
  assert float(schedule(300)) == pytest.approx(0.0, abs=1e-7)
  with pytest.raises(ValueError):
    budget.with_total_steps(config, 0)


def test_time_steps_calls_the_step_warmup_plus_n_times_and_keeps_the_callers_state():
  calls = []

  @jax.jit
  def compiled(state, batch):
    return state + batch, {"sum": jnp.sum(state)}

  def step(state, batch):
    calls.append(batch)
    return compiled(state, batch)

  state = jnp.zeros((64, 64))
  batches = (jnp.full((64, 64), float(i)) for i in range(100))
  seconds = budget.time_steps(step, state, batches, warmup=2, n=5)
  assert seconds > 0
  assert len(calls) == 7
  assert float(state.sum()) == 0.0


def test_time_steps_survives_a_step_that_donates_its_state():
  step = jax.jit(lambda state, batch: ({"w": state["w"] * 2 + batch}, {}), donate_argnums=(0,))
  state = {"w": jnp.ones((8,))}
  budget.time_steps(step, state, iter([jnp.ones((8,))] * 4), warmup=1, n=3)
  assert float(state["w"].sum()) == 8.0  # still readable: the timer stepped a copy


_TWO_PROCESSES = r"""
import json, os, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"127.0.0.1:{sys.argv[1]}", num_processes=2, process_id=int(sys.argv[2]))
import ml_collections
from sslax import budget
config = ml_collections.ConfigDict(dict(total_steps=4000, log_every_steps=50, budget=budget.default_config()))
config.budget.seconds = 600.0
workdir = sys.argv[3]
# Process 1 measures a machine twice as slow: only process 0's measurement may count.
sps = 0.165 if jax.process_index() == 0 else 0.33
first = budget.plan_total_steps(config, workdir, lambda n: sps)
again = budget.plan_total_steps(config, workdir, lambda n: 1 / 0)
print(json.dumps({"first": first, "again": again}))
"""


def test_every_process_trains_process_zeros_plan(tmp_path):
  import socket
  import subprocess
  import sys

  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
  procs = [subprocess.Popen([sys.executable, "-c", _TWO_PROCESSES, str(port), str(i),
                             str(tmp_path / f"process{i}")],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  try:
    outputs = [p.communicate(timeout=120) for p in procs]
  finally:
    for p in procs:  # one that failed leaves the other waiting for it
      if p.poll() is None:
        p.kill()
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-2000:]
  results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
  assert results == [{"first": 3600, "again": 3600}] * 2
  # Only process 0 writes (here each has its own workdir, as when WORKDIR is not shared).
  assert os.path.exists(tmp_path / "process0" / budget.PLAN_FILE)
  assert not os.path.exists(tmp_path / "process1" / budget.PLAN_FILE)


def test_the_trainer_trains_the_planned_steps_and_a_resume_keeps_them(tmp_path, monkeypatch):
  """Through sslax.train: a budget of about 6 measured steps plans 4 (rounded down to the log
  interval of 2), config.json and the metrics say 4, and the second start reads the plan."""
  from sslax import train
  from tests.helpers import tiny_config, write_tiny_fashion_mnist

  write_tiny_fashion_mnist(str(tmp_path / "idx"))
  monkeypatch.setenv("SSLAX_FASHION_MNIST_DIR", str(tmp_path / "idx"))
  config = tiny_config(str(tmp_path / "tfds"))
  config.total_steps, config.log_every_steps, config.checkpoint_every_steps = 8, 2, 2
  config.budget.warmup_steps, config.budget.measure_steps = 1, 2
  measured = []
  real = budget.time_steps

  def timed(*args, **kwargs):
    seconds = real(*args, **kwargs)
    measured.append(seconds)
    return seconds

  monkeypatch.setattr(budget, "time_steps", timed)
  workdir = str(tmp_path / "run")
  # A first run measures the real step (a huge budget: capped at total_steps).
  probe_dir = str(tmp_path / "probe")
  config_probe = config.copy_and_resolve_references()
  config_probe.budget.seconds = 1e6
  train.train(config_probe, probe_dir)
  assert len(measured) == 1
  plan = budget.read_plan(budget.plan_path(probe_dir))
  assert plan["total_steps"] == 8  # capped at total_steps on any machine

  # A second run, its speed fixed, with 5.5 steps' worth of budget.
  config.budget.seconds = 5.5 * plan["seconds_per_step"]
  monkeypatch.setattr(budget, "time_steps", lambda *a, **k: plan["seconds_per_step"])
  state, _, _ = train.train(config, workdir)
  assert int(state.step) == 4
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["total_steps"] == 4
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert [json.loads(line)["step"] for line in f] == [2, 4]
  monkeypatch.setattr(budget, "time_steps", lambda *a, **k: pytest.fail("measured again"))
  state, _, _ = train.train(config, workdir)
  assert int(state.step) == 4
