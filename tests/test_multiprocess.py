"""Two local processes x 4 CPU devices (JAX multi-controller, gloo) give the same losses
as one process x 8 devices: each process reads only its half of every global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

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
