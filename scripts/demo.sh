#!/usr/bin/env bash
# Set-up, then pretrain SimCLR on Fashion-MNIST on the CPU and evaluate it.
#   bash scripts/demo.sh [WORKDIR] [--config.KEY=VALUE ...]
# A WORKDIR that already holds checkpoints resumes from the newest one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workdir=${1:-runs/simclr_fashion_mnist}
[ $# -gt 0 ] && shift
# 420 s of pretraining steps, their count fixed from the speed measured on the first steps (at
# least 1000, at most the config's 4000; WORKDIR/budget.json), so the whole command takes about
# the same time on any 2-core machine. --config.budget.seconds=0 trains all 4000 steps.
exec .venv/bin/python -m sslax.main --config=configs/simclr_fashion_mnist.py --workdir="$workdir" \
  --config.budget.seconds=420 --config.budget.min_steps=1000 "$@"
