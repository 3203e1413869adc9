"""All cross-device plumbing: the mesh, the sharded step, batch placement, gathers.

sslax runs one per-device function over every device with `jax.shard_map` over a
mesh axis named `DATA_AXIS`. Parameters are replicated, the batch is split along
its first dimension. Inside the per-device function:

* A loss that needs the global batch calls `all_gather` / `global_offset` /
  `pmean` from here with the axis name it was given. Outside shard_map
  (`axis_name=None`) each helper is the identity, so the same loss code runs on
  one device and on a pod.
* Gradients need no explicit all-reduce: shard_map tracks which values vary
  across devices (`check_vma=True`), so `jax.grad` of a global-batch loss with
  respect to replicated parameters already returns the global-batch gradient.
  (Tested against a 1-device run in tests/test_parallel.py.)
"""

from __future__ import annotations

import collections
import os
from typing import Any, Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


# ----------------------------------------------------------------------------
# Collectives usable inside the per-device function (identity when axis_name is None).
# ----------------------------------------------------------------------------

def all_gather(x: jax.Array, axis_name: str | None) -> jax.Array:
  """[n, ...] per device -> [n * devices, ...], ordered by device index."""
  if axis_name is None:
    return x
  return lax.all_gather(x, axis_name, tiled=True)


def all_gather_replicated(x: jax.Array, axis_name: str | None) -> jax.Array:
  """all_gather whose result shard_map knows is the same on every device, so it can go
  into replicated state (a queue of keys): `lax.all_gather`'s result is typed as varying.
  Each device writes its rows into zeros and a psum adds them (exact: one nonzero term
  per element)."""
  if axis_name is None:
    return x
  local = x.shape[0]
  full = jnp.zeros((local * lax.axis_size(axis_name),) + x.shape[1:], x.dtype)
  full = lax.dynamic_update_slice_in_dim(full, x, global_offset(local, axis_name), axis=0)
  return lax.psum(full, axis_name)


def global_offset(local_size: int, axis_name: str | None) -> jax.Array | int:
  """Index in the gathered batch of this device's first local example."""
  if axis_name is None:
    return 0
  return lax.axis_index(axis_name) * local_size


def reverse_global_batch(x: jax.Array, axis_name: str | None) -> jax.Array:
  """This device's slice of the global batch in reverse order: global row i receives row
  G - 1 - i (timm's Mixup pairs each example with `x.flip(0)`; pairing over the global batch
  keeps a step the same on any device count). Device d gets device (D - 1 - d)'s rows,
  reversed; x: [n, ...] per device."""
  if axis_name is None:
    return x[::-1]
  devices = lax.axis_size(axis_name)
  return lax.ppermute(x, axis_name, [(d, devices - 1 - d) for d in range(devices)])[::-1]


def pmean(x: Any, axis_name: str | None) -> Any:
  if axis_name is None:
    return x
  return lax.pmean(x, axis_name)


def psum(x: Any, axis_name: str | None) -> Any:
  if axis_name is None:
    return x
  return lax.psum(x, axis_name)


# ----------------------------------------------------------------------------
# Mesh, multi-host set-up and the sharded step.
# ----------------------------------------------------------------------------

def maybe_initialize_distributed() -> None:
  """Starts JAX's multi-controller runtime when this is one of several processes.

  * Explicit (any cluster, local rehearsals): JAX_COORDINATOR_ADDRESS=host:port,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID (launch/local_multiprocess.sh sets them).
  * SLURM with several tasks (`srun`, launch/slurm.sbatch) and Cloud TPU VMs (a pod
    slice's workers, launch/tpu_pod.sh): `jax.distributed.initialize()` with no
    arguments, which reads the coordinator, process count and id from SLURM's
    variables or the TPU metadata server.
  * SSLAX_DISTRIBUTED=auto forces that auto-detected call (another cluster JAX knows:
    Open MPI, Kubernetes); SSLAX_DISTRIBUTED=off skips initialization.

  Initializing also starts JAX's preemption service, which turns a SIGTERM on any
  process into a checkpoint step every process agrees on (sslax/preemption.py).
  """
  mode = os.environ.get("SSLAX_DISTRIBUTED", "")
  if mode not in ("", "auto", "off"):
    raise ValueError(f"SSLAX_DISTRIBUTED={mode!r}: use 'auto', 'off' or leave it unset")
  if mode == "off":
    return
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
      # Cross-process collectives on CPU go through gloo (TCP); the default has none.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]),
    )
  elif mode == "auto" or _slurm_tasks() > 1 or _on_cloud_tpu_vm():
    jax.distributed.initialize()


def _slurm_tasks() -> int:
  """Processes of this SLURM job step (srun), 1 outside SLURM or in a plain sbatch shell."""
  if "SLURM_JOB_ID" not in os.environ or "SLURM_STEP_NODELIST" not in os.environ:
    return 1
  return int(os.environ.get("SLURM_NTASKS", "1"))


def _on_cloud_tpu_vm() -> bool:
  """TPU chips on this host's PCI bus (GKE's TPU variables, or JAX's own PCI check),
  looked up without starting a JAX backend (initialize must come first)."""
  if os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("MEGASCALE_COORDINATOR_ADDRESS"):
    return True
  try:  # private, so guarded: a JAX without it just loses the auto-detection
    from jax._src import hardware_utils
    chips, _ = hardware_utils.num_available_tpu_chips_and_device_id()
    return chips > 0
  except Exception:  # noqa: BLE001
    return False


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh over all (or the first `num_devices`) devices of every process."""
  devices = jax.devices()
  if num_devices is not None:
    if num_devices > len(devices):
      raise ValueError(f"asked for {num_devices} devices but only {len(devices)} exist")
    devices = devices[:num_devices]
  return jax.sharding.Mesh(np.asarray(devices), (DATA_AXIS,))


def check_batch_divisible(global_batch: int, mesh: jax.sharding.Mesh) -> None:
  num_devices = mesh.devices.size
  if global_batch % num_devices:
    raise ValueError(
        f"batch_size (global) = {global_batch} is not divisible by the number of devices "
        f"= {num_devices}. Choose a batch size that is a multiple of {num_devices} "
        f"(e.g. --config.batch_size={max(num_devices, global_batch // num_devices * num_devices)}).")


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def sharded_step(fn: Callable, mesh: jax.sharding.Mesh, *, donate_state: bool = True) -> Callable:
  """jit(shard_map(fn)) for fn(state, batch) -> (state, metrics).

  state and metrics are replicated (the same on every device), batch is split
  along its leading axis.
  """
  mapped = jax.shard_map(
      fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()), check_vma=True)
  return jax.jit(mapped, donate_argnums=(0,) if donate_state else ())


def sharded_apply(fn: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """jit(shard_map(fn)) for fn(replicated_args, batch) -> per-example outputs."""
  mapped = jax.shard_map(
      fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=P(DATA_AXIS), check_vma=True)
  return jax.jit(mapped)


def sync_processes(name: str) -> None:
  """Blocks until every process reaches the barrier `name` (a no-op with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def broadcast_from_process_0(values: np.ndarray) -> np.ndarray:
  """Process 0's `values` on every process (the values themselves with one process)."""
  return np.asarray(multihost_utils.broadcast_one_to_all(values))


def reached_preemption_sync_point(step: int) -> bool:
  """Whether every process is to stop after `step` (JAX's preemption service; raises
  RuntimeError where the service is off)."""
  return multihost_utils.reached_preemption_sync_point(step)


def gather_to_host(x: jax.Array) -> np.ndarray:
  """A batch-sharded global array -> the whole of it as numpy on every process."""
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Host pytree (identical on every process) -> arrays replicated over the mesh."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def shard_host_batch(batch: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict:
  """This process's slice of the global batch -> global arrays split over the mesh."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def device_prefetch(batches: Iterator[Mapping[str, np.ndarray]], mesh: jax.sharding.Mesh,
                    size: int = 2) -> Iterator[dict]:
  """Keeps `size` batches in flight on the devices so transfers overlap compute."""
  queue: collections.deque = collections.deque()
  for batch in batches:
    queue.append(shard_host_batch(batch, mesh))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


def to_host(tree: Any) -> Any:
  """Replicated global arrays -> numpy on this host (works on multi-host too)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)


def global_mean(x: jax.Array, axis_name: str | None) -> jax.Array:
  """Mean over the global batch of per-example values x: [n]."""
  return pmean(jnp.mean(x), axis_name)
