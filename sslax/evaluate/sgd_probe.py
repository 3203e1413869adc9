"""The SGD linear probe of SimCLR (Chen et al. 2020, appendix B.6) and BYOL (Grill et al.
2020, appendix C.1), on precomputed frozen features.

Recipe: a linear classifier trained with mini-batch SGD, Nesterov momentum 0.9, a cosine
learning-rate decay to 0 over all steps (no warmup), softmax cross-entropy, for a fixed
number of epochs; lr = base_lr * batch_size / 256. Every setting comes from
config.eval.sgd_probe and is recorded in the result.

Departures, since the features are computed once: no augmentation of the inputs (the
papers crop and flip each epoch), and features standardized with the training set's
statistics when `standardize` (what the BatchNorm-without-affine before the classifier of
MoCo v3 and MAE's probes amounts to at test time). Weight decay, if any, is the coupled
L2 of torch.optim.SGD (added to the gradient before momentum), on the weights, not the
bias. The last partial batch of each epoch is dropped; each epoch is a fresh permutation
from `seed`.

The whole training is one jit'ed `lax.scan` over epochs of `lax.scan` over steps.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

PROTOCOL = ("SGD linear probe (SimCLR/BYOL recipe: Nesterov momentum 0.9, cosine lr, fixed "
            "epochs) on precomputed features")


def default_config() -> ml_collections.ConfigDict:
  """config.eval.sgd_probe: BYOL's recipe at a batch that suits small datasets."""
  return ml_collections.ConfigDict(dict(
      batch_size=256, epochs=90, base_lr=0.1,   # lr = base_lr * batch_size / 256
      momentum=0.9, nesterov=True, weight_decay=0.0,  # SimCLR and BYOL: no weight decay
      standardize=True))


def _objective(params, x, y):
  logits = x @ params["w"].T + params["b"]
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


@functools.partial(jax.jit, static_argnames=("num_classes", "batch_size", "epochs", "nesterov"))
def _train(x, y, key, lr, momentum, weight_decay, *, num_classes: int, batch_size: int,
           epochs: int, nesterov: bool):
  """x [N, D], y int [N] -> params {"w": [K, D], "b": [K]}, per-epoch mean training loss [E]."""
  n, dim = x.shape
  steps_per_epoch = n // batch_size
  schedule = optax.cosine_decay_schedule(lr, steps_per_epoch * epochs)
  # Coupled L2 as torch.optim.SGD: the decay enters the gradient, then the momentum.
  decay_mask = {"w": True, "b": False}
  tx = optax.chain(optax.add_decayed_weights(weight_decay, mask=decay_mask),
                   optax.sgd(schedule, momentum=momentum, nesterov=nesterov))
  params = {"w": jnp.zeros((num_classes, dim), jnp.float32), "b": jnp.zeros((num_classes,), jnp.float32)}
  grad_fn = jax.value_and_grad(_objective)

  def epoch(carry, epoch_index):
    def step(carry, batch_index):
      params, opt_state = carry
      idx = jax.lax.dynamic_slice_in_dim(order, batch_index * batch_size, batch_size)
      loss, grads = grad_fn(params, x[idx], y[idx])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    order = jax.random.permutation(jax.random.fold_in(key, epoch_index), n)
    carry, losses = jax.lax.scan(step, carry, jnp.arange(steps_per_epoch))
    return carry, jnp.mean(losses)

  (params, _), losses = jax.lax.scan(epoch, (params, tx.init(params)), jnp.arange(epochs))
  return params, losses


def sgd_probe(train_x: Any, train_y: Any, test_x: Any, test_y: Any, num_classes: int,
              settings: ml_collections.ConfigDict | dict | None = None, *, seed: int = 0) -> dict:
  """Test top-1 of the SGD-trained linear classifier (recipe in the module docstring).

  Args:
    train_x: float [N, D]; train_y: int [N]; test_x: float [M, D]; test_y: int [M].
    settings: config.eval.sgd_probe (defaults: `default_config()`); seed: the batch order.

  Returns:
    {"accuracy", "train_accuracy", "train_loss": last epoch's mean, "lr": the peak learning
    rate, "steps", "protocol", "settings": every setting used}.
  """
  cfg = default_config()
  cfg.update(dict(settings or {}))
  train_x = np.asarray(train_x, np.float32)
  test_x = np.asarray(test_x, np.float32)
  train_y, test_y = np.asarray(train_y, np.int32), np.asarray(test_y, np.int32)
  if train_y.size and not 0 <= train_y.min() <= train_y.max() < num_classes:
    raise ValueError(f"train_y must lie in [0, {num_classes}), got [{train_y.min()}, {train_y.max()}].")
  if cfg.standardize:
    mean, std = train_x.mean(0), train_x.std(0)
    std = np.where(std > 1e-6 * (1.0 + np.abs(mean)), std, 1.0)  # constant features stay 0
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
  batch_size = min(int(cfg.batch_size), len(train_y))
  lr = cfg.base_lr * batch_size / 256
  params, losses = _train(
      jnp.asarray(train_x), jnp.asarray(train_y), jax.random.key(seed), jnp.float32(lr),
      jnp.float32(cfg.momentum), jnp.float32(cfg.weight_decay), num_classes=num_classes,
      batch_size=batch_size, epochs=int(cfg.epochs), nesterov=bool(cfg.nesterov))
  w, b = np.asarray(params["w"]), np.asarray(params["b"])
  accuracy = lambda x, y: float(np.mean(np.argmax(x @ w.T + b, 1) == y))  # noqa: E731
  return {"accuracy": accuracy(test_x, test_y), "train_accuracy": accuracy(train_x, train_y),
          "train_loss": float(losses[-1]), "lr": float(lr),
          "steps": int(cfg.epochs) * (len(train_y) // batch_size),
          "protocol": PROTOCOL, "settings": {**cfg.to_dict(), "batch_size": batch_size, "seed": seed}}
