"""Schedules, batch scaling and the weight-decay / trust-ratio masks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

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


def _solo_learn_lars_numpy(params, grads_seq, lrs, *, wd, momentum, eta, clip, mask, eps=1e-8):
  """solo-learn's LARS.step (solo/utils/lars.py) transcribed to NumPy, leaf by leaf."""
  params = {k: np.array(v, np.float64) for k, v in params.items()}
  bufs = {}
  for grads, lr in zip(grads_seq, lrs):
    for k, p in params.items():
      d = np.array(grads[k], np.float64)
      p_norm, g_norm = np.linalg.norm(p), np.linalg.norm(d)
      if mask[k] and p_norm != 0 and g_norm != 0:
        ratio = eta * p_norm / (g_norm + p_norm * wd + eps)
        if clip:
          ratio = min(ratio / lr, 1) if lr > 0 else 1.0
        d = (d + wd * p) * ratio
      bufs[k] = d.copy() if k not in bufs else momentum * bufs[k] + d
      params[k] = p - lr * bufs[k]
  return params


def _run_lars(params, grads_seq, schedule, **kwargs):
  tx = optim.lars(schedule, **kwargs)
  state = tx.init(params)
  for grads in grads_seq:
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params


def test_solo_learn_lars_matches_its_numpy_transcription_over_a_schedule():
  """Five steps of a warm-up/cosine schedule (lr 0 at the first step, where clipping sends
  the ratio to 1), for clip on and off, masked and unmasked leaves, a zero weight and a
  zero gradient (both left unscaled and undecayed)."""
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(4, 3)).astype(np.float32),
            "big": (50 * rng.normal(size=(6,))).astype(np.float32),
            "bias": rng.normal(size=(3,)).astype(np.float32),
            "zero_w": np.zeros((2, 2), np.float32),
            "zero_g": rng.normal(size=(2, 2)).astype(np.float32)}
  grads_seq = []
  for _ in range(5):
    g = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
    g["zero_g"] = np.zeros_like(params["zero_g"])
    grads_seq.append(g)
  mask = {"w": True, "big": True, "bias": False, "zero_w": True, "zero_g": True}
  schedule = optax.warmup_cosine_decay_schedule(0.0, 2.0, warmup_steps=2, decay_steps=5)
  lrs = [float(schedule(i)) for i in range(5)]
  for clip in (True, False):
    kwargs = dict(wd=1e-2, momentum=0.9, clip=clip, mask=mask)
    expected = _solo_learn_lars_numpy(params, grads_seq, lrs, eta=0.02, **kwargs)
    got = _run_lars(jax.tree.map(jnp.asarray, params), grads_seq, schedule, weight_decay=1e-2,
                    momentum=0.9, trust_coefficient=0.02, clip_lr=clip, mask=mask)
    for k in params:
      np.testing.assert_allclose(np.asarray(got[k]), expected[k], rtol=2e-5, atol=1e-6,
                                 err_msg=f"{k}, clip_lr={clip}")
  # the clip binds: with a large eta the unclipped and clipped runs differ on the weights
  free = _run_lars(params, grads_seq, schedule, weight_decay=1e-2, trust_coefficient=5.0,
                   clip_lr=False, mask=mask)
  clipped = _run_lars(params, grads_seq, schedule, weight_decay=1e-2, trust_coefficient=5.0,
                      clip_lr=True, mask=mask)
  assert not np.allclose(free["w"], clipped["w"])
  np.testing.assert_allclose(free["bias"], clipped["bias"])


def test_solo_learn_lars_takes_a_callable_mask_and_config_selects_it():
  params = _params()
  grads = jax.tree.map(lambda p: 2.0 * jnp.ones_like(p), params)
  by_fn = _run_lars(params, [grads], 0.5, weight_decay=0.1, clip_lr=True, mask=optim.decay_mask)
  by_tree = _run_lars(params, [grads], 0.5, weight_decay=0.1, clip_lr=True,
                      mask=optim.decay_mask(params))
  jax.tree.map(np.testing.assert_array_equal, by_fn, by_tree)
  # a bias (masked out) takes the plain step p - lr g
  np.testing.assert_allclose(np.asarray(by_fn["Dense_0"]["bias"]), 1.0 - 0.5 * 2.0)

  cfg = optim.default_config()
  cfg.lars_variant, cfg.clip_lr, cfg.weight_decay = "solo_learn", True, 0.1
  tx = optim.make_optimizer(cfg, optax.constant_schedule(0.5))
  updates, _ = tx.update(grads, tx.init(params), params)
  via_config = optax.apply_updates(params, updates)
  jax.tree.map(np.testing.assert_allclose, via_config, by_fn)


def test_optax_lars_is_the_simclr_byol_variant():
  """The default variant is optax.lars: the update -lr * r * (g + wd p) with
  r = eta ||p|| / ||g + wd p||, momentum after the learning rate."""
  cfg = optim.default_config()
  cfg.weight_decay, cfg.trust_coefficient = 0.1, 0.001
  assert cfg.lars_variant == "optax"
  tx = optim.make_optimizer(cfg, optax.constant_schedule(1.0))
  params = _params()
  grads = jax.tree.map(lambda p: 2.0 * jnp.ones_like(p), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  w, g = np.ones((4, 2)), 2.0 * np.ones((4, 2))
  d = g + 0.1 * w
  trust = 0.001 * np.linalg.norm(w) / np.linalg.norm(d)
  np.testing.assert_allclose(np.asarray(updates["Dense_0"]["kernel"]), -trust * d, rtol=1e-5)


def test_fixed_lr_parts_keep_the_peak_rate_and_the_rest_follow_the_schedule():
  """SimSiam's fixed predictor lr: plain SGD (no momentum, no decay) on params {encoder,
  predictor} with the schedule at 0 on step 0: the encoder does not move, the predictor
  moves by peak * g."""
  cfg = optim.default_config()
  cfg.name, cfg.momentum, cfg.weight_decay, cfg.fixed_lr_parts = "sgd", 0.0, 0.0, ("predictor",)
  tx = optim.make_optimizer(cfg, optax.linear_schedule(0.0, 1.0, 10), peak_lr=0.7)
  params = {"encoder": {"kernel": jnp.ones((2, 2))}, "predictor": {"kernel": jnp.ones((2, 2))}}
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(np.asarray(updates["encoder"]["kernel"]), 0.0)
  np.testing.assert_allclose(np.asarray(updates["predictor"]["kernel"]), -0.7)


def test_warmup_start_and_decay_of_every_parameter():
  cfg = optim.default_config()
  cfg.base_lr, cfg.warmup_steps, cfg.warmup_start_lr = 0.5, 10, 3e-5
  schedule = optim.learning_rate_schedule(cfg, global_batch=256, total_steps=100)
  np.testing.assert_allclose(float(schedule(0)), 3e-5, rtol=1e-3)  # float32
  np.testing.assert_allclose(float(schedule(5)), 3e-5 + (0.5 - 3e-5) / 2, rtol=1e-6)
  cfg.name, cfg.weight_decay, cfg.decay_all_parameters = "sgd", 0.1, True
  tx = optim.make_optimizer(cfg, optax.constant_schedule(1.0))
  params = _params()
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  np.testing.assert_allclose(np.asarray(updates["BatchNorm_0"]["bias"]), -0.1)  # decayed too


def _pytorch_lars_numpy(params, grads_seq, lrs, *, wd, momentum, eta, mask):
  """The official Barlow Twins / MoCo v3 LARS.step transcribed to NumPy."""
  params = {k: np.array(v, np.float64) for k, v in params.items()}
  mu = {k: np.zeros_like(v) for k, v in params.items()}
  for grads, lr in zip(grads_seq, lrs):
    for k, p in params.items():
      dp = np.array(grads[k], np.float64)
      if mask[k]:
        dp = dp + wd * p
        p_norm, u_norm = np.linalg.norm(p), np.linalg.norm(dp)
        q = eta * p_norm / u_norm if p_norm > 0 and u_norm > 0 else 1.0
        dp = dp * q
      mu[k] = momentum * mu[k] + dp
      params[k] = p - lr * mu[k]
  return params


def test_pytorch_lars_matches_the_official_barlow_twins_step():
  rng = np.random.default_rng(1)
  params = {"w": rng.normal(size=(4, 3)).astype(np.float32),
            "bias": rng.normal(size=(3,)).astype(np.float32),
            "zero_w": np.zeros((2, 2), np.float32)}
  grads_seq = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
               for _ in range(4)]
  mask = {"w": True, "bias": False, "zero_w": True}
  schedule = optax.warmup_cosine_decay_schedule(0.0, 1.5, warmup_steps=2, decay_steps=4)
  expected = _pytorch_lars_numpy(params, grads_seq, [float(schedule(i)) for i in range(4)],
                                 wd=1e-2, momentum=0.9, eta=0.001, mask=mask)
  tx = optim.pytorch_lars(schedule, weight_decay=1e-2, momentum=0.9, trust_coefficient=0.001,
                          mask=mask)
  got, state = jax.tree.map(jnp.asarray, params), None
  state = tx.init(got)
  for grads in grads_seq:
    updates, state = tx.update(grads, state, got)
    got = optax.apply_updates(got, updates)
  for k in params:
    np.testing.assert_allclose(np.asarray(got[k]), expected[k], rtol=2e-5, atol=1e-7, err_msg=k)


def test_fixed_lr_parts_must_name_a_parameter_group():
  cfg = optim.default_config()
  cfg.name, cfg.fixed_lr_parts = "sgd", ("predicter",)
  tx = optim.make_optimizer(cfg, optax.constant_schedule(0.1), peak_lr=0.1)
  with pytest.raises(ValueError, match="predicter.*no such top-level parameter group"):
    tx.init({"encoder": {"kernel": jnp.ones((2, 2))}, "predictor": {"kernel": jnp.ones((2, 2))}})
