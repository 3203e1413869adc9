"""Export the evaluated encoder of a pretraining run, loadable without any training state.

  python -m sslax.export --config=CONFIG --workdir=DIR --out=EXPORT_DIR [--format=orbax]

From the newest checkpoint in DIR it takes the variables the frozen evaluation embeds with
(`method.evaluated_variables`: the online network, DINO's teacher), keeps only their
`encoder` subtree of params and batch_stats (the whole variables for a model without one:
no projector, predictor, target network or optimizer state), and writes
  EXPORT_DIR/variables/    an Orbax checkpoint of {"params": ..., "batch_stats": ...}
  EXPORT_DIR/export.json   the model config, input shape, normalization, feature dim, and
                           where it came from (workdir, step, method, dataset)
  EXPORT_DIR/config.json   the run's whole config, from which the network is rebuilt

--format=torchvision | timm | detectron2 writes the same encoder for PyTorch instead of
variables/ (export.json and config.json as above, export.json's `weights` says how to load it):
  torchvision  EXPORT_DIR/model.safetensors: the state_dict of torchvision.models.resnet18/34/50
               (conv kernels OIHW, BN running statistics; no fc)
  timm         EXPORT_DIR/model.safetensors: the state_dict of timm's VisionTransformer
               (vit_tiny/small/base_patch16_224, or its arguments for a smaller ViT)
  detectron2   EXPORT_DIR/model.pkl: the torchvision ResNet's weights renamed as MoCo's
               detection/convert-pretrain-to-detectron2.py does, for detectron2's R-50 backbone
Weights are converted by sslax/models/pretrained.py (which also reads them back:
`sslax.models.load_pretrained`), written with safetensors' numpy API (no torch needed), and
refused, with the reason, for a network whose PyTorch twin would compute another function
(a CIFAR stem, a ConvNet, ...). Every file is written under a temporary name, then renamed.

`load_encoder(EXPORT_DIR) -> (module, variables)`: `module.apply(variables, x, train=False)`
(images) or `module.apply(variables, x, mask, train=False)` (sequences, text) gives the
features the frozen evaluation probes, `model.encode` of the run. Images go in as the
evaluation feeds them: float [B, H, W, C] in [0, 1], resized to the input shape, then
(x - mean) / std with export.json's normalization. docs/evaluation.md has the snippet.
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax import assemble, cli, parallel
from sslax import config as config_lib
from sslax.errors import ConfigError
from sslax.methods import get_method
from sslax.models import pretrained

FORMAT = 1
FORMATS = ("orbax", "torchvision", "timm", "detectron2")
WEIGHT_FILES = {"torchvision": "model.safetensors", "timm": "model.safetensors",
                "detectron2": "model.pkl"}


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


def check_format(model_cfg: ml_collections.ConfigDict, format: str) -> None:
  """ConfigError unless config.model's encoder can be written as `format` computing the same
  function: called before any checkpoint is read."""
  if format not in FORMATS:
    raise ConfigError(f"--format={format!r} is not one of {list(FORMATS)}")
  if format == "orbax":
    return
  twin_library = pretrained.library(model_cfg)  # ConfigError for a network with no twin
  if twin_library == "timm" and format != "timm":
    raise ConfigError(f"--format={format}: config.model.name {model_cfg.name!r} is a ViT, whose "
                      "PyTorch twin is timm's VisionTransformer: use --format=timm")
  if twin_library == "torchvision" and format == "timm":
    raise ConfigError(f"--format=timm: config.model.name {model_cfg.name!r} is a ResNet, whose "
                      "PyTorch twin is torchvision's: use --format=torchvision or detectron2")
  pretrained.check_twin(model_cfg)


def check_encode_is_encoder(module: nn.Module, variables: dict, config: ml_collections.ConfigDict,
                            input_shape) -> None:
  """ConfigError unless the run's evaluated features (`model.encode`) are config.model's bare
  encoder applied to the image, which is what the PyTorch twin computes: on two random images,
  to float32 rounding (a bfloat16 run: to bfloat16's; the twin computes in float32)."""
  images = np.random.default_rng(0).normal(size=(2, *input_shape)).astype(np.float32)
  features = np.asarray(module.apply(variables, images, train=False), np.float32)
  bare = {c: (t.get("encoder", {}) if "encoder" in variables["params"] else t) for c, t in variables.items()}
  expected = np.asarray(pretrained.encoder_module(config.model).apply(bare, images, train=False))
  tolerance = 1e-4 if config.get("precision", "float32") == "float32" else 5e-2
  if not np.allclose(features, expected, rtol=tolerance, atol=tolerance * np.max(np.abs(expected))):
    raise ConfigError(
        f"method {config.method.name!r}: its evaluated features (model.encode) are not config.model's "
        f"{config.model.name} applied to the image (max abs diff "
        f"{np.max(np.abs(features - expected)):.3g}), so the PyTorch twin would compute another "
        "function; export it with --format=orbax")


def detectron2_checkpoint(state_dict: dict[str, np.ndarray]) -> dict:
  """A torchvision ResNet state_dict -> what detectron2's checkpointer reads from a .pkl: the
  key renaming of MoCo's detection/convert-pretrain-to-detectron2.py (facebookresearch/moco),
  applied to the encoder's keys (MoCo's strips its "module.encoder_q." prefix first)."""
  renamed = {}
  for key, value in state_dict.items():
    if "layer" not in key:
      key = "stem." + key
    for t in (1, 2, 3, 4):
      key = key.replace(f"layer{t}", f"res{t + 1}")
    for t in (1, 2, 3):
      key = key.replace(f"bn{t}", f"conv{t}.norm")
    key = key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
    renamed[key] = value
  return {"model": renamed, "__author__": "sslax", "matching_heuristics": True}


def write_atomically(path: str, write: Callable[[str], None]) -> None:
  """write(temporary path), then rename it to `path`: a reader never sees half a file."""
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    write(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as open() would create it (safetensors writes 0600)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_torch_weights(format: str, variables: dict, model_cfg: ml_collections.ConfigDict,
                        input_shape, normalization: dict, out_dir: str) -> dict:
  """Writes OUT/model.safetensors or OUT/model.pkl of the network's (or its `encoder`'s)
  variables for images of input_shape (H, W, C) normalized with normalization's mean and std;
  -> export.json's `weights` entry."""
  from safetensors.numpy import save_file

  encoder = {collection: (tree.get("encoder", {}) if "encoder" in variables["params"] else tree)
             for collection, tree in variables.items()}
  state_dict, twin = pretrained.to_torch(model_cfg, encoder, input_shape)
  path = os.path.join(out_dir, WEIGHT_FILES[format])
  notes = list(twin["notes"])
  if format == "detectron2":
    mean = [round(255 * m, 3) for m in normalization["mean"]]
    std = [round(255 * s, 3) for s in normalization["std"]]
    notes = [f"detectron2 config (as MoCo's detection/configs/Base-RCNN-C4-BN.yaml): "
             f"MODEL.RESNETS.DEPTH={model_cfg.name[len('resnet'):]}, "
             "MODEL.RESNETS.STRIDE_IN_1X1=False (torchvision's v1.5 stride), INPUT.FORMAT='RGB', "
             f"MODEL.PIXEL_MEAN={mean}, MODEL.PIXEL_STD={std}"
             + (", MODEL.RESNETS.RES2_OUT_CHANNELS=64" if model_cfg.name != "resnet50" else "")]
    checkpoint = detectron2_checkpoint(state_dict)

    def write(tmp):
      with open(tmp, "wb") as f:
        pickle.dump(checkpoint, f)
  else:
    header = {"format": "pt", "sslax_twin": json.dumps(twin)}  # "pt": what timm / HF expect

    def write(tmp):
      save_file(state_dict, tmp, metadata=header)
  if jax.process_index() == 0:
    write_atomically(path, write)
  return {"format": format, "file": os.path.basename(path),
          "twin": {k: v for k, v in twin.items() if k != "notes"}, "notes": notes}


def export_encoder(config: ml_collections.ConfigDict, workdir: str, out_dir: str,
                   format: str = "orbax") -> dict:
  """Writes EXPORT_DIR (module docstring) from the newest checkpoint in WORKDIR in `format`;
  -> export.json."""
  import orbax.checkpoint as ocp

  check_format(config.model, format)
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
  out_dir = os.path.abspath(out_dir)
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
  if format != "orbax":
    check_encode_is_encoder(module, variables, config, shape)
  if format == "orbax":
    # Orbax saves into a temporary directory and renames it when complete.
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(out_dir, "variables"), variables, force=True)
    checkpointer.wait_until_finished()
    checkpointer.close()
  else:
    meta["weights"] = write_torch_weights(format, variables, config.model, shape,
                                          meta["normalization"], out_dir)
  meta = json.loads(json.dumps(meta))  # as export.json holds it: lists, not tuples
  if jax.process_index() == 0:
    write_atomically(os.path.join(out_dir, "export.json"),
                     lambda tmp: _write_text(tmp, json.dumps(meta, indent=2)))
    write_atomically(os.path.join(out_dir, "config.json"),
                     lambda tmp: _write_text(tmp, config.to_json_best_effort(indent=2)))
  return meta


def _write_text(path: str, text: str) -> None:
  with open(path, "w") as f:
    f.write(text)


def load_encoder(export_dir: str) -> tuple[nn.Module, dict]:
  """-> (module, variables) of an export: `module.apply(variables, x[, mask], train=False)` ->
  features [B, feature_dim]. Needs the export only: no checkpoint, optimizer or dataset."""
  import orbax.checkpoint as ocp

  export_dir = os.path.abspath(export_dir)
  with open(os.path.join(export_dir, "export.json")) as f:
    meta = json.load(f)
  if meta.get("format") != FORMAT:
    raise ValueError(f"{export_dir}: export format {meta.get('format')}, this sslax reads {FORMAT}")
  if "weights" in meta:
    raise ValueError(f"{export_dir} holds {meta['weights']['format']} weights "
                     f"({meta['weights']['file']}), not an Orbax checkpoint: read them with "
                     "sslax.models.load_pretrained(PATH, config)")
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
  meta = cli.run_tool(lambda: export_encoder(args.config, args.workdir, args.out, args.format))
  print(f"exported the {meta['method']} encoder of step {meta['source']['step']} "
        f"({meta['variables']}, {meta['feature_dim']}-dim features) to {os.path.abspath(args.out)}",
        flush=True)
  if "weights" in meta:
    weights = meta["weights"]
    twin = weights["twin"]
    target = twin.get("constructor") or twin.get("model_name") or "timm VisionTransformer(**kwargs)"
    if weights["format"] == "detectron2":
      target = f"detectron2's ResNet backbone (torchvision {meta['model']['name']}'s weights)"
    print(f"{weights['format']}: {os.path.join(os.path.abspath(args.out), weights['file'])} "
          f"for {target} (export.json's weights.twin)", flush=True)
    for note in weights["notes"]:
      print(f"  note: {note}", flush=True)


def define_flags() -> None:
  """Only when run as a program: importing this module must not define flags that clash
  with sslax.main's."""
  from absl import flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "The pretraining run's directory (its checkpoints/).")
  flags.DEFINE_string("out", None, "The export directory to write.")
  flags.DEFINE_enum("format", "orbax", FORMATS,
                    "orbax (JAX) or, for PyTorch: torchvision (ResNets), timm (ViTs), detectron2 "
                    "(ResNets, MoCo's key names).")
  flags.mark_flags_as_required(["config", "workdir", "out"])


if __name__ == "__main__":
  from absl import app

  define_flags()
  app.run(main)
