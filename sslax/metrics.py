"""Where metrics go: WORKDIR/metrics.jsonl (one JSON object per logged step),
TensorBoard event files in WORKDIR, and a live progress line.

Only process 0 writes, so a multi-host run produces one log.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Mapping

import jax


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class MetricWriter:
  """Appends to WORKDIR/metrics.jsonl. A run resumed from the checkpoint at step k first
  drops the records after step k that the interrupted run wrote: the resumed run
  recomputes those very steps (the data and augmentation are functions of the step),
  so each step appears once."""

  def __init__(self, workdir: str, *, start_step: int = 0, tensorboard: bool = True):
    self.enabled = jax.process_index() == 0
    self._jsonl = None
    self._tb = None
    if not self.enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path):
      with open(path) as f:
        kept = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= start_step]
      with open(path + ".tmp", "w") as f:
        f.writelines(kept)
      os.replace(path + ".tmp", path)
    self._jsonl = open(path, "a", buffering=1)
    if tensorboard:
      from tensorboardX import SummaryWriter  # writes event files without TensorFlow's summary ops
      self._tb = SummaryWriter(logdir=workdir)

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    if self._tb is not None:
      for key, value in scalars.items():
        self._tb.add_scalar(key, float(value), int(step))

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


class Progress:
  """One line per log interval: step, loss, images/s over the interval, ETA.

  images/s counts source images (each gives `num_views` augmented views). The
  first interval of a run includes compilation, so its rate is low.
  """

  def __init__(self, total_steps: int, global_batch: int, start_step: int):
    self.total_steps = total_steps
    self.global_batch = global_batch
    self._last_step = start_step
    self._last_time = time.perf_counter()

  def update(self, step: int, loss: float) -> dict:
    now = time.perf_counter()
    steps, seconds = step - self._last_step, now - self._last_time
    images_per_second = steps * self.global_batch / seconds if seconds > 0 else 0.0
    eta = seconds / max(steps, 1) * (self.total_steps - step)
    if jax.process_index() == 0:
      print(f"step {step:>6d}/{self.total_steps}  loss {loss:.4f}  "
            f"{images_per_second:8.1f} img/s  eta {_format_duration(eta)}", file=sys.stderr, flush=True)
    self._last_step, self._last_time = step, now
    return {"images_per_second": images_per_second}
