#!/usr/bin/env bash
# Pretraining on a Cloud TPU VM slice (a pod slice has several worker VMs; each runs one
# sslax process over its local chips). Run it on your workstation, from the sslax checkout:
#
#   TPU_NAME=sslax-v4-32 ZONE=us-central2-b ACCELERATOR_TYPE=v4-32 \
#   WORKDIR=/mnt/sslax/runs/simclr MOUNT_CMD='mkdir -p /mnt/sslax && gcsfuse --implicit-dirs BUCKET /mnt/sslax' \
#     bash launch/tpu_pod.sh --config=configs/simclr_imagenet.py --config.data.data_dir=gs://BUCKET/tfds
#
# 1. Creates the slice (gcloud compute tpus tpu-vm create; SPOT=1 for a spot slice) or
#    reuses a READY one of that name; a PREEMPTED or stopped one is deleted and recreated.
# 2. Installs the checked-out commit (git archive HEAD: commit what you want to run) with
#    jax[tpu] on every worker (--worker=all), once per commit; sslax needs Python >= 3.12,
#    which uv fetches (the TPU images' Ubuntu 22.04 has 3.10).
# 3. Runs the same command on every worker; `jax.distributed.initialize()` finds the other
#    workers from the TPU metadata (sslax/parallel.py).
# 4. Resume loop: when the run ends with status 143 (SIGTERM: a maintenance event or a
#    spot reclaim; the checkpoint is saved, sslax/preemption.py), or the slice was
#    preempted under it, goes back to 1, and the run resumes from WORKDIR's newest
#    checkpoint. Stops when the run exits 0, or after MAX_RESTARTS restarts.
#
# WORKDIR must be a path every worker sees and that outlives the VMs: a bucket mounted
# with gcsfuse at the same path on every worker (MOUNT_CMD runs on every worker before
# each run) or a Filestore NFS mount.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${TPU_NAME:?set TPU_NAME, the name of the slice}"
: "${ZONE:?set ZONE, e.g. us-central2-b}"
: "${ACCELERATOR_TYPE:?set ACCELERATOR_TYPE, e.g. v4-32}"
: "${WORKDIR:?set WORKDIR, a directory every worker sees (see the comment above)}"
RUNTIME_VERSION=${RUNTIME_VERSION:-tpu-ubuntu2204-base}
SPOT=${SPOT:-0}
MAX_RESTARTS=${MAX_RESTARTS:-20}
MOUNT_CMD=${MOUNT_CMD:-true}
REMOTE_DIR=sslax
COMMIT=$(git rev-parse HEAD)
TPU=(gcloud compute tpus tpu-vm)

slice_state() {
  "${TPU[@]}" describe "$TPU_NAME" --zone="$ZONE" --format='value(state)' 2>/dev/null || echo MISSING
}

on_all_workers() {
  "${TPU[@]}" ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="$1"
}

ensure_slice() {
  local state
  state=$(slice_state)
  if [[ $state == READY ]]; then
    return
  fi
  if [[ $state != MISSING ]]; then
    echo "tpu_pod.sh: slice $TPU_NAME is $state; deleting it to create it again"
    "${TPU[@]}" delete "$TPU_NAME" --zone="$ZONE" --quiet
  fi
  local spot=()
  if [[ $SPOT == 1 ]]; then spot=(--spot); fi
  echo "tpu_pod.sh: creating $ACCELERATOR_TYPE slice $TPU_NAME in $ZONE"
  "${TPU[@]}" create "$TPU_NAME" --zone="$ZONE" --accelerator-type="$ACCELERATOR_TYPE" \
    --version="$RUNTIME_VERSION" "${spot[@]}"
}

install_on_workers() {
  local archive
  archive=$(mktemp --suffix=.tar.gz)
  git archive --format=tar.gz -o "$archive" HEAD
  "${TPU[@]}" scp "$archive" "$TPU_NAME:sslax-$COMMIT.tar.gz" --zone="$ZONE" --worker=all
  rm -f "$archive"
  # Skipped on a worker that already installed this commit (a restart on the same slice).
  on_all_workers "set -e; test -f $REMOTE_DIR/.installed-$COMMIT && exit 0
    rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -xzf sslax-$COMMIT.tar.gz -C $REMOTE_DIR
    cd $REMOTE_DIR && python3 -m pip install -q --user uv
    ~/.local/bin/uv venv -q --python 3.12 .venv
    ~/.local/bin/uv pip install -q --python .venv/bin/python -e . 'jax[tpu]>=0.12,<0.13'
    touch .installed-$COMMIT"
}

run_on_workers() {
  local args
  args=$(printf '%q ' "$@")
  on_all_workers "set -e; $MOUNT_CMD; cd $REMOTE_DIR && .venv/bin/python -m sslax.main $args --workdir=$(printf '%q' "$WORKDIR")"
}

restarts=0
while true; do
  ensure_slice
  install_on_workers
  status=0
  run_on_workers "$@" || status=$?
  if ((status == 0)); then
    echo "tpu_pod.sh: finished; results in $WORKDIR"
    exit 0
  fi
  state=$(slice_state)
  if ((status != 143)) && [[ $state == READY ]]; then
    # gcloud may report a worker's 143 as its own failure status; a second run that
    # fails the same way without preemption also ends up here, bounded by MAX_RESTARTS.
    echo "tpu_pod.sh: the run exited with status $status on a READY slice"
  fi
  restarts=$((restarts + 1))
  if ((restarts > MAX_RESTARTS)); then
    echo "tpu_pod.sh: giving up after $MAX_RESTARTS restarts (last status $status, slice $state)" >&2
    exit "$status"
  fi
  echo "tpu_pod.sh: restart $restarts/$MAX_RESTARTS (status $status, slice $state); resuming from $WORKDIR"
done
