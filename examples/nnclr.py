"""NNCLR (Dwibedi, Aytar, Tompson, Sermanet, Zisserman 2021, "With a Little Help from My
Friends: Nearest-Neighbor Contrastive Learning of Visual Representations", arXiv 2104.14548),
written outside sslax as a user would write their own method, and run by import path:

  python -m sslax.main --config=examples/nnclr_fashion_mnist.py --workdir=runs/nnclr

(from the repository root, so that `examples` is importable; the config sets
`config.method.name = "examples.nnclr"` and the registry uses this module's METHOD.)

The positive of an image is not its other view but the nearest neighbour of its projection
in a support set Q of projections from earlier batches (paper, eqs. 2-3 and Algorithm 1):

  z_v = normalize(g(f(view_v))), p_v = normalize(h(z_v)) (projector g, predictor h)
  NN(z, Q) = argmax_{q in Q} cos(z, q)          (a row of Q; no gradient flows into it)
  L(nn, p) = mean_i -log( exp(nn_i . p_i / T) / sum_k exp(nn_i . p_k / T) ),
             k over the predictions of the global batch
  loss = L(NN(z_1, Q), p_2) / 2 + L(NN(z_2, Q), p_1) / 2
  Q <- [Q without its oldest global batch, z_1 of the newest global batch]

As the paper: T = 0.1 and a support set of 98,304 (section 4, implementation details); the
projector 3 layers of 2048 with BatchNorm to 256, the predictor 4096 -> 256, Q filled with view
1's projections (Algorithm 1). Q starts as random unit vectors (as solo-learn's NNCLR), so the
first queue_size / batch_size steps contrast against partly random positives.

Every device computes its own examples' neighbours in the same replicated Q, contrasts them
with the predictions of the global batch (`parallel.all_gather`), and enqueues the global
batch's projections in global order (`parallel.all_gather_replicated`), so 8 devices give what
1 gives and Q is the same everywhere, saved in every checkpoint.

This file uses only the library's public pieces: `networks.encoder_projector_predictor`,
`networks.apply_to_views`, `losses.l2_normalize`, the `parallel` collectives and `errors.require`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import errors, losses, parallel
from sslax.methods.base import LossAux, Method, StepInputs
from sslax.methods.common import networks

NAME = "examples.nnclr"
# Q's initial random vectors come from their own stream of config.seed.
_SUPPORT_STREAM = 11


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=NAME,
      temperature=0.1,                 # T (paper, section 4)
      queue_size=98304,                # |Q|, the support set (paper, section 4)
      projector_hidden=(2048, 2048),   # 3-layer projection MLP with BatchNorm
      projector_dim=256,
      projector_last_bn=True,
      predictor_hidden=(4096,),        # prediction MLP 4096 -> 256
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  cfg = config.method
  errors.require(cfg.temperature > 0, "method.temperature", f"must be > 0, got {cfg.temperature}")
  # Q takes whole global batches, so the write position never straddles its end.
  errors.require(
      cfg.queue_size > 0 and cfg.queue_size % config.batch_size == 0, "method.queue_size",
      f"{cfg.queue_size} must be a positive multiple of batch_size = {config.batch_size} (the "
      f"support set takes whole global batches); e.g. "
      f"{max(1, cfg.queue_size // config.batch_size) * config.batch_size}")


def build(config: ml_collections.ConfigDict) -> nn.Module:
  return networks.encoder_projector_predictor(config, projector_last_bn=config.method.projector_last_bn)


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  cfg = config.method
  key = jax.random.fold_in(jax.random.key(config.seed), _SUPPORT_STREAM)
  support = losses.l2_normalize(jax.random.normal(key, (cfg.queue_size, cfg.projector_dim)))
  return {"support": support, "support_index": jnp.zeros((), jnp.int32)}


def nearest_neighbours(z: jax.Array, support: jax.Array) -> tuple[jax.Array, jax.Array]:
  """z: [n, dim], support: [S, dim] unit rows -> (the row of `support` most cosine-similar to
  each z [n, dim], that cosine [n]), both without gradient."""
  similarity = jax.lax.stop_gradient(losses.l2_normalize(z.astype(jnp.float32)) @ support.T)
  index = jnp.argmax(similarity, axis=1)
  return jax.lax.stop_gradient(support[index]), jnp.max(similarity, axis=1)


def neighbour_infonce(neighbours: jax.Array, p: jax.Array, temperature: float,
                      axis_name: str | None) -> jax.Array:
  """L(nn, p) of the module docstring: neighbours [local, dim] (unit rows) against the
  predictions p [local, dim] of the other view of the global batch; row i's positive is p_i."""
  p = losses.l2_normalize(p.astype(jnp.float32))
  candidates = parallel.all_gather(p, axis_name)  # [global, dim]
  logits = neighbours @ candidates.T / temperature
  own = jnp.arange(p.shape[0]) + parallel.global_offset(p.shape[0], axis_name)
  per_example = jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, own[:, None], axis=1)[:, 0]
  return parallel.global_mean(per_example, axis_name)


def nnclr_loss(z1: jax.Array, z2: jax.Array, p1: jax.Array, p2: jax.Array, support: jax.Array,
               temperature: float, axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """The symmetric NNCLR loss on one device's [local, dim] projections z and predictions p
  of both views -> (loss, mean cosine of each z to its neighbour), global-batch values."""
  nn1, cos1 = nearest_neighbours(z1, support)
  nn2, cos2 = nearest_neighbours(z2, support)
  value = 0.5 * (neighbour_infonce(nn1, p2, temperature, axis_name)
                 + neighbour_infonce(nn2, p1, temperature, axis_name))
  return value, parallel.global_mean(jnp.concatenate([cos1, cos2]), axis_name)


def loss(model: nn.Module, variables: dict, inputs: StepInputs, config: ml_collections.ConfigDict,
         axis_name: str | None):
  ((z1, p1), (z2, p2)), batch_stats = networks.apply_to_views(model, variables, inputs.views)
  value, neighbour_cosine = nnclr_loss(z1, z2, p1, p2, inputs.state["support"],
                                       config.method.temperature, axis_name)
  newest = parallel.all_gather_replicated(
      jax.lax.stop_gradient(losses.l2_normalize(z1.astype(jnp.float32))), axis_name)
  return value, LossAux(batch_stats, {"neighbour_cosine": neighbour_cosine},
                        outputs={"projections": newest})


def update_state(config: ml_collections.ConfigDict, params, state: dict, outputs: dict, step):
  newest = outputs["projections"]  # [global_batch, dim], global order
  support = jax.lax.dynamic_update_slice_in_dim(state["support"], newest, state["support_index"], axis=0)
  index = (state["support_index"] + newest.shape[0]) % state["support"].shape[0]
  return params, {"support": support, "support_index": index}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=2, validate=validate,
                init_state=init_state, update_state=update_state)
