#!/usr/bin/env bash
# The 2000-step sweep behind the choices in configs/simclr_fashion_mnist.py (batch 256,
# run one at a time). Each line prints linear probe / kNN of the pretrained (and random-init) encoder.
#   bash benchmarks/fashion_mnist_sweep.sh [OUTDIR [RUN_NAME ...]]   (default: every run)
# The runs start from the config as committed and change one thing each; the baseline of
# the sweep was widths (32,64,128), crop_scale (0.2,1), LARS base_lr 1.0 (50 warmup steps),
# temperature 0.2.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/sweep}
[ $# -gt 0 ] && shift
only=" $* "
mkdir -p "$out"
base=(--config=configs/simclr_fashion_mnist.py --config.total_steps=2000 --config.log_every_steps=500
      --config.eval.random_init_baseline=False --config.eval.raw_pixel_baseline=False
      --config.model.widths='(32,64,128)' --config.views.view1.crop_scale='(0.2,1.0)'
      --config.views.view2.crop_scale='(0.2,1.0)' --config.optimizer.name=lars
      --config.optimizer.base_lr=1.0 --config.optimizer.weight_decay=1e-6 --config.optimizer.warmup_steps=50)
run() {
  local name=$1; shift
  [ "$only" = "  " ] || [[ "$only" == *" $name "* ]] || return 0
  .venv/bin/python -m sslax.main "${base[@]}" --workdir="$out/$name" "$@" >"$out/$name.log" 2>&1
  grep -E '^\[eval\]' "$out/$name.log" | sed "s/^/$name: /"
}
run baseline
run widths_64_128_256 --config.model.widths='(64,128,256)'
run temperature_0.5 --config.method.temperature=0.5
run crop_0.5 --config.views.view1.crop_scale='(0.5,1.0)' --config.views.view2.crop_scale='(0.5,1.0)'
run adamw --config.optimizer.name=adamw --config.optimizer.base_lr=1e-3 --config.optimizer.weight_decay=1e-4
run flatten_features --config.model.pool=flatten --config.eval.random_init_baseline=True
