"""The pretraining loop: resume, stream batches, step, log, checkpoint, stop on SIGTERM.

It trains whatever `sslax.assemble.build` made of the config and never knows which method:
the per-device step is in sslax/step.py, and what runs after training (evaluation,
fine-tuning) is orchestrated by sslax/main.py.
"""

from __future__ import annotations

import logging
import os
import time

import flax.linen as nn
import jax
import ml_collections

from sslax import assemble, budget, errors, parallel, preemption
from sslax import checkpoint as checkpoint_lib
from sslax import config as config_lib
from sslax import metrics as metrics_lib
from sslax import step as step_lib
from sslax import workdir as workdir_lib
from sslax.data import pipeline
from sslax.step import TrainState

log = logging.getLogger(__name__)


def train(config: ml_collections.ConfigDict, workdir: str, init_from: dict | None = None,
          source: pipeline.Source | None = None, *,
          start_over: bool = False) -> tuple[TrainState, nn.Module, jax.sharding.Mesh]:
  """Pretrains until config.total_steps, resuming from WORKDIR/checkpoints if any -> (final
  state, model, mesh). A fresh run starts from `init_from`'s subtrees where given
  (fine-tuning); `source`: the training data, opened from config.data if None;
  `start_over`: when no checkpoint in WORKDIR can be read, set them aside and start at step 0,
  and train in a workdir whose config.json is another run's (otherwise either stops the run,
  see sslax/checkpoint.py)."""
  config_lib.validate(config)
  mesh = assemble.make_mesh(config)
  with workdir_lib.locked(workdir):  # one process per workdir (sslax/workdir.py)
    return _train_locked(config, workdir, mesh, init_from, source, start_over)


def _train_locked(config, workdir, mesh, init_from, source, start_over):
  """`train` once the workdir is locked."""
  run = assemble.build(config, mesh, source=source, init_from=init_from)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, keep=config.keep_checkpoints, async_save=config.async_checkpoints)
  try:
    # A checkpoint of another config stops the run here, before anything is written.
    checkpointer.check_structure(run.state, config)
    if not checkpointer.all_steps() and not start_over:  # then WORKDIR/config.json decides
      checkpoint_lib.check_config_json(
          workdir, config, run.state,
          lambda saved: assemble.build(saved, mesh, source=run.source).state)
    # A wall-clock budget (sslax/budget.py) fixes total_steps from the measured speed, once
    # per workdir; the schedules are built from it, so the step is rebuilt with the planned count.
    steps = budget.plan_total_steps(config, workdir, lambda n: _seconds_per_step(run, config, n))
    if steps != config.total_steps:
      config = budget.with_total_steps(config, steps)
      run = assemble.build(config, mesh, source=run.source, init_from=init_from)
    state, restored_step = checkpointer.restore_latest(run.state, start_over=start_over)
  except BaseException:
    checkpointer.close()
    raise
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  start_step = int(restored_step or 0)
  if restored_step is not None:
    log.warning("resuming from the checkpoint at step %d in %s", start_step, checkpointer.directory)

  batches, device_batches = _batches(run, config, start_step)
  diagnostics_every = config.diagnostics.every_steps or config.log_every_steps if run.diagnostics else 0
  writer = metrics_lib.MetricWriter(workdir, start_step=start_step)
  progress = metrics_lib.Progress(config.total_steps, config.batch_size, start_step)
  guard = FiniteGuard(start_step, restored_step, checkpointer.directory, config)
  train_start = time.perf_counter()
  step = start_step
  # SIGTERM or Ctrl-C -> checkpoint and stop (sslax/preemption.py)
  watch = preemption.PreemptionWatch().start()
  preempted = False
  failure = None
  try:
    while step < config.total_steps and not preempted:
      batch = next(device_batches)
      state, step_metrics = run.step_fn(state, batch)
      step += 1
      guard.add(step_metrics.pop("nonfinite"))
      preempted = watch.reached(step)  # the same step on every process
      if step % config.log_every_steps == 0 or step == config.total_steps:
        scalars = {k: float(v) for k, v in parallel.to_host(step_metrics).items()}
        guard.check()  # before anything of a bad step is logged or saved
        scalars.update(progress.update(step, scalars["loss"]))
        if diagnostics_every and step % diagnostics_every == 0:
          scalars.update(run.diagnostics(state, batch))
        writer.write(step, scalars)
      elif diagnostics_every and step % diagnostics_every == 0:
        guard.check()
        writer.write(step, run.diagnostics(state, batch))
      if preempted or step % config.checkpoint_every_steps == 0 or step == config.total_steps:
        guard.check()
        checkpointer.save(step, state, force=preempted)
        guard.saved(step)
  except BaseException as error:
    failure = error
    _raise_if_disk_full(error, workdir, state)
    raise
  finally:
    watch.stop()
    batches.close()
    for close in (checkpointer.close, writer.close):
      try:
        close()
      except Exception as error:  # noqa: BLE001 - e.g. the disk filled during an async save
        if failure is not None:  # the first failure is the one to report
          log.debug("while closing after %r: %r", failure, error)
          continue
        failure = error
        _raise_if_disk_full(error, workdir, state)
        raise
  if jax.process_index() == 0 and step > start_step:
    log.info("trained steps %d..%d in %.1f s", start_step, step, time.perf_counter() - train_start)
  if preempted:  # raised only now: the checkpoint above is written and closed
    raise preemption.Preempted(step, checkpointer.directory, watch.signum)
  return state, run.model, mesh


class FiniteGuard:
  """The per-step non-finite codes (sslax/step.py), kept on the device until the next log
  or save; `check()` fetches them in one transfer and raises TrainingDiverged for the first
  bad step, naming the last good checkpoint (no later one is ever saved)."""

  def __init__(self, start_step: int, restored_step: int | None, directory: str,
               config: ml_collections.ConfigDict):
    self._checked_through = start_step
    self._pending = []
    self._last_saved = restored_step
    self._directory = directory
    self._lr = config.optimizer.get("base_lr")

  def add(self, code: jax.Array) -> None:
    self._pending.append(code)

  def saved(self, step: int) -> None:
    self._last_saved = step

  def check(self) -> None:
    codes = [int(c) for c in parallel.to_host(self._pending)]
    first = self._checked_through + 1
    self._checked_through += len(codes)
    self._pending = []
    for offset, code in enumerate(codes):
      if code:
        raise errors.TrainingDiverged(self.message(first + offset, code))

  def message(self, step: int, code: int) -> str:
    parts = " and ".join(step_lib.nonfinite_parts(code))
    if self._last_saved is None:
      where = "No checkpoint was saved, so the same command starts again from step 0"
    else:
      where = (f"The last good checkpoint is step {self._last_saved} in {self._directory} "
               "(nothing later was saved); running the command again resumes from it")
    return (f"training diverged: the {parts} became NaN or infinite at step {step}. {where}: "
            f"lower config.optimizer.base_lr (now {self._lr}) or check the data first; if it "
            "diverges again from there, that state is already off: start afresh in another "
            "--workdir")


def _raise_if_disk_full(error: BaseException, workdir: str, state) -> None:
  """A full disk, anywhere in `error`'s chain -> one WorkdirError naming the workdir and the
  bytes a checkpoint needs (instead of hundreds of lines of Orbax's tracebacks)."""
  if workdir_lib.is_disk_full(error):
    needed = sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, "nbytes"))
    raise workdir_lib.disk_full_error(workdir, needed) from None


def _batches(run: assemble.Run, config: ml_collections.ConfigDict, start_step: int = 0):
  """-> (this host's batch stream from `start_step`, to close; the same batches on the mesh)."""
  batches = pipeline.host_batches(
      run.source, global_batch=config.batch_size, seed=config.seed, start_step=start_step)
  keys = (run.source.input_key, "mask", "label", "position")
  return batches, parallel.device_prefetch(
      ({k: b[k] for k in keys if k in b} for b in batches), run.mesh)


def _seconds_per_step(run: assemble.Run, config: ml_collections.ConfigDict, n: int) -> float:
  """The loop's step timed on the run's own batches, from a copy of its initial state."""
  batches, device_batches = _batches(run, config)
  try:
    return budget.time_steps(run.step_fn, run.state, device_batches, config.budget.warmup_steps, n)
  finally:
    batches.close()
