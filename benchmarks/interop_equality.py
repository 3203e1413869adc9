"""sslax encoders and their PyTorch twins compute the same function: the equality table of
README "Weights to PyTorch". Needs the interop extra (pip install -e '.[interop]').

  python benchmarks/interop_equality.py                    # ResNet-18/50, ViT-S/16, ViT-B/16, CPU ViT
  python benchmarks/interop_equality.py --models=resnet18  # some of them
  python benchmarks/interop_equality.py --trained=EXPORT  # + a trained encoder: an Orbax export
                                                           # (python -m sslax.export --out=EXPORT)
  python benchmarks/interop_equality.py --models= --export=EXPORT_DIR --features=F.npz
      # torch's features of a --format=torchvision|timm export vs F.npz's `features` on its `images`

Per model, on the same float32 images N(0, 1) (NHWC for sslax, NCHW for torch), max |a - b| of:
  sslax -> torch         sslax's features vs the torchvision / timm module loaded with the
                         state_dict that `python -m sslax.export --format=torchvision|timm` writes
  torch -> sslax         the torch module's own random initialization (timm's non-zero CLS slot
                         of pos_embed included) read by sslax.models.load_pretrained, vs torch
  sslax -> torch -> sslax  the torch module's state_dict() after loading the export, read back,
                         vs sslax's features before the trip
"Random weights" are the initialization with every parameter and BatchNorm statistic perturbed,
so that no zero-initialized scale or bias hides a branch of the network.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# torchvision and timm crash (SIGSEGV) when imported after TensorFlow, which sslax's data
# pipeline imports: so they come first, and the tests run this file in a subprocess.
try:
  import timm  # noqa: F401
  import torchvision  # noqa: F401
except ImportError:
  pass

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from sslax.models import build_encoder, encoder_config, load_pretrained, pretrained  # noqa: E402
from sslax.presets import fashion_mnist_vit  # noqa: E402

TOLERANCE = 1e-4
# name -> (config.model, one image's (H, W, C), batch): the smallest images each architecture
# allows (timm's ViT-S/B take 224 px: their pos_embed has 14 x 14 + 1 slots).
MODELS = {
    "resnet18": (encoder_config("resnet18"), (64, 64, 3), 2),
    "resnet50": (encoder_config("resnet50"), (64, 64, 3), 2),
    "vit_small": (encoder_config("vit_small", posemb="learned"), (224, 224, 3), 1),
    "vit_base": (encoder_config("vit_base", posemb="learned"), (224, 224, 3), 1),
    "vit_fashion_mnist": (fashion_mnist_vit(), (28, 28, 1), 2),  # fixed sin-cos positions
}


def perturbed(variables: dict, seed: int = 1, scale: float = 0.05) -> dict:
  """Every array + N(0, scale^2) noise; BatchNorm variances kept positive."""
  rng = np.random.default_rng(seed)
  out = jax.tree.map(lambda a: np.asarray(a, np.float32) + rng.normal(0, scale, np.shape(a)).astype(np.float32),
                     variables)
  out["batch_stats"] = jax.tree.map(np.abs, out.get("batch_stats", {}))
  return out


def sslax_features(model_cfg, variables: dict, images: np.ndarray) -> np.ndarray:
  encoder = build_encoder(model_cfg)
  return np.asarray(encoder.apply(variables, images, train=False))


def torch_features(module, images: np.ndarray) -> np.ndarray:
  import torch

  with torch.no_grad():
    return module(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))).numpy()


def random_variables(model_cfg, input_shape) -> dict:
  variables = build_encoder(model_cfg).init(jax.random.key(0), np.zeros((1, *input_shape), np.float32),
                                            train=False)
  return perturbed({"params": variables["params"], "batch_stats": variables.get("batch_stats", {})})


def sslax_to_torch(model_cfg, variables: dict, input_shape, images: np.ndarray) -> list[tuple]:
  """-> [("sslax -> torch", diff, max |features|), ("sslax -> torch -> sslax", ...)]."""
  import torch

  state_dict, twin = pretrained.to_torch(model_cfg, variables, input_shape)
  module = pretrained.torch_model(twin)
  module.load_state_dict({key: torch.from_numpy(value) for key, value in state_dict.items()})
  ours = sslax_features(model_cfg, variables, images)
  theirs = torch_features(module, images)
  back = load_pretrained(module.state_dict(), model_cfg, input_shape, log=None)
  scale = float(np.max(np.abs(ours)))
  return [("sslax -> torch", float(np.max(np.abs(ours - theirs))), scale),
          ("sslax -> torch -> sslax",
           float(np.max(np.abs(sslax_features(model_cfg, back, images) - ours))), scale)]


def torch_to_sslax(model_cfg, input_shape, images: np.ndarray) -> tuple[str, float]:
  """The torch module's own initialization, perturbed, read into sslax."""
  import torch
  import torchvision  # noqa: F401

  if model_cfg.name in pretrained.VITS:  # timm's pos_embed is learned
    model_cfg = ml_collections.ConfigDict({**model_cfg.to_dict(), "posemb": "learned"})
  module = pretrained.torch_model(pretrained.twin(model_cfg, input_shape))
  torch.manual_seed(0)
  with torch.no_grad():
    # torchvision's zero_init_residual=True (sslax's default too): without it, 16 full-scale
    # residual branches make ResNet-50's float32 forward itself ill-conditioned (float32 vs
    # float64 differ by ~2e-4, in torch as in sslax, on these images).
    for block in module.modules():
      last_norm = getattr(block, "bn3", None) or getattr(block, "bn2", None)
      if isinstance(block, (torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck)):
        last_norm.weight.zero_()
    # The norms' scales and shifts (1 and 0 at initialization), the biases, the CLS token and
    # position embeddings; the weights keep their random initialization. state_dict() shares
    # the parameters' storage.
    for name, tensor in module.state_dict().items():
      if tensor.is_floating_point() and (tensor.ndim <= 1 or name in ("cls_token", "pos_embed")):
        tensor.add_(0.05 * torch.randn_like(tensor))
  # torchvision's initialization with running statistics (0, 1) lets activations grow ~10x a
  # stage (no zero-init residual); statistics of 16 other images (momentum None: their plain
  # average) keep the features at a trained network's scale. A variance floor of 0.1: a channel
  # that ReLU left all zero on them has variance 0, and 1 / sqrt(0 + 1e-5) would amplify float32
  # rounding 300-fold there, a property of such weights, not of the conversion.
  norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
  if norms:
    for norm in norms:
      norm.reset_running_stats()
      norm.momentum = None
    module.train()
    torch_features(module, np.random.default_rng(1).normal(size=(16, *input_shape)).astype(np.float32))
    module.eval()
    with torch.no_grad():
      for norm in norms:
        norm.running_var.clamp_(min=0.1)
  variables = load_pretrained(module.state_dict(), model_cfg, input_shape, log=None)
  theirs = torch_features(module, images)
  diff = np.max(np.abs(sslax_features(model_cfg, variables, images) - theirs))
  return ("torch -> sslax", float(diff), float(np.max(np.abs(theirs))))


def rows_for(name: str, model_cfg, input_shape, batch: int, variables: dict | None = None):
  images = np.random.default_rng(0).normal(size=(batch, *input_shape)).astype(np.float32)
  rows = []
  weights = "random" if variables is None else "trained"
  variables = variables if variables is not None else random_variables(model_cfg, input_shape)
  for direction, diff, scale in sslax_to_torch(model_cfg, variables, input_shape, images):
    rows.append((name, weights, direction, diff, scale))
  if weights == "random":
    rows.append((name, weights, *torch_to_sslax(model_cfg, input_shape, images)))
  return rows


def trained_encoder(export_dir: str):
  """(config.model, image shape, the encoder's variables) of an Orbax export."""
  from sslax import export

  _, variables = export.load_encoder(export_dir)
  with open(os.path.join(export_dir, "export.json")) as f:
    meta = json.load(f)
  variables = {c: tree.get("encoder", tree) for c, tree in variables.items()}
  model_cfg = ml_collections.ConfigDict({k: tuple(v) if isinstance(v, list) else v
                                         for k, v in meta["model"].items() if k != "dtype"})
  return model_cfg, tuple(meta["input_shape"]), variables


def export_rows(export_dir: str, features_path: str) -> list[tuple]:
  """torch's features of an export (export.json's twin, its weights file) vs sslax's, saved
  with the images they were computed on."""
  from safetensors.torch import load_file

  with open(os.path.join(export_dir, "export.json")) as f:
    weights = json.load(f)["weights"]
  module = pretrained.torch_model(weights["twin"])
  module.load_state_dict(load_file(os.path.join(export_dir, weights["file"])))
  saved = np.load(features_path)
  theirs = torch_features(module, saved["images"])
  diff = float(np.max(np.abs(saved["features"] - theirs)))
  return [(os.path.basename(os.path.normpath(export_dir)), "trained", "sslax -> torch", diff,
           float(np.max(np.abs(saved["features"]))))]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {list(MODELS)}")
  parser.add_argument("--trained", help="an Orbax export (python -m sslax.export) of a trained encoder")
  parser.add_argument("--export", help="a --format=torchvision|timm export directory (with --features)")
  parser.add_argument("--features", help=".npz of `images` [B, H, W, C] and sslax's `features` [B, D]")
  parser.add_argument("--json", help="also write the rows to this file")
  args = parser.parse_args()
  import torch

  torch.set_num_threads(2)
  start = time.perf_counter()
  rows = []
  for name in [m for m in args.models.split(",") if m]:
    model_cfg, input_shape, batch = MODELS[name]
    rows += rows_for(name, model_cfg, input_shape, batch)
  if args.trained:
    model_cfg, input_shape, variables = trained_encoder(args.trained)
    rows += rows_for(f"{model_cfg.name} ({os.path.basename(os.path.normpath(args.trained))})",
                     model_cfg, input_shape, 8, variables)
  if args.export:
    rows += export_rows(args.export, args.features)
  print(f"| model | weights | direction | max abs diff (float32) | <= {TOLERANCE:g} | max abs feature |")
  print("|---|---|---|---|---|---|")
  for name, weights, direction, diff, scale in rows:
    print(f"| {name} | {weights} | {direction} | {diff:.2e} | {'yes' if diff <= TOLERANCE else 'NO'} "
          f"| {scale:.3g} |")
  print(f"({time.perf_counter() - start:.0f} s; torch {torch.__version__}, jax {jax.__version__})")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f)
  if any(row[3] > TOLERANCE for row in rows):
    sys.exit(1)


if __name__ == "__main__":
  main()
