"""DINO (Caron et al. 2021): self-distillation with no labels.

A student (encoder + DINO head) is trained to match, on every crop, the output
distribution of a momentum teacher (an EMA of the whole student) on the *other*
global crops:

  P_t = softmax((g_t(x_global) - C) / tau_t),  P_s = softmax(g_s(x) / tau_s),
  L = mean over pairs (teacher global crop i, student crop v != i) of H(P_t, P_s),

with a stop-gradient on the teacher, a center C (an EMA of the teacher's logits)
subtracted before the sharp teacher softmax (paper eqs. 1-4, Algorithm 1). The loss
and the center update are `losses.dino_loss` / `losses.dino_center_update`, checked
against the official DINOLoss in tests.

As the official code (facebookresearch/dino, main_dino.py, vision_transformer.DINOHead):
* Head: Linear(D, 2048)-GELU-Linear(2048, 2048)-GELU-Linear(2048, 256) (BatchNorm after
  the hidden Linears only with `head_use_bn`, off by default as `--use_bn_in_head False`),
  l2-normalize, then a weight-normalized Linear(256, K) without bias. Linear weights
  start as N(0, 0.02) (the official trunc_normal_(std=.02) truncates at +-2, i.e. at
  100 std: no truncation in practice), biases 0; the last layer's direction starts as
  PyTorch's default Linear init. `norm_last_layer=True` fixes the weight-norm gain g
  to 1 (W = V / ||V|| per output unit); False learns g, started at 1.
* Multi-crop: crops of the same resolution go through the backbone together, one
  backbone call per resolution group (MultiCropWrapper), so BatchNorm statistics are
  per group; the head then runs once on all crops.
* Teacher: the EMA of every student parameter (encoder and head), momentum from
  `base_momentum` (0.996) cosine-increased to 1, averaging in the *new* student
  parameters after the optimizer step; it sees only the 2 global crops, in train mode
  (its BatchNorm normalizes with the batch statistics; its running statistics are its
  own, not averaged).
* Teacher temperature: linear warm-up from `warmup_teacher_temp` to `teacher_temp`
  over `warmup_teacher_temp_steps` steps (np.linspace indexed by the step), then
  constant. The official schedule is per epoch; here it is per step.
* Center: C <- 0.9 C + 0.1 mean(teacher logits over both global crops and the global
  batch), after the loss of the step used the old C.
* The last layer is frozen for the first `freeze_last_layer_steps` steps (official:
  `--freeze_last_layer 1` epoch, gradients set to None). Here its gradient is stopped
  and `update_state` puts its pre-step values back, so weight decay does not move it
  either. Departure: the optimizer's momentum/Adam moments still see those steps
  (zero gradient, plus the weight-decay term for SGD/LARS); PyTorch skips them.
* Per-tensor gradient clipping (`--clip_grad 3.0`) is the optimizer's
  `clip_grad_per_tensor` (sslax/optim.py), set by the DINO configs.

The evaluated representation (`encode`) is the student's backbone; the paper reports
the teacher's, which is in `TrainState.method_state["teacher"]`.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses, parallel
from sslax.methods.base import LossAux, Method, StepInputs, name_of
from sslax.methods.common.networks import multicrop_apply
from sslax.methods.common.target import check_momentum, init_target, target_variables, update_target
from sslax.models import build_encoder
from sslax.models.layers import gelu


def defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name_of(__name__),
      # Head (official DINOHead / main_dino.py defaults).
      out_dim=65536,                 # K, --out_dim
      head_hidden=2048,              # hidden width of the 3-layer MLP
      head_bottleneck=256,           # bottleneck before the l2-normalization
      head_layers=3,
      head_use_bn=False,             # --use_bn_in_head False
      norm_last_layer=True,          # --norm_last_layer True: weight-norm gain fixed to 1
      # Teacher and temperatures.
      base_momentum=0.996,           # --momentum_teacher, cosine to 1
      momentum_schedule="cosine",    # (methods/common/target.py target_transform)
      student_temp=0.1,
      warmup_teacher_temp=0.04,      # --warmup_teacher_temp
      teacher_temp=0.04,             # --teacher_temp (0.07 with a 30-epoch warm-up in the README)
      warmup_teacher_temp_steps=0,   # --warmup_teacher_temp_epochs 0, here in steps
      center_momentum=0.9,
      freeze_last_layer_steps=0,     # official: 1 epoch; configs set steps_per_epoch
      evaluate_teacher=True,         # the paper evaluates the teacher (section 3.1); False: student
  ))


def _dense_init():
  return nn.initializers.normal(stddev=0.02)


# PyTorch's default nn.Linear weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
_torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class WeightNormDense(nn.Module):
  """x @ (g * V / ||V||) without bias, norms over the input axis (one per output unit),
  as torch.nn.utils.weight_norm(nn.Linear(..., bias=False)). With `fixed_gain` there is
  no g (it is 1). `frozen` (a traced bool is fine) stops the gradient to V and g."""
  features: int
  fixed_gain: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, frozen=False) -> jax.Array:
    v = self.param("kernel", _torch_linear_init, (x.shape[-1], self.features))
    freeze = lambda p: jnp.where(frozen, jax.lax.stop_gradient(p), p)
    v = freeze(v)
    w = v / jnp.linalg.norm(v, axis=0, keepdims=True)
    if not self.fixed_gain:
      w = w * freeze(self.param("scale", nn.initializers.ones, (self.features,)))
    return x @ w


class DINOHead(nn.Module):
  """[N, D] backbone features -> [N, out_dim] logits (see the module docstring)."""
  out_dim: int
  hidden_dim: int = 2048
  bottleneck_dim: int = 256
  num_layers: int = 3
  use_bn: bool = False
  norm_last_layer: bool = True
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, freeze_last_layer=False) -> jax.Array:
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, axis_name=self.bn_axis_name)
    dense = functools.partial(nn.Dense, kernel_init=_dense_init())
    for i in range(self.num_layers - 1):
      x = dense(self.hidden_dim, name=f"dense{i + 1}")(x)
      if self.use_bn:
        x = norm(name=f"bn{i + 1}")(x)
      x = gelu(x)
    x = dense(self.bottleneck_dim, name=f"dense{self.num_layers}")(x)
    x = losses.l2_normalize(x.astype(jnp.float32))
    return WeightNormDense(self.out_dim, fixed_gain=self.norm_last_layer,
                           name="last_layer")(x, frozen=freeze_last_layer)


class DINONetworks(nn.Module):
  encoder: nn.Module
  head: DINOHead

  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """x: [B, H, W, C] -> logits [B, out_dim] (used to initialize the parameters)."""
    return self.head(self.encoder(x, train=train), train=train)

  def multicrop(self, groups: Sequence[jax.Array], train: bool = True,
                freeze_last_layer=False) -> jax.Array:
    """Crops grouped by resolution, one backbone call per group, then the head on all:
    -> logits [sum of group sizes, out_dim] in the order of `groups`."""
    features = jnp.concatenate([self.encoder(x, train=train) for x in groups])
    return self.head(features, train=train, freeze_last_layer=freeze_last_layer)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> backbone features [B, D], the evaluated representation."""
    return self.encoder(x, train=train)


def validate(config: ml_collections.ConfigDict) -> None:
  check_momentum(config)


def build(config: ml_collections.ConfigDict) -> nn.Module:
  cfg = config.method
  head = DINOHead(out_dim=cfg.out_dim, hidden_dim=cfg.head_hidden,
                  bottleneck_dim=cfg.head_bottleneck, num_layers=cfg.head_layers,
                  use_bn=cfg.head_use_bn, norm_last_layer=cfg.norm_last_layer,
                  bn_axis_name=parallel.DATA_AXIS)
  return DINONetworks(encoder=build_encoder(config.model, bn_axis_name=parallel.DATA_AXIS),
                      head=head)


def teacher_temperature(cfg: ml_collections.ConfigDict, step: jax.Array) -> jax.Array:
  """np.linspace(warmup_teacher_temp, teacher_temp, W)[step] for step < W, then
  teacher_temp (W = warmup_teacher_temp_steps; the official schedule, per step)."""
  warmup = cfg.warmup_teacher_temp_steps
  if warmup <= 0:
    return jnp.asarray(cfg.teacher_temp, jnp.float32)
  fraction = jnp.clip(jnp.asarray(step, jnp.float32) / max(warmup - 1, 1), 0.0, 1.0)
  return cfg.warmup_teacher_temp + (cfg.teacher_temp - cfg.warmup_teacher_temp) * fraction


def init_state(config: ml_collections.ConfigDict, variables: dict, source) -> dict:
  return {"teacher": init_target(config, variables["params"], variables["batch_stats"]),
          "center": jnp.zeros((config.method.out_dim,), jnp.float32)}


def loss(model: nn.Module, variables: dict, inputs: StepInputs,
         config: ml_collections.ConfigDict, axis_name: str | None):
  cfg = config.method
  state = inputs.state
  frozen = inputs.step < cfg.freeze_last_layer_steps
  student, batch_stats = multicrop_apply(model, variables, inputs.views,
                                         freeze_last_layer=frozen)  # [n_crops, B, K]
  teacher, teacher_batch_stats = multicrop_apply(
      model, target_variables(state["teacher"]), inputs.views[:2])  # [2, B, K]
  teacher = jax.lax.stop_gradient(teacher)
  temp = teacher_temperature(cfg, inputs.step)
  value = losses.dino_loss(student, teacher, state["center"], student_temp=cfg.student_temp,
                           teacher_temp=temp, axis_name=axis_name)
  new_center = losses.dino_center_update(state["center"], teacher, cfg.center_momentum,
                                         axis_name=axis_name)
  # Cheap collapse monitors: the entropy of the teacher's distribution (log K when
  # uniform, 0 when one-hot) and the center's norm.
  log_p = jax.nn.log_softmax((teacher - state["center"]) / temp, axis=-1)
  entropy = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
  metrics = {"teacher_entropy": parallel.global_mean(entropy, axis_name),
             "center_norm": jnp.linalg.norm(new_center), "teacher_temp": temp}
  outputs = {"center": new_center, "teacher_batch_stats": teacher_batch_stats,
             "last_layer": variables["params"]["head"]["last_layer"]}
  return value, LossAux(batch_stats, metrics, outputs)


def evaluated_variables(config: ml_collections.ConfigDict, params, batch_stats, state) -> dict:
  if config.method.evaluate_teacher:
    return target_variables(state["teacher"])
  return {"params": params, "batch_stats": batch_stats}


def update_state(config: ml_collections.ConfigDict, params, state, outputs, step):
  freeze_steps = config.method.freeze_last_layer_steps
  if freeze_steps > 0:  # the pre-step last layer while frozen (no weight decay either)
    frozen = step < freeze_steps
    last = jax.tree.map(lambda old, new: jnp.where(frozen, old, new),
                        outputs["last_layer"], params["head"]["last_layer"])
    params = {**params, "head": {**params["head"], "last_layer": last}}
  teacher = update_target(config, state["teacher"], params, outputs["teacher_batch_stats"])
  return params, {"teacher": teacher, "center": outputs["center"]}


METHOD = Method(defaults=defaults, build=build, loss=loss, num_views=None, validate=validate,
                init_state=init_state, update_state=update_state,
                evaluated_variables=evaluated_variables)
