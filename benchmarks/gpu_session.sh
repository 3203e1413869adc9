#!/usr/bin/env bash
# The GPU measurements of docs/performance.md ("Profile of the GPU step"), in one command that
# fits one ~8-minute call on a lent H100/H200 (JAX with CUDA and PyTorch installed, no
# TensorFlow, no network), run from the repository root:
#
#   bash benchmarks/gpu_session.sh            # writes its printouts under $OUT (or ./gpu_out)
#
# Prepare on a machine with network access first, as benchmarks/results_gpu.md says: the
# pure-Python wheels sslax needs beyond JAX go in .whl/ (carried to the GPU machine), e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     ml_collections dm_pix tensorboardX
#
# What it runs, each step under its own time limit so that one slow step cannot eat the rest:
#  1. the machine and versions;
#  2. benchmarks/mfu.py in bfloat16 at batch 128: SimCLR and BYOL ResNet-50, MAE ViT-B/16,
#     DINO ViT-S/16 multi-crop; PyTorch eager and torch.compile beside SimCLR and MAE; the
#     roofline of each compiled step (--roofline) and a jax.profiler trace of 3 steps summed
#     per op (--profile);
#  3. the ViT cases again with cuDNN's fused attention (--attention=cudnn);
#  4. MAE in float32 (TF32), to compare with the bfloat16 speed-up of 1.13x measured before
#     its decoder ran in the precision policy's dtype.
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false

step() {  # step NAME SECONDS COMMAND...: the command's output in $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  echo "== $name: $* (limit ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  echo "   exit $? after $((SECONDS - start)) s"
  tail -n 25 "$OUT/$name.txt"
}

{
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  python3 --version
  python3 -m pip list 2>/dev/null | grep -iE '^(jax|jaxlib|jax-cuda|flax|optax|chex|numpy|torch|torchvision|ml.collections|dm.pix|orbax)'
  nproc
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

step mfu_bf16 330 python3 benchmarks/mfu.py --batch_size=128 --precision=bfloat16 --steps=10 \
  --torch_python=python3 --roofline --profile=/tmp/sslax_profile
step mfu_bf16_cudnn 100 python3 benchmarks/mfu.py --cases=mae_vitb16,dino_vits16 --batch_size=128 \
  --precision=bfloat16 --steps=10 --no_torch --attention=cudnn
step mfu_fp32_mae 60 python3 benchmarks/mfu.py --cases=mae_vitb16 --batch_size=128 --steps=10 --no_torch
