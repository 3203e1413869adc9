"""What a method module provides to the trainer: `METHOD = Method(...)`.

A method answers: which networks it has (`build`), how a batch of views becomes a
loss (`loss`), which defaults it wants (`defaults`), which settings cannot work
(`validate`) and, for methods that carry state between steps (a target network, a
queue of negatives, a center), how that state starts (`init_state`) and moves after
each optimizer step (`update_state`). Every hook that takes a config takes the full
config and reads its own keys as `config.method.x`.

The registry (sslax/methods/__init__.py) names a method after its module: a method
never writes its own name, and one in another package runs by its import path.

`validate(config)` raises ConfigError for settings that cannot work; it runs before
anything is built or any data is opened, so `build` and `init_state` can assume a
valid config.

`build(config)` returns a Flax module whose `__call__(x, train)` initializes every
parameter and whose `encode(x, train=False)` returns the representation that is
evaluated (the backbone's features, before any head). On sequence and text data both take
the padding mask too: `__call__(x, mask, train)`, `encode(x, mask, train=False)`, with
x frames [B, T, F] or tokens [B, T] and mask [B, T] (True = real).

`loss(model, variables, inputs, config, axis_name)` returns `(loss, LossAux)`, where
`inputs` is a `StepInputs` and every statistic over the batch goes through `axis_name`
(sslax/parallel.py). `loss` and the metrics must be global-batch values;
`LossAux.outputs` is handed to `update_state`.

`evaluated_variables(config, params, batch_stats, state)` -> the variables the frozen
evaluation embeds with (default: the online network). `heads` names the heads on the
backbone (projector, predictor) whose outputs config.eval.heads may also evaluate, through
the network's `head(x, which, train=False)`.

`reconstruct(model, variables, views, keys, config)` (self-prediction methods only) -> the
input, its corrupted or masked version and the network's reconstruction, as pictures.

`init_state(config, variables, source)` -> a pytree, replicated on every device and saved
in every checkpoint; `source` is the training data source (sslax/data/pipeline.Source), for
what the state is made of (skip-gram's word counts: `source.vocab.counts`).
`update_state(config, params, state, outputs, step)` -> `(params, state)` runs inside the
step after the optimizer (BYOL averages the *new* online parameters into its target); it
may also project `params` (SwAV normalizes its prototypes). Everything it returns must be
the same on every device.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Protocol

import flax
import flax.linen as nn
import jax
import ml_collections

from sslax.data.pipeline import FALLBACK_MEAN, FALLBACK_STD


@flax.struct.dataclass
class StepInputs:
  """What the trainer hands a method's loss on each device at each step."""
  views: list[jax.Array]  # normalized float views, [local_batch, h, w, c] each, config.views order;
                          # for sequences and text one view: frames [local_batch, T, F] float or
                          # tokens [local_batch, T] int (0 = padding), as the source gives them
  labels: jax.Array       # int32 [local_batch]; only the supervised baseline reads them
  step: jax.Array         # int32 scalar: the index of the optimizer step being taken
  state: Any              # the method's state (see module docstring); {} for stateless methods
  keys: Any = None        # PRNG keys [local_batch], one per example: fold_in(seed stream,
                          # global position), so a method's own randomness (masks, tile
                          # shuffles) does not depend on the device an example lands on
  # How the views were normalized, view = (pixel / 255 - mean) / std per channel: methods that
  # need pixels in [0, 1] (colorization's Lab targets) undo it.
  pixel_mean: tuple = flax.struct.field(pytree_node=False, default=(FALLBACK_MEAN,))
  pixel_std: tuple = flax.struct.field(pytree_node=False, default=(FALLBACK_STD,))
  mask: Any = None        # sequences and text: bool [local_batch, T], True = a real frame or


class LossAux(NamedTuple):
  batch_stats: Any        # the online network's new BatchNorm statistics
  metrics: dict           # extra scalars to log (global-batch values)
  outputs: Any = None     # whatever update_state needs (gathered keys, teacher logits, ...)


class DefaultsFn(Protocol):
  def __call__(self) -> ml_collections.ConfigDict: ...


class ValidateFn(Protocol):
  def __call__(self, config: ml_collections.ConfigDict) -> None: ...


class BuildFn(Protocol):
  def __call__(self, config: ml_collections.ConfigDict) -> nn.Module: ...


class LossFn(Protocol):
  def __call__(self, model: nn.Module, variables: dict, inputs: StepInputs,
               config: ml_collections.ConfigDict, axis_name: str | None) -> tuple[jax.Array, LossAux]: ...


class InitStateFn(Protocol):
  def __call__(self, config: ml_collections.ConfigDict, variables: dict, source: Any) -> Any: ...


class UpdateStateFn(Protocol):
  def __call__(self, config: ml_collections.ConfigDict, params: Any, state: Any, outputs: Any,
               step: jax.Array) -> tuple[Any, Any]: ...


class EvaluatedVariablesFn(Protocol):
  def __call__(self, config: ml_collections.ConfigDict, params: Any, batch_stats: Any,
               state: Any) -> dict: ...


class ReconstructFn(Protocol):
  def __call__(self, model: nn.Module, variables: dict, views: jax.Array, keys: jax.Array,
               config: ml_collections.ConfigDict) -> dict: ...


class TokenEmbeddingsFn(Protocol):
  def __call__(self, params: Any) -> jax.Array: ...


def no_checks(config: ml_collections.ConfigDict) -> None:
  return None


def no_state(config: ml_collections.ConfigDict, variables: dict, source: Any) -> Any:
  return {}


def keep_state(config, params, state, outputs, step):
  return params, state


def online_network(config, params, batch_stats, state) -> dict:
  return {"params": params, "batch_stats": batch_stats}


@dataclasses.dataclass(frozen=True)
class Method:
  defaults: DefaultsFn
  build: BuildFn
  loss: LossFn
  num_views: int | None = 2  # None: multi-crop, any number >= 2 with the 2 global views first
  validate: ValidateFn = no_checks
  init_state: InitStateFn = no_state
  update_state: UpdateStateFn = keep_state
  # False when update_state never reads the step's outputs (the supervised linear
  # evaluation's frozen encoder): gradient accumulation then leaves it exact.
  state_reads_outputs: bool = True
  # The variables whose `encode` is evaluated: the online network, unless the method's
  # paper evaluates another (DINO: the teacher).
  evaluated_variables: EvaluatedVariablesFn = online_network
  # The heads on the backbone that config.eval.heads may evaluate besides it ("projector",
  # "predictor"): the network's `head(x, which, train=False)` returns head `which`'s output.
  heads: tuple[str, ...] = ()
  # Self-prediction methods: views [B,H,W,C] normalized, keys [B] -> {"input", "corrupted",
  # "reconstruction"}, each [B,H,W,C] in the views' normalization, for the reconstruction
  # pictures (python -m sslax.reconstruct). None: not a reconstruction.
  reconstruct: ReconstructFn | None = None
  # Token methods: (params) -> [vocab_size, D], the learned vector of each token id, the
  # word embeddings `python -m sslax.neighbors` searches. None: the method has no token table.
  token_embeddings: TokenEmbeddingsFn | None = None
  # Set by the registry from the module (`sslax.methods.get_method`), never by the method.
  name: str = ""


def name_of(module: str) -> str:
  """The config.method.name of a method module: sslax's own by their module name, any other
  by its import path (what `sslax.methods.get_method` takes)."""
  return module.removeprefix("sslax.methods.")
