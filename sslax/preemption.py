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
* Ctrl-C (SIGINT) on one process is treated like SIGTERM: the loop saves the current step
  and stops, with exit status 130 (= 128 + SIGINT). A second Ctrl-C exits at once, with
  status 130 too; the checkpoints already written stay (Orbax commits a checkpoint by
  renaming its finished temporary folder, so a cut save leaves no half checkpoint).

A preempted `train()` raises `Preempted` after the checkpoint is written and closed;
`python -m sslax.main` turns it into exit status 143 (= 128 + SIGTERM, what a
killed process reports), so a resume loop can tell "preempted, run again" from
"finished" (status 0). See launch/tpu_pod.sh and launch/slurm.sbatch.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import jax

from sslax import parallel

log = logging.getLogger(__name__)

EXIT_STATUS = 128 + signal.SIGTERM
INTERRUPTED_STATUS = 128 + signal.SIGINT


class Preempted(Exception):
  """Training stopped on SIGTERM (or SIGINT) after saving the checkpoint at `step`;
  `exit_status`: 128 + the signal."""

  def __init__(self, step: int, directory: str, signum: int = signal.SIGTERM):
    name = "SIGINT, Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    verb = "interrupted" if signum == signal.SIGINT else "preempted"
    super().__init__(f"{verb} ({name}): saved the checkpoint at step {step} in {directory}; "
                     "run the same command again to resume from it")
    self.step = step
    self.exit_status = 128 + signum


class PreemptionWatch:
  """`reached(step)` is True at the step where every process should save and stop.

  `start()` installs the single-process SIGTERM and SIGINT handlers, `stop()` puts the
  previous ones back (call it in a `finally`). `signum`: the signal that stopped the run.
  """

  def __init__(self):
    self._multi_process = jax.process_count() > 1
    self._signalled = False
    self.signum = signal.SIGTERM
    self._previous = {}

  def start(self) -> "PreemptionWatch":
    if threading.current_thread() is not threading.main_thread():
      # Signal handlers can only be set from the main thread; a loop run elsewhere
      # (a notebook's worker thread) simply keeps the default behaviour.
      return self
    handled = (signal.SIGINT,) if self._multi_process else (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
      self._previous[signum] = signal.signal(signum, self._on_signal)
    return self

  def stop(self) -> None:
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}

  def _on_signal(self, signum, frame) -> None:
    del frame
    if signum == signal.SIGINT and (self._signalled or self._multi_process):
      # The second Ctrl-C (or one on a multi-process run, where the processes could not agree
      # on a step to save): out at once.
      os.write(2, b"\ninterrupted again (Ctrl-C): exiting now, without saving this step\n")
      os._exit(INTERRUPTED_STATUS)
    if signum == signal.SIGINT:
      os.write(2, b"\nCtrl-C: saving a checkpoint at the end of this step, then stopping "
                  b"(Ctrl-C again to exit at once)\n")
    self.signum = signum
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
