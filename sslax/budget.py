"""A wall-clock pretraining budget: the step count chosen from the measured speed.

The same config runs at very different speeds on two "2-core" machines (the README's
Fashion-MNIST demo: 1,550 images/s here, about 800 on another AMD EPYC), so a fixed step
count cannot promise a wall time. With config.budget.seconds > 0 a fresh run times a few
steps after warm-up and fixes

  total_steps = clamp(round_down(floor(seconds / seconds_per_step), log_every_steps),
                      budget.min_steps, config.total_steps)

config.total_steps is the cap, so a fast machine trains no longer than the config says.

The choice is written to WORKDIR/budget.json before the first step, and a resumed run reads
it back without measuring again: the learning-rate and target-momentum schedules are built
from total_steps, so a resume that re-measured would continue a different schedule. For the
same reason a plan that does not add up (edited by hand, truncated) stops the run instead of
being re-planned. The file, written once by process 0 with a temp file and a rename:

  {"version": 1, "total_steps": 2500, "seconds_per_step": 0.1651,
   "budget": {"seconds": 420.0, "min_steps": 1000, "max_steps": 4000, "granularity": 50,
              "warmup_steps": 5, "measure_steps": 30},
   "machine": {"platform": ..., "cpu": ..., "cpu_count": 2, "backend": "cpu", ...},
   "created": "2025-01-01T12:00:00Z"}

total_steps is a function of the recorded seconds_per_step and budget only, which is what
`read_plan` checks. Where the measuring happens (a throwaway copy of the state, the real
step function and input pipeline) is the caller's: it passes `measure(n) -> seconds/step`,
and `time_steps` is the generic timer for it. It should time what the loop runs every step
(the online probe's step too, where on), or the plan overshoots by the part left out.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import platform
import tempfile
import time
from typing import Any, Callable, Iterable

import jax
import ml_collections
import numpy as np

from sslax import parallel
from sslax.errors import ConfigError

log = logging.getLogger(__name__)

PLAN_FILE = "budget.json"
PLAN_VERSION = 1


def default_config() -> ml_collections.ConfigDict:
  """config.budget. seconds 0: off, config.total_steps is the step count. seconds > 0: the
  step loop's wall time (compilation, measuring, checkpoint waits and evaluation excluded);
  config.total_steps becomes the largest step count a fast machine may run."""
  return ml_collections.ConfigDict(dict(
      seconds=0.0,
      warmup_steps=5,     # untimed: the first call compiles, the next few settle threads and caches
      measure_steps=30,   # timed; more averages out a machine shared with other jobs
      min_steps=0))       # a slow machine still trains this many (0: one log interval)


def plan_path(workdir: str) -> str:
  return os.path.join(workdir, PLAN_FILE)


def steps_for(seconds_per_step: float, budget_seconds: float, *, min_steps: int, max_steps: int,
              granularity: int) -> int:
  """floor(budget / seconds_per_step) rounded down to a multiple of `granularity` (so log
  steps stay aligned), then clamped to [min_steps, max_steps]; min_steps 0 means one
  granularity. Clamping last keeps both bounds exact even when they are not multiples."""
  if not seconds_per_step > 0 or not math.isfinite(seconds_per_step):
    raise ValueError(f"seconds_per_step must be a positive number, got {seconds_per_step!r}")
  granularity = max(int(granularity), 1)
  steps = int(math.floor(budget_seconds / seconds_per_step))
  steps -= steps % granularity
  low = min(min_steps or granularity, max_steps)
  return int(min(max(steps, low), max_steps))


def _budget_record(config: ml_collections.ConfigDict) -> dict:
  """The inputs of the plan that come from the config; a resumed run must ask for the same."""
  budget = config.budget
  return {"seconds": float(budget.seconds), "min_steps": int(budget.min_steps),
          "max_steps": int(config.total_steps), "granularity": int(config.log_every_steps),
          "warmup_steps": int(budget.warmup_steps), "measure_steps": int(budget.measure_steps)}


def _machine() -> dict:
  """Where the speed was measured: for the reader of the plan; a resume elsewhere is allowed."""
  cpu = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
  except OSError:
    pass
  devices = jax.devices()
  return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
          "backend": jax.default_backend(), "device_kind": devices[0].device_kind,
          "device_count": len(devices), "process_count": jax.process_count(),
          "jax": jax.__version__}


def validate(config: ml_collections.ConfigDict) -> None:
  """ConfigError for a budget block that cannot work; a config without one passes."""
  if "budget" not in config:
    return
  budget = config.budget
  if not (isinstance(budget.seconds, (int, float)) and budget.seconds >= 0):
    raise ConfigError(f"config.budget.seconds: a wall time in seconds >= 0 (0: off), got {budget.seconds!r}")
  for key, low in (("warmup_steps", 0), ("measure_steps", 1), ("min_steps", 0)):
    value = budget[key]
    if not (isinstance(value, int) and value >= low):
      raise ConfigError(f"config.budget.{key}: an integer >= {low}, got {value!r}")
  if budget.min_steps > config.total_steps:
    raise ConfigError(
        f"config.budget.min_steps = {budget.min_steps} exceeds config.total_steps = "
        f"{config.total_steps}, the most a budgeted run may train; lower min_steps or raise total_steps")


def read_plan(path: str, config: ml_collections.ConfigDict | None = None) -> dict:
  """The plan in `path`, checked: ConfigError naming the file and the fix when it does not
  parse, misses a field, does not add up, or (given `config`) was made for another budget."""
  delete = (f"delete {path} to measure again and plan afresh (only before training starts: "
            "a run resumed with another step count follows another schedule)")
  try:
    with open(path) as f:
      plan = json.load(f)
    total = plan["total_steps"]
    sps = plan["seconds_per_step"]
    recorded = plan["budget"]
    keys = ("seconds", "min_steps", "max_steps", "granularity")
    inputs = {k: recorded[k] for k in keys}
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise ConfigError(f"{path}: not a readable budget plan ({type(error).__name__}: {error}); "
                      f"{delete}") from None
  if plan.get("version") != PLAN_VERSION:
    raise ConfigError(f"{path}: plan version {plan.get('version')!r}, this sslax reads "
                      f"{PLAN_VERSION}; {delete}")
  try:
    expected = steps_for(float(sps), float(inputs["seconds"]), min_steps=int(inputs["min_steps"]),
                         max_steps=int(inputs["max_steps"]), granularity=int(inputs["granularity"]))
  except (TypeError, ValueError) as error:
    raise ConfigError(f"{path}: {error}; {delete}") from None
  if not isinstance(total, int) or isinstance(total, bool) or total != expected:
    raise ConfigError(
        f"{path}: total_steps = {total!r} does not follow from its seconds_per_step = {sps!r} and "
        f"budget {inputs} (that gives {expected}); the file was edited or damaged. To train a "
        f"fixed number of steps set --config.budget.seconds=0 --config.total_steps=N instead; "
        f"or {delete}")
  if config is not None:
    asked = {k: v for k, v in _budget_record(config).items() if k in keys}
    if asked != {k: type(asked[k])(v) for k, v in inputs.items()}:
      raise ConfigError(
          f"{path} planned this run for budget {inputs}, the config asks for {asked}: a resumed "
          "run keeps its plan; resume with the planned values (config.budget.*, config.total_steps "
          "as max_steps, config.log_every_steps as granularity), or use a new --workdir")
  return plan


def _write_plan(path: str, plan: dict) -> None:
  """Atomically: a reader (or a resumed run after a crash) sees the whole plan or none."""
  directory = os.path.dirname(path) or "."
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".budget.", suffix=".tmp", dir=directory)
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(plan, f, indent=2)
      f.write("\n")
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _has_checkpoints(workdir: str) -> bool:
  directory = os.path.join(workdir, "checkpoints")
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def _broadcast(values: list[float]) -> list[float]:
  """Process 0's values on every process (a no-op with one process). float32, as JAX without
  x64 would make it anyway: exact for step counts below 2**24, and every process, process 0
  included, plans from the same rounded seconds per step."""
  if jax.process_count() == 1:
    return values
  return [float(v) for v in parallel.broadcast_from_process_0(np.asarray(values, np.float32))]


# Process 0's verdict on the plan file, broadcast so every process takes the same branch.
_NO_PLAN, _PLAN, _BAD_PLAN = 0, 1, 2


def plan_total_steps(config: ml_collections.ConfigDict, workdir: str,
                     measure: Callable[[int], float]) -> int:
  """The run's total_steps: config.total_steps when config.budget.seconds is 0 (or there is no
  budget block); else the step count planned in WORKDIR/budget.json, measuring and writing it
  on a fresh run. `measure(n)` runs n timed steps after config.budget.warmup_steps untimed
  ones and returns seconds per step; on several processes every process calls it (the steps
  are collective) and process 0's answer decides. Raises ConfigError for a plan that is
  damaged or was made for another budget, and for a budget asked of a workdir whose
  checkpoints were trained without one: re-planning would change the schedule mid-run."""
  path = plan_path(workdir)
  budget_on = "budget" in config and config.budget.seconds > 0
  if budget_on:
    validate(config)
  # Process 0 reads; the others learn only the verdict and the step count, and raise a
  # short error of their own if it is bad (process 0's names the file).
  status, steps, error = _NO_PLAN, 0, None
  if jax.process_index() == 0 and os.path.exists(path):
    try:
      plan = read_plan(path, config if budget_on else None)
      status, steps = _PLAN, plan["total_steps"]
    except ConfigError as e:
      status, error = _BAD_PLAN, e
  if jax.process_index() == 0 and status == _NO_PLAN and budget_on and _has_checkpoints(workdir):
    status, error = _BAD_PLAN, ConfigError(
        f"{workdir} holds checkpoints of a run without a budget plan ({PLAN_FILE}): resume it "
        f"with --config.budget.seconds=0 and its total_steps, or start the budgeted run in a new "
        "--workdir")
  status, steps = (int(v) for v in _broadcast([status, steps]))
  if status == _BAD_PLAN:
    raise error or ConfigError(f"process 0 found an unusable {path}; see its error")

  if status == _PLAN:
    if not budget_on and steps != config.total_steps:
      raise ConfigError(
          f"{path} planned this run at {steps} steps, but config.budget.seconds is 0 and "
          f"config.total_steps = {config.total_steps}: resume with the run's budget "
          f"(config.budget.*), or with --config.total_steps={steps}")
    if budget_on:
      log.info("budget: %d steps, as planned in %s", steps, path)
    return steps
  if not budget_on:
    return int(config.total_steps)

  budget = config.budget
  seconds_per_step = _broadcast([float(measure(budget.measure_steps))])[0]
  record = _budget_record(config)
  steps = steps_for(seconds_per_step, record["seconds"], min_steps=record["min_steps"],
                    max_steps=record["max_steps"], granularity=record["granularity"])
  if jax.process_index() == 0:
    _write_plan(path, {
        "version": PLAN_VERSION, "total_steps": steps, "seconds_per_step": seconds_per_step,
        "budget": record, "machine": _machine(),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
    log.warning("budget: %.4f s/step measured over %d steps; %g s -> %d steps (planned in %s)",
                seconds_per_step, budget.measure_steps, record["seconds"], steps, path)
  return steps


def with_total_steps(config: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
  """A copy of `config` that trains `steps` steps. What reads config.total_steps follows by
  itself, since it is built from the config: the learning-rate schedule (optim.py: the cosine
  ends at total_steps; warmup_steps is absolute and already capped at total_steps - 1) and
  the target-momentum schedule of BYOL / MoCo v3 / DINO (methods/base.py). What is counted in
  absolute steps stays: optimizer.warmup_steps, DINO's teacher-temperature warm-up and
  frozen last layer, SwAV's frozen prototypes, diagnostics.every_steps. A
  checkpoint_every_steps or log_every_steps past the end is brought down to it."""
  steps = int(steps)
  if steps <= 0:
    raise ValueError(f"steps must be positive, got {steps}")
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.total_steps = steps
    config.checkpoint_every_steps = min(config.checkpoint_every_steps, steps)
    config.log_every_steps = min(config.log_every_steps, steps)
  return config


def time_steps(step_fn: Callable[[Any, Any], tuple[Any, Any]], state: Any, batches: Iterable[Any],
               warmup: int, n: int, *, copy_state: bool = True) -> float:
  """Seconds per call of step_fn(state, batch) -> (state, metrics), averaged over `n` timed
  calls after `warmup` untimed ones (the first compiles), each on the next of `batches`.

  The mean, not the median: the budget is spent at the mean rate, slow steps included.
  Dispatch is asynchronous, so the clock stops only once the last step's outputs are ready.
  copy_state: start from a copy, because a step that donates its state (parallel.sharded_step
  does) would otherwise delete the caller's buffers."""
  if n < 1:
    raise ValueError(f"n must be >= 1, got {n}")
  if copy_state:
    state = jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, state)
  batches = iter(batches)
  outputs = state
  for _ in range(warmup):
    state, metrics = step_fn(state, next(batches))
    outputs = (state, metrics)
  jax.block_until_ready(outputs)
  start = time.perf_counter()
  for _ in range(n):
    state, metrics = step_fn(state, next(batches))
  jax.block_until_ready((state, metrics))
  return (time.perf_counter() - start) / n

