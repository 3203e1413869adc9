"""Schedules, batch scaling and the weight-decay / trust-ratio masks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslax import optim


def _params():
  return {
      "Conv_0": {"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.ones((4,))},
      "BatchNorm_0": {"scale": jnp.ones((4,)), "bias": jnp.ones((4,))},
      "Dense_0": {"kernel": jnp.ones((4, 2)), "bias": jnp.ones((2,))},
  }


def test_decay_mask_excludes_biases_and_norm_parameters():
  mask = optim.decay_mask(_params())
  assert mask == {"Conv_0": {"kernel": True, "bias": False},
                  "BatchNorm_0": {"scale": False, "bias": False},
                  "Dense_0": {"kernel": True, "bias": False}}


def test_learning_rate_scales_with_global_batch_warms_up_and_decays():
  cfg = optim.default_config()
  cfg.base_lr, cfg.warmup_steps = 0.3, 10
  schedule = optim.learning_rate_schedule(cfg, global_batch=1024, total_steps=110)
  peak = 0.3 * 1024 / 256
  assert float(schedule(0)) == 0.0
  np.testing.assert_allclose(float(schedule(5)), peak * 5 / 10, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(10)), peak, rtol=1e-6)
  # cosine: halfway through the decay the rate is half the peak
  np.testing.assert_allclose(float(schedule(60)), peak / 2, rtol=1e-5)
  np.testing.assert_allclose(float(schedule(110)), 0.0, atol=1e-7)


def _one_update(name: str):
  cfg = optim.default_config()
  cfg.name, cfg.weight_decay, cfg.base_lr, cfg.warmup_steps = name, 0.1, 1.0, 0
  tx = optim.make_optimizer(cfg, optax.constant_schedule(1.0))
  params = _params()
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  return updates


def test_weight_decay_touches_only_weights_for_every_optimizer():
  for name in optim.OPTIMIZERS:
    updates = _one_update(name)
    # With zero gradients, any non-zero update comes from weight decay.
    assert float(jnp.abs(updates["Conv_0"]["kernel"]).max()) > 0, name
    assert float(jnp.abs(updates["Dense_0"]["kernel"]).max()) > 0, name
    for leaf in (updates["Conv_0"]["bias"], updates["BatchNorm_0"]["scale"],
                 updates["BatchNorm_0"]["bias"], updates["Dense_0"]["bias"]):
      assert float(jnp.abs(leaf).max()) == 0.0, name


def test_lars_trust_ratio_skips_masked_leaves():
  """LARS scales a weight's update by ||w|| / ||g|| * trust_coefficient; a bias keeps
  the plain (momentum SGD) update."""
  cfg = optim.default_config()
  cfg.name, cfg.weight_decay, cfg.trust_coefficient = "lars", 0.0, 0.001
  tx = optim.make_optimizer(cfg, optax.constant_schedule(1.0))
  params = _params()
  grads = jax.tree.map(lambda p: 2.0 * jnp.ones_like(p), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(np.asarray(updates["Dense_0"]["bias"]), -2.0)
  w, g = np.ones((4, 2)), 2.0 * np.ones((4, 2))
  trust = 0.001 * np.linalg.norm(w) / np.linalg.norm(g)
  np.testing.assert_allclose(np.asarray(updates["Dense_0"]["kernel"]), -trust * g, rtol=1e-5)
