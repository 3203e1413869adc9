"""Preemption: SIGTERM (what TPU maintenance events, spot reclaims and SLURM send before
they kill a job) makes the training loop save a checkpoint at a step every process
agrees on, and stop cleanly; the next start resumes from that checkpoint.

* Several processes (after `jax.distributed.initialize`): JAX's preemption sync
  manager catches SIGTERM on whichever process gets it, tells the others through the
  coordination service, and `parallel.reached_preemption_sync_point(step)`
  turns True on every process at the same step (the largest step any process had
  reached, plus one). No process waits in a collective the others never enter, and
  the check costs no device synchronization.
* One process: a Python SIGTERM handler sets a flag that the loop reads after each
  step. (The sync manager exists only after `jax.distributed.initialize`.)

A preempted `train()` raises `Preempted` after the checkpoint is written and closed;
`python -m sslax.main` turns it into exit status 143 (= 128 + SIGTERM, what a
killed process reports), so a resume loop can tell "preempted, run again" from
"finished" (status 0). See launch/tpu_pod.sh and launch/slurm.sbatch.
"""

from __future__ import annotations

import logging
import signal
import threading

import jax

from sslax import parallel

log = logging.getLogger(__name__)

EXIT_STATUS = 128 + signal.SIGTERM


class Preempted(Exception):
  """Training stopped on SIGTERM after saving the checkpoint at `step`."""

  def __init__(self, step: int, directory: str):
    super().__init__(f"preempted (SIGTERM): saved the checkpoint at step {step} in {directory}; "
                     "run the same command again to resume from it")
    self.step = step


class PreemptionWatch:
  """`reached(step)` is True at the step where every process should save and stop.

  `start()` installs the single-process SIGTERM handler, `stop()` puts the previous
  one back (call it in a `finally`).
  """

  def __init__(self):
    self._multi_process = jax.process_count() > 1
    self._signalled = False
    self._previous = None

  def start(self) -> "PreemptionWatch":
    if not self._multi_process and threading.current_thread() is threading.main_thread():
      # Signal handlers can only be set from the main thread; a loop run elsewhere
      # (a notebook's worker thread) simply keeps the default SIGTERM behaviour.
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
    return self

  def stop(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _on_sigterm(self, signum, frame) -> None:
    del signum, frame
    self._signalled = True

  def reached(self, step: int) -> bool:
    """Call after every step with the number of steps done (every process, every step)."""
    if self._multi_process:
      try:
        return parallel.reached_preemption_sync_point(step)
      except RuntimeError as error:  # the service is off (jax_enable_preemption_service=False)
        log.warning("SIGTERM will not save a checkpoint: %s", error)
        self._multi_process = False  # warn once; a plain SIGTERM then ends the process
        return False
    return self._signalled
