"""Orbax checkpoints: async saves, keep N, resume from the newest one that restores.

Checkpoints live in WORKDIR/checkpoints/<step>. The whole training state is one
pytree (parameters, BatchNorm statistics, optimizer state, method state such as a
queue or a target network, and the step). The data order is a function of the
step (sslax/data/pipeline.py), so restoring the step restores the data position.

Two kinds of checkpoint do not restore, and they are treated differently:
* unreadable (a preempted write, a truncated file): training moves it to
  WORKDIR/checkpoints_corrupt/ with a warning, never deletes it, and uses the previous
  one; a read-only user (evaluation, fine-tuning, export) only skips it. When none is
  readable, `NoReadableCheckpoint` stops the run unless the caller starts over.
* readable but of another structure (written by another config): `StructureMismatch`,
  raised before anything is moved or written; the workdir belongs to that other run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any, Callable

import jax
import ml_collections
import orbax.checkpoint as ocp

from sslax.errors import ConfigError

log = logging.getLogger(__name__)


class StructureMismatch(ConfigError):
  """The newest readable checkpoint holds a state of another shape than this config builds."""


class NoReadableCheckpoint(ConfigError):
  """Checkpoints exist, and not one of them restores."""


class AnotherRunsWorkdir(ConfigError):
  """The workdir holds no checkpoint, but its config.json is of a config that builds another
  state: training there would overwrite that run's config.json and metrics.jsonl."""


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with corrupt-checkpoint fallback.

  `read_only`: never create, move or delete anything (evaluation and fine-tuning read
  the pretraining checkpoints of a run that may still be resumed)."""

  def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.workdir = workdir
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.corrupt_directory = os.path.abspath(os.path.join(workdir, "checkpoints_corrupt"))
    self.read_only = read_only
    if read_only:
      options = ocp.CheckpointManagerOptions(
          create=False, read_only=True, save_interval_steps=0, max_to_keep=None)
    else:
      options = ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
    if read_only and not os.path.isdir(self.directory):
      self._manager = None
    else:
      # The handler named up front, so that a fresh manager can read the metadata of the
      # checkpoints already there (check_structure).
      self._manager = ocp.CheckpointManager(self.directory, options=options,
                                            item_handlers=ocp.StandardCheckpointHandler())

  def save(self, step: int, state: Any, *, force: bool = False) -> None:
    assert not self.read_only, "a read-only Checkpointer never saves"
    self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def wait(self) -> None:
    if self._manager is not None:
      self._manager.wait_until_finished()

  def close(self) -> None:
    if self._manager is not None:
      self._manager.wait_until_finished()
      self._manager.close()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps()) if self._manager is not None else []

  def latest_step(self) -> int | None:
    steps = self.all_steps()
    return steps[-1] if steps else None

  def check_structure(self, target: Any, config: ml_collections.ConfigDict | None = None) -> None:
    """Raises StructureMismatch if the newest checkpoint whose metadata reads holds another
    tree or other shapes than `target`; the message names the config keys that differ from
    WORKDIR/config.json. Unreadable checkpoints are left to `restore_latest`."""
    for step in reversed(self.all_steps()):
      try:
        saved = _leaf_shapes(self._manager.item_metadata(step).tree)
      except Exception:  # noqa: BLE001 - unreadable metadata: a corrupt checkpoint
        continue
      wanted = _leaf_shapes(jax.tree.map(ocp.utils.to_shape_dtype_struct, target))
      if saved == wanted:
        return
      differing = config_differences(self.workdir, config) if config is not None else []
      keys = f"; {listed_differences(self.workdir, differing)}" if differing else ""
      raise StructureMismatch(
          f"the checkpoint at step {step} in {self.directory} was written by another config "
          f"(its state has {_first_difference(saved, wanted)}){keys}. Nothing was changed: "
          "resume it with the config it was trained with, or start a new run with another "
          "--workdir")

  def restore_latest(self, target: Any, *, start_over: bool = False) -> tuple[Any, int | None]:
    """Restores the newest readable checkpoint into the structure/sharding of `target`.

    Returns (state, step), or (target, None) when there is no checkpoint. When there are
    checkpoints and none restores: NoReadableCheckpoint, or (target, None) if `start_over`
    (the unreadable ones then sit in checkpoints_corrupt/).
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    steps = self.all_steps()
    unreadable = []
    for step in reversed(steps):
      try:
        state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
      except Exception as error:  # noqa: BLE001 - any failure means this one is unusable
        log.warning("checkpoint at step %d could not be restored (%s: %s)", step,
                    type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")
        unreadable.append(step)
        continue
      self._set_aside(unreadable)
      return state, step
    if steps and not start_over:
      raise NoReadableCheckpoint(
          f"no checkpoint in {self.directory} can be read (steps {steps}; the warnings above "
          "say why), and nothing was moved. To start over from step 0, moving them to "
          f"{self.corrupt_directory}, rerun with --start_over; or use another --workdir")
    self._set_aside(unreadable)
    return target, None

  def _set_aside(self, steps: list[int]) -> None:
    """Moves broken checkpoints out of the manager's way (a later save may reuse their step
    numbers) without deleting anything; a read-only Checkpointer leaves them."""
    if self.read_only or not steps:
      return
    for step in steps:
      source = os.path.join(self.directory, str(step))
      destination = os.path.join(self.corrupt_directory, str(step))
      if jax.process_index() == 0 and os.path.exists(source):
        os.makedirs(self.corrupt_directory, exist_ok=True)
        suffix = 0
        while os.path.exists(destination):
          suffix += 1
          destination = os.path.join(self.corrupt_directory, f"{step}.{suffix}")
        shutil.move(source, destination)
        log.warning("moved the unreadable checkpoint at step %d to %s", step, destination)
    self._manager.reload()


def _leaf_shapes(tree: Any) -> dict[str, tuple]:
  """{path: shape} of the array leaves; the path spells dict keys, attributes and indices
  alike, as Orbax's metadata stores a dataclass or a named tuple as a dict."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if hasattr(leaf, "shape"):
      names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
      out["/".join(names)] = tuple(leaf.shape)
  return out


def _first_difference(saved: dict, wanted: dict) -> str:
  for path in sorted(set(saved) | set(wanted)):
    if saved.get(path) != wanted.get(path):
      there = saved.get(path, "nothing")
      here = wanted.get(path, "nothing")
      return f"{there} at {path} where this config builds {here}"
  return "another structure"


def config_differences(workdir: str, config: ml_collections.ConfigDict) -> list[str]:
  """'key: value in WORKDIR/config.json -> value here' for each leaf that differs ([] when
  there is no readable config.json)."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      saved = _flatten(json.load(f))
  except (OSError, ValueError):
    return []
  here = _flatten(json.loads(config.to_json_best_effort()))
  return [f"{key}: {saved.get(key, '(absent)')!r} there, {here.get(key, '(absent)')!r} here"
          for key in sorted(set(saved) | set(here)) if saved.get(key) != here.get(key)]


def check_config_json(workdir: str, config: ml_collections.ConfigDict, target: Any,
                      build_state: Callable[[ml_collections.ConfigDict], Any]) -> None:
  """For a workdir with no checkpoint: AnotherRunsWorkdir if WORKDIR/config.json is of a
  config that builds a state of another structure than `target` (`build_state`: a config ->
  its initial state). The rule `check_structure` applies to a checkpoint, so the same keys
  may change: the learning rate (the rerun a divergence message advises), total_steps,
  logging, evaluation. A config.json that cannot be built counts as another structure."""
  differing = config_differences(workdir, config)
  if not differing:
    return
  try:
    saved = leaf_shapes(build_state(saved_config(workdir)))
  except Exception as error:  # noqa: BLE001 - e.g. another data set's class count
    log.info("the config in %s/config.json does not build here: %r", workdir, error)
    saved = None
  wanted = leaf_shapes(target)
  if saved == wanted:
    return
  state = (f"its state has {_first_difference(saved, wanted)}" if saved is not None
           else "it cannot be built with this config's data")
  raise AnotherRunsWorkdir(
      f"the workdir {workdir} holds no checkpoint, but its config.json is another run's ({state}); "
      f"{listed_differences(workdir, differing)}. Training here would overwrite that run's "
      "config.json and metrics.jsonl, so nothing was changed: use another --workdir, or rerun "
      "with --start_over to replace that run")


def listed_differences(workdir: str, differing: list[str], limit: int = 12) -> str:
  """'the config keys that differ from WORKDIR/config.json: ...', the first `limit` of them."""
  if len(differing) > limit:
    differing = differing[:limit] + [f"and {len(differing) - limit} more"]
  return (f"the config keys that differ from {os.path.join(workdir, 'config.json')}: "
          + ", ".join(differing))


def saved_config(workdir: str) -> ml_collections.ConfigDict | None:
  """WORKDIR/config.json as a ConfigDict (JSON lists back to the tuples configs hold); None
  when there is none or it does not parse."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      return ml_collections.ConfigDict(_tuples(json.load(f)))
  except (OSError, ValueError, TypeError):
    return None


def _tuples(value: Any) -> Any:
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


def leaf_shapes(tree: Any) -> dict[str, tuple]:
  """{path: shape} of `tree`'s array leaves, as `check_structure` compares them."""
  return _leaf_shapes(jax.tree.map(ocp.utils.to_shape_dtype_struct, tree))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f"{prefix}{key}."))
    return out
  return {prefix[:-1]: tuple(tree) if isinstance(tree, list) else tree}
