"""Gradient accumulation: one optimizer step over a global batch taken as k micro-batches,
for a global batch whose activations do not fit in memory at once.

Each device splits its shard into k consecutive micro-batches; micro-batch j of the
run is the j-th slice of every device, so its loss is still a global (micro-)batch
loss through `axis_name`. A `lax.scan` runs them one after another, so only one
micro-batch's activations are alive at a time (unrolled on the CPU, see below), and the
step uses the mean of their gradients.

What changes with k > 1 (README, "Scale out"):
* A loss that is a mean of per-example terms (the supervised baseline, a BN-free
  network) gets exactly the big-batch gradient (tests/test_scaleout.py).
* Contrastive negatives come from the micro-batch, not the global batch: NT-Xent over
  B/k images is a different (easier) task than over B. BatchNorm statistics, Barlow
  Twins' cross-correlation, VICReg's covariance and every other batch statistic are
  micro-batch statistics too; the BatchNorm running averages are updated k times.
* Methods with state (target networks, queues, centers) are rejected by
  `config.validate`: their state moves once per step from the step's outputs.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from sslax.methods.base import StepInputs

# grad_fn(inputs, batch_stats) -> ((loss, LossAux), grads)
GradFn = Callable[[StepInputs, Any], tuple[tuple[jax.Array, Any], Any]]


def value_and_grad(grad_fn: GradFn, inputs: StepInputs, batch_stats: Any, params: Any,
                   steps: int) -> tuple[tuple[jax.Array, dict, Any], Any]:
  """-> ((mean loss, mean metrics, LossAux of the last micro-batch), mean gradient) over
  `steps` micro-batches of `inputs` (views, labels, keys and masks split along the batch)."""
  if steps == 1:
    (loss, aux), grads = grad_fn(inputs, batch_stats)
    return (loss, aux.metrics, aux), grads
  local = inputs.views[0].shape[0]
  if local % steps:
    raise ValueError(f"the per-device batch ({local}) is not divisible by accumulation_steps "
                     f"= {steps}: make batch_size a multiple of devices x accumulation_steps")

  def split(x):  # [local, ...] -> [steps, local / steps, ...]
    return x.reshape((steps, x.shape[0] // steps) + x.shape[1:])

  def micro_step(carry, sliced):
    grad_sum, stats = carry
    views, labels, keys, mask = sliced
    (loss, aux), grads = grad_fn(inputs.replace(views=views, labels=labels, keys=keys, mask=mask),
                                 stats)
    return (jax.tree.map(jnp.add, grad_sum, grads), aux.batch_stats), (loss, aux)

  sliced = jax.tree.map(split, (list(inputs.views), inputs.labels, inputs.keys, inputs.mask))
  zeros = jax.tree.map(jnp.zeros_like, params)
  # A loop keeps one micro-batch's activations alive at a time. XLA:CPU runs a loop body's
  # convolutions several times slower (README, "Precision and memory"), so on the CPU the
  # micro-batches are unrolled, which XLA schedules with less memory saved.
  unroll = jax.default_backend() == "cpu"
  (grad_sum, stats), (losses, auxes) = jax.lax.scan(micro_step, (zeros, batch_stats), sliced,
                                                    unroll=unroll)
  last = jax.tree.map(lambda a: a[-1], auxes)._replace(batch_stats=stats)
  metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), auxes.metrics)
  grads = jax.tree.map(lambda g: g / steps, grad_sum)
  return (jnp.mean(losses), metrics, last), grads
