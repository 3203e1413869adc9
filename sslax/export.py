"""Export the evaluated encoder of a pretraining run, loadable without any training state.

  python -m sslax.export --config=CONFIG --workdir=DIR --out=EXPORT_DIR

From the newest checkpoint in DIR it takes the variables the frozen evaluation embeds with
(`method.evaluated_variables`: the online network, DINO's teacher), keeps only their
`encoder` subtree of params and batch_stats (the whole variables for a model without one:
no projector, predictor, target network or optimizer state), and writes
  EXPORT_DIR/variables/    an Orbax checkpoint of {"params": ..., "batch_stats": ...}
  EXPORT_DIR/export.json   the model config, input shape, normalization, feature dim, and
                           where it came from (workdir, step, method, dataset)
  EXPORT_DIR/config.json   the run's whole config, from which the network is rebuilt

`load_encoder(EXPORT_DIR) -> (module, variables)`: `module.apply(variables, x, train=False)`
(images) or `module.apply(variables, x, mask, train=False)` (sequences, text) gives the
features the frozen evaluation probes, `model.encode` of the run. Images go in as the
evaluation feeds them: float [B, H, W, C] in [0, 1], resized to the input shape, then
(x - mean) / std with export.json's normalization. docs/evaluation.md has the snippet.
"""

from __future__ import annotations

import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax import assemble, cli, parallel
from sslax import config as config_lib
from sslax.methods import get_method

FORMAT = 1


class ExportedEncoder(nn.Module):
  """The method's network reduced to its `encode`: apply(variables, *inputs, train=False) ->
  features [B, D]. Shares the wrapped network's scope, so the variables are the network's
  own ({"params": {"encoder": ...}}), not nested one level deeper."""
  model: nn.Module

  def setup(self):
    nn.share_scope(self, self.model)

  def __call__(self, *inputs, train: bool = False) -> jax.Array:
    return self.model.encode(*inputs, train=train)


def encoder_variables(variables: dict) -> dict:
  """{"params", "batch_stats"} of a network -> only their `encoder` subtrees, or all of them
  when the network has no `encoder`."""
  params = variables["params"]
  if "encoder" not in params:
    return {"params": params, "batch_stats": variables.get("batch_stats") or {}}
  stats = variables.get("batch_stats") or {}
  return {"params": {"encoder": params["encoder"]},
          "batch_stats": {"encoder": stats["encoder"]} if "encoder" in stats else {}}


def _tuples(value: Any) -> Any:
  """JSON lists back to the tuples configs hold (module fields must be hashable)."""
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


def export_encoder(config: ml_collections.ConfigDict, workdir: str, out_dir: str) -> dict:
  """Writes EXPORT_DIR (module docstring) from the newest checkpoint in WORKDIR; -> export.json."""
  import orbax.checkpoint as ocp

  config_lib.validate(config)
  run = assemble.restore_latest(config, workdir, assemble.make_mesh(config))
  model, state, source = run.model, run.state, run.source
  config = assemble.with_dataset_facts(config, source)  # what the run's network was built with
  variables = parallel.to_host(encoder_variables(
      run.method.evaluated_variables(config, state.params, state.batch_stats, state.method_state)))
  input_key = source.input_key
  if input_key == "image":
    size = config.data.image_size
    shape = (size, size, source.input_shape[-1])
    inputs = (jax.ShapeDtypeStruct((1, *shape), jnp.float32),)
  else:
    shape = tuple(source.input_shape)
    inputs = (jax.ShapeDtypeStruct((1, *shape), source.dtype),
              jax.ShapeDtypeStruct((1, shape[0]), jnp.bool_))
  module = ExportedEncoder(model)
  features = jax.eval_shape(lambda v, *x: module.apply(v, *x, train=False), variables, *inputs)
  step = int(parallel.to_host(state.step))
  meta = {
      "format": FORMAT, "method": config.method.name, "model": config.model.to_dict(),
      "precision": config.get("precision", "float32"),
      "input_key": input_key, "modality": source.modality,
      "input_shape": list(shape), "input_dtype": str(inputs[0].dtype),
      "normalization": ({"mean": list(map(float, source.pixel_mean)),
                         "std": list(map(float, source.pixel_std)),
                         "applied_to": "pixels / 255 after resizing to input_shape"}
                        if input_key == "image" else None),
      "feature_dim": int(features.shape[-1]),
      "variables": "encoder subtree" if "encoder" in variables["params"] else "whole network",
      "source": {"workdir": os.path.abspath(workdir), "step": step, "dataset": config.data.name},
  }
  meta = json.loads(json.dumps(meta))  # as export.json holds it: lists, not tuples
  out_dir = os.path.abspath(out_dir)
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(out_dir, "variables"), variables, force=True)
  checkpointer.wait_until_finished()
  checkpointer.close()
  if jax.process_index() == 0:
    with open(os.path.join(out_dir, "export.json"), "w") as f:
      json.dump(meta, f, indent=2)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  return meta


def load_encoder(export_dir: str) -> tuple[nn.Module, dict]:
  """-> (module, variables) of an export: `module.apply(variables, x[, mask], train=False)` ->
  features [B, feature_dim]. Needs the export only: no checkpoint, optimizer or dataset."""
  import orbax.checkpoint as ocp

  export_dir = os.path.abspath(export_dir)
  with open(os.path.join(export_dir, "export.json")) as f:
    meta = json.load(f)
  if meta.get("format") != FORMAT:
    raise ValueError(f"{export_dir}: export format {meta.get('format')}, this sslax reads {FORMAT}")
  with open(os.path.join(export_dir, "config.json")) as f:
    config = ml_collections.ConfigDict(_tuples(json.load(f)))
  model = get_method(meta["method"]).build(config_lib.with_precision(config))
  checkpointer = ocp.StandardCheckpointer()
  variables = checkpointer.restore(os.path.join(export_dir, "variables"))
  checkpointer.close()
  variables = jax.tree.map(np.asarray, variables)
  variables.setdefault("batch_stats", {})
  return ExportedEncoder(model), variables


def main(argv) -> None:
  del argv
  from absl import flags


  args = flags.FLAGS
  meta = cli.run_tool(lambda: export_encoder(args.config, args.workdir, args.out))
  print(f"exported the {meta['method']} encoder of step {meta['source']['step']} "
        f"({meta['variables']}, {meta['feature_dim']}-dim features) to {os.path.abspath(args.out)}",
        flush=True)


def define_flags() -> None:
  """Only when run as a program: importing this module must not define flags that clash
  with sslax.main's."""
  from absl import flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "The pretraining run's directory (its checkpoints/).")
  flags.DEFINE_string("out", None, "The export directory to write.")
  flags.mark_flags_as_required(["config", "workdir", "out"])


if __name__ == "__main__":
  from absl import app

  define_flags()
  app.run(main)
