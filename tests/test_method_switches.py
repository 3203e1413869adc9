"""The teaching-table switches of the joint-embedding methods (issue 20): their validation,
what they build, and that they reach the loss. SimCLR's negatives="per_device" and MoCo v2's
queue_size=0 are tested against NumPy in tests/test_losses.py, tests/test_joint_losses.py and
tests/test_stateful_methods.py; the losses' stop_gradient against the cosine's gradient in
tests/test_joint_losses.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import config as config_lib
from sslax import parallel, train
from sslax import step as step_lib
from sslax.errors import ConfigError
from sslax.methods import get_method
from sslax.methods.base import StepInputs
from tests.helpers import tiny_config


def method_config(name: str, data_dir: str = "unused", **overrides):
  config = tiny_config(data_dir)
  config.method = get_method(name).defaults()
  config.method.projector_hidden = (32,)
  config.method.projector_dim = 16
  if "predictor_hidden" in config.method:
    config.method.predictor_hidden = (8,)
  config.method.update(overrides)
  return config


def test_simclr_negatives_is_validated():
  get_method("simclr").validate(method_config("simclr", negatives="per_device"))
  with pytest.raises(ConfigError, match=r"config.method.negatives: 'local' is not one of \['global', 'per_device'\]"):
    get_method("simclr").validate(method_config("simclr", negatives="local"))


@pytest.mark.parametrize("queue_size, ok", [(0, True), (32, True), (-16, False), (24, False)])
def test_moco_v2_queue_size_is_0_or_a_multiple_of_the_batch(queue_size, ok):
  config = method_config("moco_v2", queue_size=queue_size)  # batch_size 16
  if ok:
    get_method("moco_v2").validate(config)
  else:
    with pytest.raises(ConfigError, match=r"config.method.queue_size: .* must be 0 .* or a positive multiple"):
      get_method("moco_v2").validate(config)


def test_moco_v2_queue_0_has_no_queue_state():
  config = method_config("moco_v2", queue_size=0)
  method = get_method("moco_v2")
  variables = step_lib.init_variables(method.build(config), config, 1)
  assert set(method.init_state(config, variables, None)) == {"target"}


@pytest.mark.parametrize("momentum", [
    dict(base_momentum=0.996, momentum_schedule="cosine"),
    dict(base_momentum=0.0, momentum_schedule="cosine"),  # rises to final_momentum = 1
    dict(base_momentum=0.5, momentum_schedule="constant"),
])
def test_byol_without_stop_gradient_needs_tau_0(momentum):
  with pytest.raises(ConfigError, match=r"config.method.stop_gradient: False needs a target network "
                                        r"equal to the online one .* set base_momentum=0 and "
                                        r"momentum_schedule='constant'"):
    get_method("byol").validate(method_config("byol", stop_gradient=False, **momentum))


@pytest.mark.parametrize("momentum", [
    dict(base_momentum=0.0, momentum_schedule="constant"),
    dict(base_momentum=0.0, final_momentum=0.0, momentum_schedule="cosine"),
])
def test_byol_without_stop_gradient_accepts_tau_0(momentum):
  config = method_config("byol", stop_gradient=False, **momentum)
  config_lib.validate(config)


@pytest.mark.parametrize("name", ["simsiam", "byol"])
def test_no_predictor_builds_none_and_predicts_the_projection(name):
  config = method_config(name, predictor=False)
  model = get_method(name).build(config)
  variables = step_lib.init_variables(model, config, 1)
  assert set(variables["params"]) == {"encoder", "projector"}
  with_predictor = step_lib.init_variables(get_method(name).build(method_config(name)), config, 1)
  assert "predictor" in with_predictor["params"]
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4, 28, 28, 1)), jnp.float32)
  z, p = jax.vmap(lambda v: model.apply(variables, v, train=False), axis_name=parallel.DATA_AXIS)(x)
  np.testing.assert_array_equal(np.asarray(p), np.asarray(z))


def test_simsiam_projector_output_bn_standardizes_z_over_the_batch():
  """With the output BN (scale, no shift) each dimension of z has batch mean 0 and batch std
  equal to its scale, 1 at init; a plain Dense output has neither."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 16, 28, 28, 1)), jnp.float32)
  stats = {}
  for output_bn in (True, False):
    config = method_config("simsiam", projector_output_bn=output_bn)
    model = get_method("simsiam").build(config)
    variables = step_lib.init_variables(model, config, 1)
    (z, _), _ = jax.vmap(lambda v: model.apply(variables, v, train=True, mutable=["batch_stats"]),  # noqa: B023
                         axis_name=parallel.DATA_AXIS)(x)
    z = np.asarray(z[0], np.float64)
    stats[output_bn] = (np.abs(z.mean(0)).max(), np.abs(z.std(0) - 1).max())
  assert stats[True][0] < 1e-4 and stats[True][1] < 1e-2
  assert stats[False][0] > 1e-2 and stats[False][1] > 1e-1


def _value_and_grads(name, config):
  """The method's loss and parameter gradients on 8 random images, one "device"."""
  method = get_method(name)
  model = method.build(config)
  variables = step_lib.init_variables(model, config, 1)
  state = method.init_state(config, variables, None)
  rng = np.random.default_rng(0)
  views = [jnp.asarray(rng.normal(size=(8, 28, 28, 1)), jnp.float32) for _ in range(2)]

  def loss_fn(params):
    def per_device(views):  # BatchNorm syncs over the mesh axis: a vmap over one "device"
      inputs = StepInputs(views=views, labels=jnp.zeros(8, jnp.int32), step=jnp.zeros((), jnp.int32),
                          state=state)
      return method.loss(model, {**variables, "params": params}, inputs, config, parallel.DATA_AXIS)[0]
    return jax.vmap(per_device, axis_name=parallel.DATA_AXIS)([v[None] for v in views])[0]

  return jax.value_and_grad(loss_fn)(variables["params"])


@pytest.mark.parametrize("name, momentum", [
    ("simsiam", {}), ("byol", dict(base_momentum=0.0, momentum_schedule="constant"))])
def test_stop_gradient_false_changes_the_gradient_not_the_value(name, momentum):
  """The target branch is the same function of the same parameters either way (BYOL: tau = 0,
  the target a copy of the online network), so only the gradient may change."""
  value, grads = _value_and_grads(name, method_config(name, **momentum))
  value_free, grads_free = _value_and_grads(name, method_config(name, stop_gradient=False, **momentum))
  np.testing.assert_allclose(float(value_free), float(value), rtol=1e-5, atol=1e-6)
  for part in ("encoder", "projector"):
    difference = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                     zip(jax.tree.leaves(grads_free[part]), jax.tree.leaves(grads[part])))
    assert difference > 1e-6, f"stop_gradient=False left the {part}'s gradient unchanged"
  # The predictor sees only the online branch: its gradient is the same.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7),
               grads_free["predictor"], grads["predictor"])


@pytest.mark.parametrize("predictor, stop_gradient", [(True, True), (False, False)])
def test_byol_with_tau_0_trains_and_its_target_is_the_online_network(
    predictor, stop_gradient, tiny_fashion_mnist, tmp_path):
  """BYOL table 5's tau = 0 (the published method otherwise; and the no-predictor,
  no-stop-gradient ablation): two steps run, and the target is the new online network."""
  config = method_config("byol", tiny_fashion_mnist, base_momentum=0.0, momentum_schedule="constant",
                         predictor=predictor, stop_gradient=stop_gradient)
  config.total_steps = 2
  state, _, _ = train.train(config, str(tmp_path / "run"))
  state = jax.tree.map(np.asarray, parallel.to_host(state))
  target = state.method_state["target"].ema.target
  for part in ("encoder", "projector"):
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), target[part], state.params[part])
  assert ("predictor" in state.params) == predictor
