"""The target-network EMA (BYOL): the cosine tau schedule and the target recursion,
against the formulas computed by hand in NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslax import optim

BASE_TAU = 0.99
TOTAL_STEPS = 6


def tau_reference(k):
  """Grill et al. 2020: tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2."""
  return 1 - (1 - BASE_TAU) * (np.cos(np.pi * min(k, TOTAL_STEPS) / TOTAL_STEPS) + 1) / 2


def test_target_momentum_schedule_goes_from_base_to_one():
  schedule = optim.target_momentum_schedule(BASE_TAU, TOTAL_STEPS)
  np.testing.assert_allclose(float(schedule(0)), BASE_TAU, rtol=1e-7)
  np.testing.assert_allclose(float(schedule(TOTAL_STEPS)), 1.0, rtol=1e-7)
  np.testing.assert_allclose(float(schedule(TOTAL_STEPS // 2)), 1 - (1 - BASE_TAU) / 2, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(TOTAL_STEPS + 5)), 1.0, rtol=1e-7)  # clipped
  for k in range(TOTAL_STEPS + 1):
    np.testing.assert_allclose(float(schedule(jnp.int32(k))), tau_reference(k), rtol=1e-6)


def test_target_momentum_schedule_can_end_below_one():
  """solo-learn's MoCo v2+ schedule: cosine from 0.99 to 0.999."""
  schedule = optim.target_momentum_schedule(0.99, 10, final_tau=0.999)
  for k in (0, 3, 10, 12):
    want = 0.999 - (0.999 - 0.99) * (np.cos(np.pi * min(k, 10) / 10) + 1) / 2
    np.testing.assert_allclose(float(schedule(k)), want, rtol=1e-6)


def _params(seed):
  rng = np.random.default_rng(seed)
  return {"dense": {"kernel": rng.normal(size=(3, 2)).astype(np.float32),
                    "bias": rng.normal(size=(2,)).astype(np.float32)}}


def test_ema_target_follows_the_byol_recursion_after_each_optimizer_step():
  params = jax.tree.map(jnp.asarray, _params(0))
  schedule = optim.target_momentum_schedule(BASE_TAU, TOTAL_STEPS)
  optimizer = optax.sgd(0.5)
  target_tx = optim.ema_target(schedule)
  opt_state, target_state = optimizer.init(params), target_tx.init(params)

  @jax.jit
  def step(params, opt_state, target_state, grads):
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    # BYOL: the target moves towards the online params *after* the step.
    passed_through, target_state = target_tx.update(updates, target_state, params)
    return params, opt_state, target_state, updates, passed_through

  # Hand-computed: target_0 = params_0; target_{k+1} = tau_k target_k + (1 - tau_k) params_{k+1}.
  want_target = jax.tree.map(lambda x: np.asarray(x, np.float64), _params(0))
  for k in range(TOTAL_STEPS + 2):
    grads = jax.tree.map(jnp.asarray, _params(100 + k))
    params, opt_state, target_state, updates, passed_through = step(
        params, opt_state, target_state, grads)
    jax.tree.map(np.testing.assert_array_equal, passed_through, updates)  # untouched
    tau = tau_reference(k)
    want_target = jax.tree.map(lambda t, p: tau * t + (1 - tau) * np.asarray(p, np.float64),
                               want_target, params)
    jax.tree.map(lambda got, want: np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6),
                 target_state.target, want_target)
    assert int(target_state.count) == k + 1

  # From step K on tau = 1: the target no longer moves even though the params do.
  frozen = target_state.target
  params, opt_state, target_state, _, _ = step(params, opt_state, target_state, grads)
  jax.tree.map(np.testing.assert_array_equal, target_state.target, frozen)


def test_update_target_is_the_same_rule_as_a_pure_function():
  schedule = optim.target_momentum_schedule(BASE_TAU, TOTAL_STEPS)
  target, params = _params(1), _params(2)
  got = optim.update_target(target, params, 2, schedule)
  tau = tau_reference(2)
  jax.tree.map(lambda g, t, p: np.testing.assert_allclose(np.asarray(g), tau * t + (1 - tau) * p, rtol=1e-6),
               got, target, params)


def test_ema_target_init_copies_the_params():
  params = jax.tree.map(jnp.asarray, _params(3))
  state = optim.ema_target(optim.target_momentum_schedule(BASE_TAU, TOTAL_STEPS)).init(params)
  assert int(state.count) == 0
  for got, want in zip(jax.tree.leaves(state.target), jax.tree.leaves(params)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert got is not want  # a separate buffer, safe to donate alongside the params


def test_optax_ema_is_not_a_target_network():
  """Documents why ema_target exists: optax.ema averages (and replaces) the updates,
  from zero, debiased; it does not track the parameters."""
  params = {"w": jnp.ones(3)}
  updates = {"w": jnp.full(3, 2.0)}
  ema = optax.ema(0.9)
  out, _ = ema.update(updates, ema.init(params), params)
  np.testing.assert_allclose(np.asarray(out["w"]), 2.0, rtol=1e-6)  # debiased mean of the updates
  target_tx = optim.ema_target(lambda count: 0.9)
  out, state = target_tx.update(updates, target_tx.init(params), {"w": jnp.zeros(3)})
  assert out is updates
  np.testing.assert_allclose(np.asarray(state.target["w"]), 0.9, rtol=1e-6)  # 0.9 * 1 + 0.1 * 0
