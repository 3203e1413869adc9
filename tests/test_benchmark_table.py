"""benchmarks/fashion_mnist_methods.py, the README's earlier methods-table command: a thin
wrapper over sslax.reproduce (tested in tests/test_reproduce.py). Checked here: the
methods become one-seed rows of configs/NAME_fashion_mnist.py, and --steps, --batch_size
and per-method overrides reach the commands it plans."""

from __future__ import annotations

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "fashion_mnist_methods.py")


def load_script():
  spec = importlib.util.spec_from_file_location("fashion_mnist_methods", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_methods_become_rows_and_flags_reach_the_commands(tmp_path, capsys):
  bench = load_script()
  table = bench.make_table(["simclr", "mae"], finetune_steps=None)
  assert [(r.label, r.config) for r in table.rows] == [
      ("simclr", "configs/simclr_fashion_mnist.py"), ("mae", "configs/mae_fashion_mnist.py")]
  assert table.seeds == (0,) and table.settings == () and table.finetune_steps is None
  assert bench.make_table(["mae"], finetune_steps=500).finetune_steps == 500

  out = str(tmp_path / "bench")
  assert bench.main([f"--outdir={out}", "--methods", "simclr,vicreg", "--steps=10", "--batch_size=32",
                     "--override=model.widths=(8,16)", "--override=simclr:method.projector_dim=16",
                     "--dry_run"]) == 0
  simclr, vicreg = capsys.readouterr().out.strip().splitlines()
  assert f"--workdir={out}/simclr/seed0" in simclr and "--config.seed=0" in simclr
  for line in (simclr, vicreg):
    assert "--config.total_steps=10 --config.batch_size=32" in line and "--config.model.widths=" in line
  assert "projector_dim=16" in simclr and "projector_dim" not in vicreg
  assert "random_init_baseline=True" in simclr and "random_init_baseline=False" in vicreg
