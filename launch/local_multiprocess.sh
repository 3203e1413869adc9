#!/usr/bin/env bash
# Runs sslax as NUM_PROCESSES local processes (JAX multi-controller, gloo collectives on
# CPU), each with DEVICES_PER_PROCESS fake CPU devices: a laptop rehearsal of a multi-host
# job. Every process runs the same command; each reads only its shard of the data.
#
#   NUM_PROCESSES=2 DEVICES_PER_PROCESS=4 bash launch/local_multiprocess.sh \
#       --config=configs/simclr_fashion_mnist.py --workdir=runs/mp [--config.KEY=VALUE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
NUM_PROCESSES=${NUM_PROCESSES:-2}
DEVICES_PER_PROCESS=${DEVICES_PER_PROCESS:-4}
PORT=${PORT:-12355}
PYTHON=${PYTHON:-.venv/bin/python}

pids=()
for ((i = 0; i < NUM_PROCESSES; i++)); do
  JAX_PLATFORMS=cpu \
  XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES_PER_PROCESS}" \
  JAX_COORDINATOR_ADDRESS="127.0.0.1:${PORT}" JAX_NUM_PROCESSES="$NUM_PROCESSES" JAX_PROCESS_ID="$i" \
    "$PYTHON" -m sslax.main "$@" &
  pids+=($!)
done
# SIGTERM/SIGINT to this script goes to every process, as a scheduler's would: each saves
# the checkpoint at the step they agree on and exits with status 143 (sslax/preemption.py).
# shellcheck disable=SC2317  # called by the trap
forward() { kill -TERM "${pids[@]}" 2>/dev/null || true; }
trap forward TERM INT
status=0
for pid in "${pids[@]}"; do
  while true; do
    wait "$pid" && rc=0 || rc=$?
    kill -0 "$pid" 2>/dev/null || break  # still alive: a trapped signal interrupted the wait
  done
  if ((rc != 0)); then status=$rc; fi
done
exit "$status"
