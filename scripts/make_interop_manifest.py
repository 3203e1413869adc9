"""Writes tests/data/interop_manifest.json: the key names and shapes of the PyTorch modules that
`python -m sslax.export --format=torchvision|timm` writes for, read from torchvision and timm
themselves. tests/test_interop.py checks every exported key and shape against it on a machine
without torch.

Regenerate (needs the interop extra: pip install -e '.[interop]'), then commit the file:
  python scripts/make_interop_manifest.py            # -> tests/data/interop_manifest.json

Each entry: the sslax config.model, the image shape (H, W, C), how the PyTorch module was built,
and its state_dict as {key: shape}, in the module's order.
"""

from __future__ import annotations

import json
import os
import re
import sys

import timm
import torch
import torchvision
from timm.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from sslax.models import encoder_config  # noqa: E402
from sslax.presets import fashion_mnist_vit  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "interop_manifest.json")


def torchvision_resnet(name: str, channels: int = 3) -> torch.nn.Module:
  model = getattr(torchvision.models, name)(weights=None)
  if channels != 3:
    model.conv1 = torch.nn.Conv2d(channels, 64, 7, 2, 3, bias=False)
  model.fc = torch.nn.Identity()  # the classifier is not part of the encoder
  return model


# name -> (sslax config.model, image (H, W, C), what builds the PyTorch module, the builder)
ENTRIES = {
    "resnet18": (encoder_config("resnet18"), (224, 224, 3), "torchvision.models.resnet18(), fc=Identity",
                 lambda: torchvision_resnet("resnet18")),
    "resnet34": (encoder_config("resnet34"), (224, 224, 3), "torchvision.models.resnet34(), fc=Identity",
                 lambda: torchvision_resnet("resnet34")),
    "resnet50": (encoder_config("resnet50"), (224, 224, 3), "torchvision.models.resnet50(), fc=Identity",
                 lambda: torchvision_resnet("resnet50")),
    "resnet18_fashion_mnist": (encoder_config("resnet18"), (28, 28, 1),
                               "torchvision.models.resnet18(), conv1=Conv2d(1, 64, 7, 2, 3), fc=Identity",
                               lambda: torchvision_resnet("resnet18", 1)),
    "vit_tiny": (encoder_config("vit_tiny", posemb="learned"), (224, 224, 3),
                 "timm.create_model('vit_tiny_patch16_224', num_classes=0)",
                 lambda: timm.create_model("vit_tiny_patch16_224", num_classes=0)),
    "vit_small": (encoder_config("vit_small"), (224, 224, 3),
                  "timm.create_model('vit_small_patch16_224', num_classes=0)",
                  lambda: timm.create_model("vit_small_patch16_224", num_classes=0)),
    "vit_base": (encoder_config("vit_base"), (224, 224, 3),
                 "timm.create_model('vit_base_patch16_224', num_classes=0)",
                 lambda: timm.create_model("vit_base_patch16_224", num_classes=0)),
    # The CPU configs' ViT (sslax/presets.py) on Fashion-MNIST, and its mean-pooled variant.
    "vit_fashion_mnist": (fashion_mnist_vit(), (28, 28, 1),
                          "VisionTransformer(img_size=28, patch_size=4, in_chans=1, embed_dim=128, "
                          "depth=4, num_heads=4, num_classes=0)",
                          lambda: VisionTransformer(img_size=28, patch_size=4, in_chans=1, embed_dim=128,
                                                    depth=4, num_heads=4, num_classes=0)),
    "vit_fashion_mnist_avg": (encoder_config("vit", patch_size=4, hidden_dim=128, depth=4, num_heads=4,
                                             pool="avg"), (28, 28, 1),
                              "VisionTransformer(img_size=28, patch_size=4, in_chans=1, embed_dim=128, "
                              "depth=4, num_heads=4, num_classes=0, class_token=False, "
                              "global_pool='avg', fc_norm=False)",
                              lambda: VisionTransformer(img_size=28, patch_size=4, in_chans=1,
                                                        embed_dim=128, depth=4, num_heads=4,
                                                        num_classes=0, class_token=False,
                                                        global_pool="avg", fc_norm=False)),
}


def main() -> None:
  manifest = {"generated_by": "python scripts/make_interop_manifest.py",
              "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                           "timm": timm.__version__},
              "models": {}}
  for name, (model_cfg, input_shape, built_by, build) in ENTRIES.items():
    state_dict = build().state_dict()
    manifest["models"][name] = {
        "config_model": {k: v for k, v in model_cfg.to_dict().items() if k != "init_from"},
        "input_shape": list(input_shape), "torch_module": built_by,
        "state_dict": {key: list(value.shape) for key, value in state_dict.items()}}
    print(f"{name}: {len(state_dict)} keys from {built_by}")
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  # One key per line: shapes [a, b, ...] on the key's line.
  text = re.sub(r"\[([\d,\s]+)\]",
                lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
                json.dumps(manifest, indent=1))
  with open(OUT, "w") as f:
    f.write(text + "\n")
  print(f"wrote {os.path.abspath(OUT)}")


if __name__ == "__main__":
  main()
