"""Encoder weights in PyTorch's names, both ways: torchvision's ResNets and timm's ViT.

  state_dict, twin = to_torch(model_cfg, variables, input_shape)  # numpy arrays, torch names
  variables = from_torch(state_dict, model_cfg, input_shape)      # the encoder's variables
  variables = load_pretrained("resnet18.safetensors", config)     # --config.model.init_from=PATH
  module = torch_model(twin)                                      # the PyTorch twin (needs torch)

One table per architecture pairs every torch key with an sslax variable and the layout change
between them (conv HWIO <-> OIHW, dense (in, out) <-> (out, in), attention heads split or
fused). Both directions read the same table, so no key can be renamed one way only.

What is matched, and what is refused (`check_twin`), so that no export computes another function:
- ResNet -> torchvision.models.resnet18/34/50: the same v1.5 layout (stride in the 3x3 conv),
  bias-free convs, PyTorch's symmetric padding (sslax pads explicitly, never 'SAME', whose
  stride-2 padding is asymmetric), BN epsilon 1e-5, max-pool padded with -inf. torchvision has
  only the ImageNet stem and 64 first-stage filters: stem='cifar', num_filters != 64 and
  width_multiplier != 1 are refused. `num_batches_tracked` is written as 0 (sslax does not
  count batches; a BatchNorm with a momentum never reads it). `fc` is the classifier, not the
  encoder: left out (set `model.fc = torch.nn.Identity()`, as `torch_model` does).
- ViT -> timm's VisionTransformer: pre-norm blocks, LayerNorm epsilon 1e-6, exact (erf) GELU,
  qkv with bias fused as timm's [3 D, D] (rows ordered q|k|v, head, head_dim), scale
  head_dim ** -0.5. timm adds `pos_embed` to the CLS token too: its CLS slot is written as
  zeros (sslax adds nothing there), and read back by adding it into the CLS token (the same
  sum). A sin-cos table is written as timm's (learned) pos_embed; read back, it must equal the
  table. pool='avg' is timm's class_token=False, global_pool='avg', fc_norm=False (the final
  LayerNorm before the mean, as here).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax.errors import ConfigError
from sslax.models import resnet, vit
from sslax.models.vit import sincos_2d

# name -> (blocks per stage, block kind), as torchvision.models.resnet*.
RESNETS = {"resnet18": ((2, 2, 2, 2), "basic"), "resnet34": ((3, 4, 6, 3), "basic"),
           "resnet50": ((3, 4, 6, 3), "bottleneck")}
VITS = ("vit", "vit_tiny", "vit_small", "vit_base")
# (width, depth, heads, patch, image size) -> timm's registered name.
TIMM_NAMES = {(192, 12, 3, 16, 224): "vit_tiny_patch16_224",
              (384, 12, 6, 16, 224): "vit_small_patch16_224",
              (768, 12, 12, 16, 224): "vit_base_patch16_224"}
# config.model.name -> the module (as sslax.models.ENCODERS, which imports this file).
FACTORIES = {"resnet18": resnet.resnet18, "resnet34": resnet.resnet34, "resnet50": resnet.resnet50,
             "vit": vit.ViT, "vit_tiny": vit.vit_tiny, "vit_small": vit.vit_small, "vit_base": vit.vit_base}
LOADABLE = tuple(FACTORIES)


def library(model_cfg) -> str:
  """'torchvision' or 'timm': where the twin of config.model lives; ConfigError if nowhere."""
  name = model_cfg.get("name")
  if name in RESNETS:
    return "torchvision"
  if name in VITS:
    return "timm"
  raise ConfigError(
      f"config.model.name: {name!r} has no PyTorch twin: torchvision's ResNets mirror "
      f"{sorted(RESNETS)} and timm's VisionTransformer mirrors {list(VITS)}; export this "
      "encoder with --format=orbax")


def check_twin(model_cfg) -> None:
  """ConfigError naming every difference between config.model and its PyTorch twin that
  would make the twin compute another function."""
  name, problems = model_cfg.get("name"), []
  if library(model_cfg) == "torchvision":
    if model_cfg.get("stem", "imagenet") != "imagenet":
      problems.append(f"stem={model_cfg.stem!r} (3x3/1 conv, no max-pool), but torchvision's "
                      f"{name} has the ImageNet stem (7x7/2 conv, 3x3/2 max-pool): pretrain with "
                      "--config.model.stem=imagenet")
    if model_cfg.get("num_filters", 64) != 64 or model_cfg.get("width_multiplier", 1.0) != 1:
      problems.append(f"num_filters={model_cfg.get('num_filters', 64)} x width_multiplier="
                      f"{model_cfg.get('width_multiplier', 1.0)}, but torchvision's {name} "
                      "starts with 64 filters (its wide_resnet widens only the bottleneck)")
  else:
    width, mlp_dim = _vit_size(model_cfg)[0], _vit_size(model_cfg)[3]
    if int(width * (mlp_dim / width)) != mlp_dim:
      problems.append(f"mlp_dim={mlp_dim} is not int(hidden_dim * mlp_ratio) for any float "
                      "mlp_ratio timm can be given")
    if model_cfg.get("pool", "cls") not in ("cls", "avg"):
      problems.append(f"pool={model_cfg.pool!r}")
  if problems:
    raise ConfigError(f"config.model ({name}) differs from its PyTorch twin: " + "; ".join(problems))


def _vit_size(cfg) -> tuple[int, int, int, int, int]:
  """(width, depth, heads, mlp width, patch) of a ViT config, the named sizes' defaults filled."""
  factory = FACTORIES[cfg.name]
  fields = {"patch_size": 16, "hidden_dim": 768, "depth": 12, "num_heads": 12, "mlp_dim": 0}
  fields.update(getattr(factory, "keywords", {}))
  fields.update({k: cfg[k] for k in fields if k in cfg})
  width = fields["hidden_dim"]
  return width, fields["depth"], fields["num_heads"], fields["mlp_dim"] or 4 * width, fields["patch_size"]


# ---- the tables: (torch key, collection, path in that collection, layout) ----

def _bn_rows(key: str, scope: tuple) -> list:
  return [(f"{key}.weight", "params", (*scope, "scale"), "copy"),
          (f"{key}.bias", "params", (*scope, "bias"), "copy"),
          (f"{key}.running_mean", "batch_stats", (*scope, "mean"), "copy"),
          (f"{key}.running_var", "batch_stats", (*scope, "var"), "copy"),
          (f"{key}.num_batches_tracked", None, None, "count")]


def _resnet_table(name: str) -> list:
  stages, block = RESNETS[name]
  rows = [("conv1.weight", "params", ("stem_conv", "kernel"), "conv")] + _bn_rows("bn1", ("stem_bn",))
  convs = 2 if block == "basic" else 3
  for i, blocks in enumerate(stages):
    for j in range(blocks):
      key, scope = f"layer{i + 1}.{j}", f"stage{i + 1}_block{j + 1}"
      for k in range(convs):
        rows.append((f"{key}.conv{k + 1}.weight", "params", (scope, f"Conv_{k}", "kernel"), "conv"))
        rows += _bn_rows(f"{key}.bn{k + 1}", (scope, f"BatchNorm_{k}"))
      # torchvision's rule: a projection where the stride or the width changes.
      if j == 0 and (i > 0 or block == "bottleneck"):
        rows.append((f"{key}.downsample.0.weight", "params", (scope, "proj_conv", "kernel"), "conv"))
        rows += _bn_rows(f"{key}.downsample.1", (scope, "proj_bn"))
  return rows


def _vit_table(cfg) -> list:
  depth = _vit_size(cfg)[1]
  rows = [("cls_token", "params", ("cls",), "cls")] if cfg.get("pool", "cls") == "cls" else []
  learned = cfg.get("posemb", "sincos2d") == "learned"
  rows += [("pos_embed", "params" if learned else None, ("pos_embed", "embedding"), "pos"),
           ("patch_embed.proj.weight", "params", ("patch_embed", "kernel"), "conv"),
           ("patch_embed.proj.bias", "params", ("patch_embed", "bias"), "copy")]
  for i in range(depth):
    key, scope = f"blocks.{i}", f"block_{i}"
    rows += [(f"{key}.norm1.weight", "params", (scope, "norm1", "scale"), "copy"),
             (f"{key}.norm1.bias", "params", (scope, "norm1", "bias"), "copy"),
             (f"{key}.attn.qkv.weight", "params", (scope, "attn", "qkv", "kernel"), "qkv"),
             (f"{key}.attn.qkv.bias", "params", (scope, "attn", "qkv", "bias"), "qkv_bias"),
             (f"{key}.attn.proj.weight", "params", (scope, "attn", "out", "kernel"), "attn_out"),
             (f"{key}.attn.proj.bias", "params", (scope, "attn", "out", "bias"), "copy"),
             (f"{key}.norm2.weight", "params", (scope, "norm2", "scale"), "copy"),
             (f"{key}.norm2.bias", "params", (scope, "norm2", "bias"), "copy")]
    for fc in ("fc1", "fc2"):
      rows += [(f"{key}.mlp.{fc}.weight", "params", (scope, "mlp", fc, "kernel"), "dense"),
               (f"{key}.mlp.{fc}.bias", "params", (scope, "mlp", fc, "bias"), "copy")]
  rows += [("norm.weight", "params", ("norm", "scale"), "copy"),
           ("norm.bias", "params", ("norm", "bias"), "copy")]
  return rows


def table(model_cfg) -> list:
  """[(torch key, collection or None, path, layout)] of config.model's encoder."""
  return _resnet_table(model_cfg.name) if library(model_cfg) == "torchvision" else _vit_table(model_cfg)


# ---- layouts: sslax array -> torch array, and back ----

def _sslax_to_torch(layout: str, x):
  if layout == "conv":      # HWIO -> OIHW
    return jnp.transpose(x, (3, 2, 0, 1))
  if layout == "dense":     # (in, out) -> (out, in)
    return x.T
  if layout == "qkv":       # (D, 3, heads, d) -> (3 heads d, D)
    return x.reshape(x.shape[0], -1).T
  if layout == "qkv_bias":  # (3, heads, d) -> (3 heads d)
    return x.reshape(-1)
  if layout == "attn_out":  # (heads, d, D) -> (D, heads d)
    return x.reshape(-1, x.shape[-1]).T
  return x


def _torch_to_sslax(layout: str, t: np.ndarray, shape: tuple) -> np.ndarray:
  if layout == "conv":
    return np.transpose(t, (2, 3, 1, 0))
  if layout in ("dense", "qkv", "attn_out"):
    return t.T.reshape(shape)
  return t.reshape(shape)


def _get(tree: dict, path: tuple):
  for part in path:
    tree = tree[part]
  return tree


def _set(tree: dict, path: tuple, value) -> None:
  for part in path[:-1]:
    tree = tree.setdefault(part, {})
  tree[path[-1]] = value


def _grid(cfg, input_shape) -> tuple[int, int]:
  patch = _vit_size(cfg)[4]
  return input_shape[0] // patch, input_shape[1] // patch


def _to_torch_arrays(cfg, variables: dict, input_shape) -> dict:
  """The conversion itself, in jnp ops so that jax.eval_shape gives the shapes for free."""
  out = {}
  for key, collection, path, layout in table(cfg):
    if layout == "count":
      out[key] = jnp.zeros((), jnp.int64) if jax.config.jax_enable_x64 else jnp.zeros((), jnp.int32)
    elif layout == "pos":
      if collection is None:
        pos = jnp.asarray(sincos_2d(*_grid(cfg, input_shape), _vit_size(cfg)[0]))
      else:
        pos = _get(variables["params"], path)
      if cfg.get("pool", "cls") == "cls":  # timm's CLS slot: sslax adds nothing to the CLS token
        pos = jnp.concatenate([jnp.zeros_like(pos[:1]), pos], axis=0)
      out[key] = pos[None]
    else:
      out[key] = _sslax_to_torch(layout, _get(variables[collection], path))
  return out


def to_torch(model_cfg, variables: dict, input_shape) -> tuple[dict[str, np.ndarray], dict]:
  """The encoder's variables ({"params", "batch_stats"}, no `encoder` level) -> (a state_dict
  of float32 numpy arrays in the twin's key names, the twin's description: library,
  constructor arguments, notes). input_shape: one image's (H, W, C)."""
  check_twin(model_cfg)
  arrays = _to_torch_arrays(model_cfg, variables, tuple(input_shape))
  state_dict = {}
  for key, value in arrays.items():
    value = np.asarray(value)
    # Writable (torch.from_numpy warns on read-only arrays) and C-ordered: a transposed kernel
    # copied in its own layout is Fortran-ordered, which safetensors.numpy writes as is, so the
    # file would hold the transpose's bytes under the untransposed shape.
    state_dict[key] = np.array(value, np.int64 if key.endswith("num_batches_tracked") else np.float32,
                               order="C")
  return state_dict, twin(model_cfg, input_shape)


def torch_shapes(model_cfg, input_shape) -> dict[str, tuple[int, ...]]:
  """{torch key: shape} of config.model's export for images of input_shape, without weights."""
  check_twin(model_cfg)
  encoder = encoder_module(model_cfg)
  variables = jax.eval_shape(lambda: encoder.init(
      jax.random.key(0), jnp.zeros((1, *input_shape)), train=False))
  variables = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
  arrays = jax.eval_shape(lambda v: _to_torch_arrays(model_cfg, v, tuple(input_shape)), variables)
  return {key: tuple(arrays[key].shape) for key, *_ in table(model_cfg)}  # the table's order


def encoder_module(model_cfg):
  """The float32 module of config.model (weights are float32 whatever the compute dtype)."""
  cfg = dict(model_cfg.to_dict() if isinstance(model_cfg, ml_collections.ConfigDict) else model_cfg)
  name = cfg.pop("name")
  for key in ("init_from", "dtype"):
    cfg.pop(key, None)
  return FACTORIES[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})


def twin(model_cfg, input_shape) -> dict:
  """How to build the PyTorch module the export loads into (`torch_model` builds it)."""
  height, width, channels = input_shape
  if library(model_cfg) == "torchvision":
    notes = ["fc (the classifier) is not part of the encoder and is left out: set "
             "model.fc = torch.nn.Identity() before load_state_dict, or load with strict=False",
             "num_batches_tracked is 0: sslax does not count batches (BatchNorm with a momentum "
             "never reads it)"]
    if channels != 3:
      notes.append(f"the images have {channels} channel(s): replace model.conv1 by "
                   f"torch.nn.Conv2d({channels}, 64, 7, 2, 3, bias=False) before loading")
    return {"library": "torchvision", "constructor": f"torchvision.models.{model_cfg.name}",
            "in_channels": channels, "notes": notes}
  dim, depth, heads, mlp_dim, patch = _vit_size(model_cfg)
  cls = model_cfg.get("pool", "cls") == "cls"
  kwargs = dict(img_size=[height, width], patch_size=patch, in_chans=channels, embed_dim=dim,
                depth=depth, num_heads=heads, mlp_ratio=mlp_dim / dim, num_classes=0,
                class_token=cls, global_pool="token" if cls else "avg", fc_norm=False)
  notes = ["num_classes=0: the features are the pooled tokens (timm's pre-logits)"]
  if model_cfg.get("posemb", "sincos2d") == "sincos2d":
    notes.append("pos_embed holds sslax's fixed 2-D sin-cos table; timm treats it as learned")
  if cls:
    notes.append("pos_embed's CLS slot is zeros: sslax adds no position to the CLS token")
  return {"library": "timm", "model_name": TIMM_NAMES.get((dim, depth, heads, patch, height))
          if height == width and channels == 3 and cls and mlp_dim == 4 * dim else None,
          "kwargs": kwargs, "notes": notes}


def torch_model(description: dict):
  """The PyTorch twin of a `twin` description, in eval mode: (1, C, H, W) images -> features."""
  import torch

  if description["library"] == "torchvision":
    import torchvision

    model = getattr(torchvision.models, description["constructor"].rpartition(".")[2])(weights=None)
    if description["in_channels"] != 3:
      model.conv1 = torch.nn.Conv2d(description["in_channels"], 64, 7, 2, 3, bias=False)
    model.fc = torch.nn.Identity()
  else:
    import timm
    from timm.models.vision_transformer import VisionTransformer

    kwargs = dict(description["kwargs"], img_size=tuple(description["kwargs"]["img_size"]))
    name = description.get("model_name")
    model = timm.create_model(name, pretrained=False, **kwargs) if name else VisionTransformer(**kwargs)
  return model.eval()


# ---- reading torch weights into sslax ----

def from_torch(state_dict: dict, model_cfg, input_shape=None) -> dict:
  """A torchvision / timm state_dict (numpy or torch arrays) -> the sslax encoder's variables
  {"params", "batch_stats"}. input_shape: one image's (H, W, C), by default the checkpoint's
  (channels from its first conv; a ViT's square grid from its pos_embed).

  Raises ConfigError listing the missing parameters, or naming a key whose shape differs;
  extra keys (a classifier head, say) are listed by `extra_keys` and ignored."""
  library(model_cfg)
  state_dict = {key: _numpy(value) for key, value in state_dict.items()}
  input_shape = tuple(input_shape) if input_shape is not None else _checkpoint_input_shape(
      model_cfg, state_dict)
  rows = table(model_cfg)
  missing = [key for key, collection, _, layout in rows if key not in state_dict and layout != "count"]
  if missing:
    raise ConfigError(f"config.model ({model_cfg.name}): the checkpoint lacks {len(missing)} "
                      f"parameter(s) the encoder needs: {missing[:20]}"
                      f"{' ...' if len(missing) > 20 else ''}; is it a {library(model_cfg)} "
                      f"{model_cfg.name} checkpoint?")
  expected = torch_shapes(model_cfg, input_shape)
  for key, _, _, layout in rows:
    if layout != "count" and tuple(state_dict[key].shape) != expected[key]:
      raise ConfigError(
          f"config.model ({model_cfg.name}, images {input_shape}): {key} has shape "
          f"{tuple(state_dict[key].shape)} in the checkpoint, the encoder's is {expected[key]}")
  sslax_shapes = _sslax_shapes(model_cfg, input_shape)
  variables: dict[str, dict] = {"params": {}, "batch_stats": {}}
  for key, collection, path, layout in rows:
    if layout in ("count", "pos", "cls"):
      continue
    shape = _get(sslax_shapes[collection], path).shape
    _set(variables[collection], path, _torch_to_sslax(layout, state_dict[key], shape).astype(np.float32))
  if library(model_cfg) == "timm":
    _read_positions(model_cfg, state_dict, variables, input_shape)
  return variables


def extra_keys(state_dict: dict, model_cfg) -> list[str]:
  """The checkpoint's keys that the encoder does not read (a classifier head, say)."""
  known = {key for key, *_ in table(model_cfg)}
  return sorted(set(state_dict) - known)


def _read_positions(cfg, state_dict: dict, variables: dict, input_shape) -> None:
  pos = state_dict["pos_embed"][0].astype(np.float32)
  if cfg.get("pool", "cls") == "cls":
    # timm adds pos_embed[0] to the CLS token: the same sum, as one sslax parameter.
    variables["params"]["cls"] = (state_dict["cls_token"] + pos[None, :1]).astype(np.float32)
    pos = pos[1:]
  if cfg.get("posemb", "sincos2d") == "learned":
    variables["params"]["pos_embed"] = {"embedding": pos}
    return
  fixed = sincos_2d(*_grid(cfg, input_shape), pos.shape[-1])
  if not np.allclose(pos, fixed, atol=1e-5):
    raise ConfigError(
        "config.model.posemb: 'sincos2d' adds a fixed 2-D sin-cos table, but the checkpoint's "
        f"pos_embed differs from it (max abs diff {np.max(np.abs(pos - fixed)):.3g}): set "
        "--config.model.posemb=learned to read learned position embeddings")


def _sslax_shapes(model_cfg, input_shape) -> dict:
  encoder = encoder_module(model_cfg)
  variables = jax.eval_shape(lambda: encoder.init(
      jax.random.key(0), jnp.zeros((1, *input_shape)), train=False))
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def _checkpoint_input_shape(cfg, state_dict: dict) -> tuple[int, int, int]:
  if library(cfg) == "torchvision":
    conv = state_dict.get("conv1.weight")
    return (224, 224, conv.shape[1] if conv is not None and conv.ndim == 4 else 3)
  conv, pos = state_dict.get("patch_embed.proj.weight"), state_dict.get("pos_embed")
  channels = conv.shape[1] if conv is not None and conv.ndim == 4 else 3
  patch = _vit_size(cfg)[4]
  if pos is None or pos.ndim != 3:
    return (224, 224, channels)
  tokens = pos.shape[1] - (1 if cfg.get("pool", "cls") == "cls" else 0)
  side = int(round(tokens ** 0.5))
  return (side * patch, side * patch, channels)


def _numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch tensor
    return value.detach().cpu().numpy()
  return np.asarray(value)


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """A .safetensors file (read by safetensors.numpy, no torch needed) or a torch .pth / .pt /
  .bin (needs torch; a {"state_dict": ...} or {"model": ...} wrapper is opened) -> numpy
  arrays by key. Raises ConfigError naming the file and what is wrong with it."""
  if not os.path.isfile(path):
    raise ConfigError(f"config.model.init_from: no file {path}")
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file

    try:
      return load_file(path)
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError
      raise ConfigError(f"config.model.init_from: {path} is not a readable safetensors file "
                        f"(truncated, or not written by safetensors?): {error}") from None
  if path.endswith((".pth", ".pt", ".bin")):
    try:
      import torch
    except ImportError:
      raise ConfigError(f"config.model.init_from: {path} is a torch pickle, which needs torch "
                        "(pip install 'sslax[interop]'); or convert it to .safetensors") from None
    try:
      obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
      raise ConfigError(f"config.model.init_from: torch cannot read {path}: {error}") from None
    for wrapper in ("state_dict", "model"):
      if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
        obj = obj[wrapper]
    return {key: _numpy(value) for key, value in obj.items() if hasattr(value, "shape")}
  raise ConfigError(f"config.model.init_from: {path}: expected a .safetensors file (or a torch "
                    ".pth / .pt / .bin)")


def load_pretrained(path_or_state_dict: str | dict, config, input_shape=None,
                    log=print) -> dict:
  """torchvision or timm weights (a file, or a state_dict) -> the variables {"params",
  "batch_stats"} of the sslax encoder `config` builds (a whole experiment config, or its
  `model`). input_shape: one image's (H, W, C); by default config.data.image_size (when the
  config has one) and the checkpoint's channels. Extra keys are listed by `log` and ignored."""
  model_cfg = config.model if "model" in config else config
  state_dict = (read_state_dict(path_or_state_dict) if isinstance(path_or_state_dict, str)
                else dict(path_or_state_dict))
  if input_shape is None and "data" in config and library(model_cfg) == "timm":
    size = config.data.image_size
    channels = _checkpoint_input_shape(model_cfg, {k: _numpy(v) for k, v in state_dict.items()
                                                   if k == "patch_embed.proj.weight"})[2]
    input_shape = (size, size, channels)
  variables = from_torch(state_dict, model_cfg, input_shape)
  extra = extra_keys(state_dict, model_cfg)
  if extra and log is not None:
    log(f"load_pretrained: {len(extra)} key(s) the {model_cfg.name} encoder does not read, "
        f"ignored: {extra}")
  return variables


def as_init_from(variables: dict) -> dict:
  """The encoder's variables as `assemble.build(init_from=...)` takes them: under `encoder`."""
  init = {"params": {"encoder": variables["params"]}}
  if variables.get("batch_stats"):
    init["batch_stats"] = {"encoder": variables["batch_stats"]}
  return init

