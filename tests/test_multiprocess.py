"""Two local processes x 4 CPU devices (JAX multi-controller, gloo) give the same losses
as one process x 8 devices: each process reads only its half of every global batch.
SIGTERM to one of them stops both at one step, with one checkpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from tests.helpers import write_tiny_fashion_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERRIDES = ["--config=configs/simclr_fashion_mnist.py", "--config.batch_size=16",
             "--config.total_steps=3", "--config.log_every_steps=1", "--config.checkpoint_every_steps=3",
             "--config.model.widths=(8,16)", "--config.method.projector_hidden=(32,)",
             "--config.method.projector_dim=16", "--config.eval.enabled=False"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _losses(workdir) -> list[float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["loss"] for line in f]


def test_two_processes_equal_one_process(tmp_path):
  write_tiny_fashion_mnist(str(tmp_path / "idx"))
  data = [f"--config.data.data_dir={tmp_path / 'tfds'}"]
  env = {**os.environ, "SSLAX_FASHION_MNIST_DIR": str(tmp_path / "idx"), "JAX_PLATFORMS": "cpu"}

  single = subprocess.run(
      [sys.executable, "-m", "sslax.main", *OVERRIDES, *data, f"--workdir={tmp_path / 'one'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  assert single.returncode == 0, single.stderr[-3000:]

  multi = subprocess.run(
      ["bash", "launch/local_multiprocess.sh", *OVERRIDES, *data, f"--workdir={tmp_path / 'two'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      env={**env, "NUM_PROCESSES": "2", "DEVICES_PER_PROCESS": "4", "PORT": str(_free_port()),
           "PYTHON": sys.executable})
  assert multi.returncode == 0, multi.stderr[-3000:]

  one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
  assert len(one) == 3
  np.testing.assert_allclose(two, one, rtol=1e-5)


def test_sigterm_to_one_process_stops_all_at_the_same_step(tmp_path):
  """A preemption notice reaching one process (JAX's preemption sync manager spreads it)
  makes every process save the same checkpoint step and exit with status 143, none
  left waiting in a collective."""
  write_tiny_fashion_mnist(str(tmp_path / "idx"))
  workdir = tmp_path / "run"
  overrides = [o for o in OVERRIDES if "total_steps" not in o and "checkpoint_every" not in o]
  log = tmp_path / "stderr.txt"  # a file, not a pipe nobody reads while the run goes on
  stderr_file = open(log, "w")
  launcher = subprocess.Popen(
      ["bash", "launch/local_multiprocess.sh", *overrides, "--config.total_steps=500",
       "--config.checkpoint_every_steps=1000", f"--config.data.data_dir={tmp_path / 'tfds'}",
       f"--workdir={workdir}", "--mode=train"],
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr_file,
      env={**os.environ, "SSLAX_FASHION_MNIST_DIR": str(tmp_path / "idx"), "NUM_PROCESSES": "2",
           "DEVICES_PER_PROCESS": "4", "PORT": str(_free_port()), "PYTHON": sys.executable})
  try:
    metrics = workdir / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
      assert launcher.poll() is None and time.monotonic() < deadline, "no step 2 logged"
      time.sleep(0.05)
    children = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True)
    pids = [int(p) for p in children.stdout.split()]
    assert len(pids) == 2, children.stdout
    os.kill(pids[-1], signal.SIGTERM)  # only one of the two processes is told
    launcher.wait(timeout=120)
  finally:
    if launcher.poll() is None:  # a failed check above: the launcher passes SIGTERM on
      launcher.terminate()
      launcher.wait(timeout=120)
    stderr_file.close()
  stderr = log.read_text()
  assert launcher.returncode == 143, stderr[-3000:]
  stops = re.findall(r"saved the checkpoint at step (\d+)", stderr)
  assert len(stops) == 2 and stops[0] == stops[1], stderr[-3000:]
  assert sorted(os.listdir(workdir / "checkpoints")) == [stops[0]]
  assert 2 <= int(stops[0]) < 500
