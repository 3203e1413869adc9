"""What a careless user can do to a run, through the real command line (`python -m
sslax.main`, tiny SimCLR on tiny Fashion-MNIST), and what sslax promises then
(docs/faults.md): the exit status, the message, and the files left in the workdir. No readable
checkpoint is ever moved or deleted, no NaN is ever saved, two processes never both write.

One trained workdir is shared (module fixture); a test that changes a workdir works on a copy.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/simclr_fashion_mnist.py"


def tiny_flags(data_dir: str, *, steps: int = 4, every: int = 2, widths: str = "(8,16)") -> list[str]:
  # (A tuple flag given twice is concatenated by ml_collections, hence `widths`.)
  return [f"--config={CONFIG}", f"--config.data.data_dir={data_dir}", "--config.batch_size=16",
          f"--config.total_steps={steps}", "--config.log_every_steps=1",
          f"--config.checkpoint_every_steps={every}", "--config.async_checkpoints=False",
          f"--config.model.widths={widths}", "--config.method.projector_hidden=(32,)",
          "--config.method.projector_dim=16", "--config.optimizer.warmup_steps=1",
          "--config.diagnostics.enabled=False", "--config.eval.enabled=False",
          "--config.num_devices=1", "--mode=train"]


def sslax_main(*args: str, prelude: str = "", timeout: float = 240) -> subprocess.CompletedProcess:
  """`python -m sslax.main ARGS` (after the Python statements `prelude`, a test's hook)."""
  code = (f"import sys, runpy\n{prelude}\nsys.argv = ['sslax.main', *sys.argv[1:]]\n"
          "runpy.run_module('sslax.main', run_name='__main__')")
  return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                        text=True, timeout=timeout)


def snapshot(workdir) -> dict[str, bytes]:
  """Every file under workdir (but the lock) -> its bytes."""
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      if name != "sslax.lock":
        out[os.path.relpath(path, workdir)] = open(path, "rb").read()
  return out


def checkpoint_steps(workdir, folder: str = "checkpoints") -> list[int]:
  path = os.path.join(workdir, folder)
  return sorted(int(s) for s in os.listdir(path) if s.isdigit()) if os.path.isdir(path) else []


def saved_arrays(workdir, step: int) -> list[np.ndarray]:
  import jax
  import orbax.checkpoint as ocp

  with ocp.StandardCheckpointer() as reader:
    tree = reader.restore(os.path.join(workdir, "checkpoints", str(step), "default"))
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def logged_steps(workdir) -> list[int]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["step"] for line in f]


@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  return tiny_fashion_mnist


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
  """A finished 4-step run with checkpoints at steps 2 and 4."""
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  result = sslax_main(*tiny_flags(data_dir), f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert checkpoint_steps(workdir) == [2, 4]
  return workdir


def copy_of(workdir, tmp_path) -> str:
  return shutil.copytree(workdir, str(tmp_path / "copy"))


# ---------------------------------------------------------------- 1. another config's checkpoints


@pytest.mark.parametrize("mode", ["evaluate", "linear_eval"])
def test_evaluate_with_another_config_names_the_keys_and_touches_nothing(trained, data_dir, mode):
  before = snapshot(trained)
  result = sslax_main(*tiny_flags(data_dir, widths="(16,32)"), f"--mode={mode}",
                      f"--workdir={trained}")
  assert result.returncode == 1
  assert "written by another config" in result.stderr
  assert "model.widths: (8, 16) there, (16, 32) here" in result.stderr, result.stderr[-3000:]
  assert "another --workdir" in result.stderr and "Traceback" not in result.stderr
  assert snapshot(trained) == before  # nothing moved, deleted or written
  assert not os.path.exists(os.path.join(trained, "checkpoints_corrupt"))


def test_training_with_another_config_stops_before_writing(trained, data_dir, tmp_path):
  workdir = copy_of(trained, tmp_path)
  before = snapshot(workdir)
  result = sslax_main(*tiny_flags(data_dir, steps=6), "--config.method.projector_dim=8",
                      f"--workdir={workdir}")
  assert result.returncode == 1, result.stderr[-2000:]
  assert "method.projector_dim: 16 there, 8 here" in result.stderr
  assert snapshot(workdir) == before  # config.json, metrics.jsonl and checkpoints as they were


def test_another_runs_config_json_without_checkpoints_stops_but_a_rerun_goes_on(
    trained, data_dir, tmp_path):
  # A run that stopped before its first checkpoint: config.json and metrics.jsonl, no checkpoint.
  workdir = copy_of(trained, tmp_path)
  shutil.rmtree(os.path.join(workdir, "checkpoints"))
  before = snapshot(workdir)
  result = sslax_main(*tiny_flags(data_dir, widths="(16,32)"), f"--workdir={workdir}")
  assert result.returncode == 1, result.stderr[-2000:]
  assert "holds no checkpoint, but its config.json is another run's" in result.stderr
  assert "model.widths: (8, 16) there, (16, 32) here" in result.stderr
  assert "another --workdir" in result.stderr and "--start_over" in result.stderr
  assert "Traceback" not in result.stderr
  assert snapshot(workdir) == before  # config.json and metrics.jsonl as they were

  # The same run again with a lower learning rate and fewer steps builds the same state: not
  # another run (the rule a checkpoint's structure check applies), so it trains.
  result = sslax_main(*tiny_flags(data_dir, steps=2), "--config.optimizer.base_lr=0.0003",
                      f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert checkpoint_steps(workdir) == [2] and logged_steps(workdir) == [1, 2]
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["optimizer"]["base_lr"] == 0.0003


def test_every_checkpoint_unreadable_stops_until_asked_to_start_over(trained, data_dir, tmp_path):
  workdir = copy_of(trained, tmp_path)
  for step in (2, 4):  # truncate every file, as a write cut off mid-way would
    for root, _, files in os.walk(os.path.join(workdir, "checkpoints", str(step))):
      for name in files:
        open(os.path.join(root, name), "w").close()
  before = snapshot(workdir)
  result = sslax_main(*tiny_flags(data_dir), f"--workdir={workdir}")
  assert result.returncode == 1
  assert "no checkpoint in" in result.stderr and "--start_over" in result.stderr
  assert snapshot(workdir) == before  # nothing moved until the user asks

  result = sslax_main(*tiny_flags(data_dir, steps=2), "--start_over", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert checkpoint_steps(workdir, "checkpoints_corrupt") == [2, 4]  # set aside, not deleted
  assert checkpoint_steps(workdir) == [2] and logged_steps(workdir) == [1, 2]


# ---------------------------------------------------------------- 2. two processes, one workdir

HOLD_LOCK = """
import sys, time
from sslax import workdir
workdir.acquire(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


def test_second_process_is_refused_naming_the_first_and_a_dead_ones_lock_is_taken(trained, data_dir):
  before = snapshot(trained)
  holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, trained], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    result = sslax_main(*tiny_flags(data_dir), f"--workdir={trained}")
    assert result.returncode == 1
    assert f"is in use by pid {holder.pid} on" in result.stderr, result.stderr[-2000:]
    assert snapshot(trained) == before  # the second process wrote nothing
  finally:
    holder.kill()
    holder.wait()
  # The holder died without letting go: its lock file is left, naming a dead pid.
  from sslax import workdir as workdir_lib

  with open(os.path.join(trained, "sslax.lock")) as f:
    assert json.load(f)["pid"] == holder.pid
  with workdir_lib.locked(trained):  # taken over
    with open(os.path.join(trained, "sslax.lock")) as f:
      assert json.load(f)["pid"] == os.getpid()


# ---------------------------------------------------------------- 3. NaN and divergence


@pytest.mark.monitors
def test_divergence_stops_before_saving_and_the_rerun_resumes_from_the_last_good_step(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  # Every step checkpointed, logged every 4: the check runs before each save all the same.
  flags = [*tiny_flags(data_dir, steps=8, every=1), "--config.log_every_steps=4",
           "--config.online_probe.enabled=True", f"--workdir={workdir}"]
  result = sslax_main(*flags, "--config.optimizer.base_lr=1e6")
  assert result.returncode == 1, result.stderr[-2000:]
  assert "training diverged" in result.stderr and "Traceback" not in result.stderr
  line = next(x for x in result.stderr.splitlines() if "training diverged" in x)
  saved = checkpoint_steps(workdir)
  bad = int(line.split(" at step ")[1].split(".")[0])
  assert saved == [s for s in range(1, bad)][-3:], (saved, line)  # keep_checkpoints = 3
  for step in saved:
    assert all(np.isfinite(a).all() for a in saved_arrays(workdir, step) if a.dtype.kind == "f")
  if saved:
    assert f"last good checkpoint is step {saved[-1]}" in line
  else:
    assert "starts again from step 0" in line

  # The rerun the message advises resumes from the last good checkpoint (here the weights
  # of two steps at lr 1e6 are finite but already off, so it stops again, saving nothing bad).
  rerun = sslax_main(*flags, "--config.optimizer.base_lr=1e-3")
  if saved:
    assert f"resuming from the checkpoint at step {saved[-1]}" in rerun.stderr, rerun.stderr[-2000:]
  assert rerun.returncode in (0, 1) and "Traceback" not in rerun.stderr
  if rerun.returncode == 1:
    assert "start afresh in another --workdir" in rerun.stderr
  for step in checkpoint_steps(workdir):
    assert all(np.isfinite(a).all() for a in saved_arrays(workdir, step) if a.dtype.kind == "f")


# ---------------------------------------------------------------- 4. Ctrl-C


def wait_for_step(workdir, step: int, process, timeout: float = 180) -> None:
  path = os.path.join(workdir, "metrics.jsonl")
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    assert process.poll() is None, "the run ended before it could be interrupted"
    if os.path.exists(path) and sum(1 for line in open(path) if line.endswith("\n")) >= step:
      return
    time.sleep(0.02)
  raise TimeoutError(path)


# A slow save (a network disk): the window in which a second Ctrl-C lands.
SLOW_SAVE = """
import time, orbax.checkpoint as ocp
_save = ocp.CheckpointManager.save
def save(self, *args, **kwargs):
  time.sleep(60)
  return _save(self, *args, **kwargs)
ocp.CheckpointManager.save = save
"""


def wait_for_text(path, text: str, process, timeout: float = 120) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    assert process.poll() is None, "the run ended before the second Ctrl-C"
    if text in path.read_text():
      return
    time.sleep(0.05)
  raise TimeoutError(text)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_saves_the_current_step_and_a_second_exits_at_once(data_dir, tmp_path, presses):
  workdir = str(tmp_path / "run")
  log = tmp_path / "stderr.txt"
  prelude = SLOW_SAVE if presses == 2 else ""
  code = (f"import sys, runpy\n{prelude}\nsys.argv = ['sslax.main', *sys.argv[1:]]\n"
          "runpy.run_module('sslax.main', run_name='__main__')")
  with open(log, "w") as stderr:
    run = subprocess.Popen([sys.executable, "-c", code, *tiny_flags(data_dir, steps=100000, every=100000),
                            f"--workdir={workdir}"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
      wait_for_step(workdir, 2, run)
      run.send_signal(signal.SIGINT)
      if presses == 2:
        wait_for_text(log, "Ctrl-C again to exit at once", run)
        time.sleep(1)  # into the (slow) save
        started = time.monotonic()
        run.send_signal(signal.SIGINT)
      run.wait(timeout=120)
    finally:
      run.kill()
  text = log.read_text()
  assert run.returncode == 130, text[-3000:]
  assert "Traceback" not in text, text[-3000:]
  if presses == 1:
    assert "interrupted (SIGINT, Ctrl-C): saved the checkpoint at step" in text
    saved = checkpoint_steps(workdir)
    assert len(saved) == 1 and saved[0] >= 2 and logged_steps(workdir)[-1] <= saved[0]
  else:
    assert "interrupted again (Ctrl-C): exiting now" in text
    assert time.monotonic() - started < 30  # not after the 60 s save
    assert checkpoint_steps(workdir) == []


# ---------------------------------------------------------------- 5. full disk

# Orbax writes through TensorStore (C++) and `epath`; the hook makes the metadata write of
# the checkpoint at step 4 fail as a full disk would.
DISK_FULL_AT_STEP_4 = """
import errno, orbax.checkpoint as ocp
_save = ocp.CheckpointManager.save
def save(self, step, *args, **kwargs):
  if step == 4:
    raise OSError(errno.ENOSPC, "No space left on device", str(self.directory))
  return _save(self, step, *args, **kwargs)
ocp.CheckpointManager.save = save
"""


def test_full_disk_is_one_line_and_earlier_checkpoints_stay(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  result = sslax_main(*tiny_flags(data_dir), f"--workdir={workdir}", prelude=DISK_FULL_AT_STEP_4)
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "no space left on the device of the workdir" in errors[0]
  assert workdir in errors[0] and "a checkpoint needs about" in errors[0]
  assert "Traceback" not in result.stderr
  assert checkpoint_steps(workdir) == [2]
  assert saved_arrays(workdir, 2)  # intact: it restores


def test_disk_full_is_found_inside_wrapped_errors():
  from sslax import workdir as workdir_lib

  try:
    try:
      raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as inner:
      raise RuntimeError("async save failed") from inner
  except RuntimeError as outer:
    assert workdir_lib.is_disk_full(outer)
  assert not workdir_lib.is_disk_full(RuntimeError("something else"))


# ---------------------------------------------------------------- 6. messages with their cause


def test_help_exits_0():
  result = sslax_main("--help")
  assert result.returncode == 0 and "--workdir" in result.stdout + result.stderr


@pytest.mark.parametrize("content, expected", [
    (None, "not found"),
    ("def get_config(:\n", "line 1: invalid syntax"),
    ("def get_config():\n  return {'total_steps': 1}\n", "returns a dict, not an ml_collections.ConfigDict"),
])
def test_bad_config_file_is_one_line(tmp_path, content, expected):
  path = tmp_path / "config.py"
  if content is not None:
    path.write_text(content)
  result = sslax_main(f"--config={path}", f"--workdir={tmp_path / 'run'}")
  assert result.returncode == 1 and expected in result.stderr, result.stderr[-2000:]
  assert "Traceback" not in result.stderr and not os.path.exists(tmp_path / "run")


def test_stray_argument_is_refused(tmp_path):
  result = sslax_main(f"--config={CONFIG}", f"--workdir={tmp_path / 'run'}", "total_steps=10")
  assert result.returncode == 1 and "unexpected argument(s) ['total_steps=10']" in result.stderr
  assert not os.path.exists(tmp_path / "run")


def test_unwritable_workdir_is_refused_at_the_start(trained, data_dir):
  # A file where the workdir should be: refused for every mode before any work (root, which
  # runs the tests in CI, may write anywhere, so a read-only folder cannot stand in).
  result = sslax_main(*tiny_flags(data_dir), "--mode=evaluate",
                      f"--workdir={os.path.join(trained, 'metrics.jsonl', 'run')}")
  assert result.returncode == 1 and "cannot write to the workdir" in result.stderr


def test_unknown_tfds_dataset_is_short(tmp_path):
  result = sslax_main(f"--config={CONFIG}", f"--workdir={tmp_path / 'run'}",
                      "--config.data.name=fashion_mnistt")
  assert result.returncode == 1
  assert "TFDS has no dataset 'fashion_mnistt'" in result.stderr, result.stderr[-3000:]
  assert "Did you mean: fashion_mnistt -> fashion_mnist" in result.stderr
  assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) < 10


def test_truncated_fashion_mnist_names_the_file(tmp_path):
  from tests.helpers import write_tiny_fashion_mnist

  idx = tmp_path / "idx"
  write_tiny_fashion_mnist(str(idx))
  damaged = idx / "train-images-idx3-ubyte.gz"
  damaged.write_bytes(damaged.read_bytes()[:200])
  result = subprocess.run(
      [sys.executable, "-m", "sslax.main", *tiny_flags(str(tmp_path / "tfds")), f"--workdir={tmp_path / 'run'}"],
      cwd=REPO, capture_output=True, text=True, timeout=240,
      env={**os.environ, "SSLAX_FASHION_MNIST_DIR": str(idx)})
  assert result.returncode == 1
  assert f"{damaged} is damaged" in result.stderr and "--reinstall" in result.stderr
  assert "Traceback" not in result.stderr


def test_corrupt_prepared_dataset_names_the_folder(trained, data_dir, tmp_path):
  tfds_dir = shutil.copytree(data_dir, str(tmp_path / "tfds"))
  for root, _, files in os.walk(tfds_dir):
    for name in files:
      if "train" in name and not name.endswith(".json"):
        with open(os.path.join(root, name), "r+b") as f:
          f.truncate(100)
  result = sslax_main(*tiny_flags(tfds_dir), f"--workdir={tmp_path / 'run'}")
  assert result.returncode == 1
  assert f"the prepared TFDS fashion_mnist in {tfds_dir}" in result.stderr, result.stderr[-3000:]
  assert "delete that folder" in result.stderr and "Traceback" not in result.stderr
