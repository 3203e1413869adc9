"""Every method pretrained on Fashion-MNIST at the same CPU budget, one seed, as one table:
the README's earlier methods-table command, now a thin wrapper over sslax.reproduce.

  .venv/bin/python benchmarks/fashion_mnist_methods.py [--outdir=runs/fashion_mnist_methods]
      [--methods simclr simsiam ...] [--steps=N] [--batch_size=B]
      [--override KEY=VALUE ...] [--override METHOD:KEY=VALUE ...]
      [--finetune [--finetune_steps=N]] [--table_only]

Each METHOD is configs/METHOD_fashion_mnist.py, run with seed 0 in OUTDIR/METHOD/seed0 by
sslax.reproduce (resumable, one random-init row per encoder, table.md and table.csv in
OUTDIR). Without --steps every method keeps its config's total_steps. The named tables of
`python -m sslax.reproduce --table=...` (fashion_mnist, self_prediction, pretext, ...) are
the maintained way to rebuild the README's tables with several seeds.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run as a script from a checkout without `pip install -e .`

from sslax import reproduce, results  # noqa: E402

DEFAULT_METHODS = ("simclr", "moco_v2", "moco_v3", "byol", "simsiam", "barlow_twins", "vicreg",
                   "dino", "swav", "rotation", "jigsaw", "relative_patch", "supervised")


def make_table(methods, finetune_steps: int | None) -> results.Table:
  """An ad-hoc results.Table: METHOD -> configs/METHOD_fashion_mnist.py, seed 0, each
  config's own budget."""
  return results.Table(
      "Methods on Fashion-MNIST (benchmarks/fashion_mnist_methods.py)",
      tuple(results.Row(m, f"configs/{m}_fashion_mnist.py") for m in methods), seeds=(0,),
      finetune_steps=finetune_steps)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--outdir", default=os.path.join("runs", "fashion_mnist_methods"))
  parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                      help="method names (configs/NAME_fashion_mnist.py); commas also separate")
  parser.add_argument("--steps", type=int, default=None, help="pretraining steps (default: each config's)")
  parser.add_argument("--batch_size", type=int, default=None, help="global batch (default: the configs')")
  parser.add_argument("--override", action="append", default=[], metavar="[METHOD:]KEY=VALUE",
                      help="extra config override for every method, or for METHOD only; repeatable")
  parser.add_argument("--finetune", action="store_true",
                      help="also fine-tune every encoder, and each encoder's random init")
  parser.add_argument("--finetune_steps", type=int, default=1000,
                      help="fine-tuning steps with --finetune (default 1000, config.finetune's)")
  parser.add_argument("--table_only", action="store_true", help="print the table from OUTDIR, run nothing")
  parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  parser.add_argument("--python", default=sys.executable, help="interpreter for the runs")
  args = parser.parse_args(argv)
  args.methods = [m for item in args.methods for m in item.split(",") if m]
  return args


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parse_args(argv)
  table = make_table(args.methods, args.finetune_steps if args.finetune else None)
  overrides = list(args.override)
  if args.steps is not None:
    overrides.append(f"total_steps={args.steps}")
  if args.batch_size is not None:
    overrides.append(f"batch_size={args.batch_size}")
  return reproduce.reproduce(
      "fashion_mnist_methods", table, rows=list(table.rows), seeds=[0], outdir=args.outdir,
      overrides=overrides, command=shlex.join(["python", "benchmarks/fashion_mnist_methods.py", *argv]),
      python=args.python, dry_run=args.dry_run, table_only=args.table_only)


if __name__ == "__main__":
  sys.exit(main())
