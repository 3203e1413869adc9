#!/usr/bin/env bash
# Set-up, then pretrain SimCLR on Fashion-MNIST on the CPU and evaluate it.
#   bash scripts/demo.sh [WORKDIR] [--config.KEY=VALUE ...]
# A WORKDIR that already holds checkpoints resumes from the newest one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workdir=${1:-runs/simclr_fashion_mnist}
[ $# -gt 0 ] && shift
exec .venv/bin/python -m sslax.main --config=configs/simclr_fashion_mnist.py --workdir="$workdir" "$@"
