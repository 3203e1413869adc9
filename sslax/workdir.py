"""One process at a time per workdir: WORKDIR/sslax.lock, and a writable workdir checked
before any work is done.

The lock is an advisory `fcntl.flock` on WORKDIR/sslax.lock, which holds the holder's host,
pid and command for the message a second process gets. The kernel drops the lock when its
holder dies however it dies (kill -9 included), so a lock file left by a dead process is
simply taken over: stale locks need no clean-up. Where the file system has no flock (some
network mounts), the file's host and pid decide: a live pid on this host, or any other
host, holds it. With several processes (one run over several hosts) process 0 takes it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import sys
import time

import jax

from sslax.errors import WorkdirError

log = logging.getLogger(__name__)

LOCK_FILE = "sslax.lock"

_held: dict[str, list] = {}  # abspath -> [fd, depth]: re-entrant within a process


def check_writable(workdir: str) -> None:
  """WorkdirError unless `workdir` can be created and written (a read-only mount found at
  the start, not after evaluation has computed everything)."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".sslax-write-test-{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as error:
    raise WorkdirError(f"cannot write to the workdir {workdir} ({error.strerror or error}): "
                       "choose a writable --workdir") from None


def _holder(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _describe(holder: dict) -> str:
  if not holder:
    return "another process"
  return (f"pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')}: "
          f"{holder.get('command', '')})")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def acquire(workdir: str) -> None:
  """Takes WORKDIR's lock (again, if this process holds it); WorkdirError naming the holder
  if another process does."""
  if jax.process_index() != 0:
    return
  check_writable(workdir)
  path = os.path.abspath(os.path.join(workdir, LOCK_FILE))
  if path in _held:
    _held[path][1] += 1
    return
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    raise WorkdirError(
        f"the workdir {workdir} is in use by {_describe(_holder(path))}: two runs in one "
        "workdir would overwrite each other's checkpoints and metrics. Wait for it to end "
        "(or stop it), or use another --workdir") from None
  except OSError as error:  # no flock here: fall back on the host and pid in the file
    if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
      os.close(fd)
      raise
    holder = _holder(path)
    mine = holder.get("host") == socket.gethostname()
    if holder.get("pid") and (not mine or _pid_alive(int(holder["pid"]))):
      os.close(fd)
      raise WorkdirError(f"the workdir {workdir} is in use by {_describe(holder)} (or its lock "
                         f"{path} is stale: delete it if that process is gone)") from None
  stale = _holder(path)
  if stale.get("pid"):
    log.info("took over the lock of %s, left by %s (no longer running)", workdir, _describe(stale))
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "command": " ".join(sys.argv)[:300]}).encode(), 0)
  _held[path] = [fd, 1]


def release(workdir: str) -> None:
  """Undoes one `acquire`; the last one empties the file and drops the lock."""
  path = os.path.abspath(os.path.join(workdir, LOCK_FILE))
  if path not in _held:
    return
  _held[path][1] -= 1
  if _held[path][1] == 0:
    fd, _ = _held.pop(path)
    try:
      os.ftruncate(fd, 0)
    except OSError:
      pass
    os.close(fd)


@contextlib.contextmanager
def locked(workdir: str):
  """`with workdir.locked(path):` holds WORKDIR's lock for the block."""
  acquire(workdir)
  try:
    yield
  finally:
    release(workdir)


def is_disk_full(error: BaseException) -> bool:
  """Whether `error`, or an error it was raised from or while handling (Orbax wraps the
  OSError of its writer threads), is "No space left on device"."""
  seen = set()
  pending = [error]
  while pending:
    e = pending.pop()
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
      return True
    if "No space left on device" in str(e) or "ENOSPC" in str(e):
      return True
    pending += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]
  return False


def disk_full_error(workdir: str, needed_bytes: int | None) -> WorkdirError:
  """The one-line message for a full disk under `workdir`; `needed_bytes`: a checkpoint's
  size (None: the size of the newest one on disk)."""
  if needed_bytes is None:
    needed_bytes = _newest_checkpoint_bytes(workdir)
  try:
    free = f"{shutil.disk_usage(workdir).free:,} bytes free"
  except OSError:
    free = "free space unknown"
  return WorkdirError(
      f"no space left on the device of the workdir {os.path.abspath(workdir)} ({free}; a "
      f"checkpoint needs about {needed_bytes:,} bytes): free at least that much or move the "
      "workdir, then run the same command to resume from the last checkpoint, which is intact")


def _newest_checkpoint_bytes(workdir: str) -> int:
  folder = os.path.join(workdir, "checkpoints")
  steps = sorted((int(s) for s in os.listdir(folder) if s.isdigit()), reverse=True) \
      if os.path.isdir(folder) else []
  total = 0
  for root, _, files in os.walk(os.path.join(folder, str(steps[0]))) if steps else ():
    total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
  return total
