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
import numpy as np

from sslax import assemble, budget, parallel, preemption
from sslax import checkpoint as checkpoint_lib
from sslax import config as config_lib
from sslax import metrics as metrics_lib
from sslax.data import pipeline
from sslax.step import TrainState

log = logging.getLogger(__name__)


def train(config: ml_collections.ConfigDict, workdir: str, init_from: dict | None = None,
          source: pipeline.Source | None = None) -> tuple[TrainState, nn.Module, jax.sharding.Mesh]:
  """Pretrains until config.total_steps, resuming from WORKDIR/checkpoints if any -> (final
  state, model, mesh). A fresh run starts from `init_from`'s subtrees where given
  (fine-tuning); `source`: the training data, opened from config.data if None."""
  config_lib.validate(config)
  mesh = assemble.make_mesh(config)
  os.makedirs(workdir, exist_ok=True)
  run = assemble.build(config, mesh, source=source, init_from=init_from)
  # A wall-clock budget (sslax/budget.py) fixes total_steps from the measured speed, once per
  # workdir; the schedules are built from it, so the step is rebuilt with the planned count.
  steps = budget.plan_total_steps(config, workdir, lambda n: _seconds_per_step(run, config, n))
  if steps != config.total_steps:
    config = budget.with_total_steps(config, steps)
    run = assemble.build(config, mesh, source=run.source, init_from=init_from)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  state = run.state
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, keep=config.keep_checkpoints, async_save=config.async_checkpoints)
  state, restored_step = checkpointer.restore_latest(state)
  start_step = int(restored_step or 0)
  if restored_step is not None:
    log.warning("resuming from the checkpoint at step %d in %s", start_step, checkpointer.directory)

  batches, device_batches = _batches(run, config, start_step)
  diagnostics_every = config.diagnostics.every_steps or config.log_every_steps if run.diagnostics else 0
  writer = metrics_lib.MetricWriter(workdir, start_step=start_step)
  progress = metrics_lib.Progress(config.total_steps, config.batch_size, start_step)
  train_start = time.perf_counter()
  step = start_step
  watch = preemption.PreemptionWatch().start()  # SIGTERM -> checkpoint and stop (sslax/preemption.py)
  preempted = False
  try:
    while step < config.total_steps and not preempted:
      batch = next(device_batches)
      state, step_metrics = run.step_fn(state, batch)
      step += 1
      preempted = watch.reached(step)  # the same step on every process
      if step % config.log_every_steps == 0 or step == config.total_steps:
        scalars = {k: float(v) for k, v in parallel.to_host(step_metrics).items()}
        scalars.update(progress.update(step, scalars["loss"]))
        if not np.isfinite(scalars["loss"]):
          raise FloatingPointError(
              f"loss is {scalars['loss']} at step {step}: lower optimizer.base_lr or check the data")
        if diagnostics_every and step % diagnostics_every == 0:
          scalars.update(run.diagnostics(state, batch))
        writer.write(step, scalars)
      elif diagnostics_every and step % diagnostics_every == 0:
        writer.write(step, run.diagnostics(state, batch))
      if preempted or step % config.checkpoint_every_steps == 0 or step == config.total_steps:
        checkpointer.save(step, state, force=preempted)
  finally:
    watch.stop()
    batches.close()
    checkpointer.close()
    writer.close()
  if jax.process_index() == 0 and step > start_step:
    log.info("trained steps %d..%d in %.1f s", start_step, step, time.perf_counter() - train_start)
  if preempted:  # raised only now: the checkpoint above is written and closed
    raise preemption.Preempted(step, checkpointer.directory)
  return state, run.model, mesh


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
