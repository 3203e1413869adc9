"""What a method file provides to the trainer.

A method answers three questions: which networks it has (`build`), how a batch
of views becomes a loss (`loss`), and which defaults it wants (`defaults`).

`build(config)` returns a Flax module whose `__call__(x, train)` is what `loss`
calls and whose `encode(x, train=False)` returns the representation that is
evaluated (the backbone's features, before any projection head).

`loss(model, variables, views, cfg, axis_name)` returns
`(loss, (new_batch_stats, metrics))`, where `views` is a list of
[local_batch, H, W, C] float arrays, `cfg` is `config.method` and every statistic
over the batch goes through `axis_name` (sslax/parallel.py). `loss` and `metrics`
must be global-batch values.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import ml_collections


LossFn = Callable[[nn.Module, dict, list[jax.Array], ml_collections.ConfigDict, str | None],
                  tuple[jax.Array, tuple[Any, dict]]]


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  defaults: Callable[[], ml_collections.ConfigDict]
  build: Callable[[ml_collections.ConfigDict], nn.Module]
  loss: LossFn
  num_views: int = 2
