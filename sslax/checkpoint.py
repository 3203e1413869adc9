"""Orbax checkpoints: async saves, keep N, resume from the newest one that restores.

Checkpoints live in WORKDIR/checkpoints/<step>. The whole training state is one
pytree (parameters, BatchNorm statistics, optimizer state, method state such as a
queue or a target network, and the step). The data order is a function of the
step (sslax/data/pipeline.py), so restoring the step restores the data position.

A checkpoint that fails to restore (a preempted write, a truncated file) is moved
to WORKDIR/checkpoints_corrupt/ with a warning, never deleted, and the previous
one is used.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with corrupt-checkpoint fallback."""

  def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.corrupt_directory = os.path.abspath(os.path.join(workdir, "checkpoints_corrupt"))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save))

  def save(self, step: int, state: Any, *, force: bool = False) -> None:
    self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def restore_latest(self, target: Any) -> tuple[Any, int | None]:
    """Restores the newest readable checkpoint into the structure/sharding of `target`.

    Returns (state, step), or (target, None) when there is no checkpoint.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    for step in reversed(self.all_steps()):
      try:
        state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return state, step
      except Exception as error:  # noqa: BLE001 - any failure means this one is unusable
        moved = self._set_aside(step)
        log.warning("checkpoint at step %d could not be restored (%s: %s); moved it to %s "
                    "and trying the previous one", step, type(error).__name__,
                    str(error).splitlines()[0][:200] if str(error) else "", moved)
    return target, None

  def _set_aside(self, step: int) -> str:
    """Moves a broken checkpoint out of the manager's way (a later save may reuse its
    step number) without deleting anything."""
    source = os.path.join(self.directory, str(step))
    destination = os.path.join(self.corrupt_directory, str(step))
    if jax.process_index() == 0 and os.path.exists(source):
      os.makedirs(self.corrupt_directory, exist_ok=True)
      suffix = 0
      while os.path.exists(destination):
        suffix += 1
        destination = os.path.join(self.corrupt_directory, f"{step}.{suffix}")
      shutil.move(source, destination)
    self._manager.reload()
    return destination
