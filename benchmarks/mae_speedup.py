"""MAE's encoder-on-visible-patches speed-up, measured: the full MAE training step
(augmentation, forward, backward, AdamW) with mask ratio 0.75 against the same model
whose encoder is fed every patch (hidden ones as mask tokens: the paper's "encoder w/ [M]"
ablation, table 1c), same batch, same decoder, same loss. He et al. 2022 report a 2.8x
(8-block decoder) to 4.1x (1-block decoder) faster step for ViT-L (table 2); the ratio grows with the encoder's share of the work,
so it is larger for deep encoders and light decoders.

  .venv/bin/python benchmarks/mae_speedup.py                      # the CPU config (small ViT, 28 px)
  .venv/bin/python benchmarks/mae_speedup.py --vit_base --batch_size=16   # ViT-B/16, 224 px

Median step time over --steps steps after one compile step, synthetic uint8 images, every
device of this process (benchmarks/throughput.py does the timing).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from benchmarks.throughput import benchmark, load_config  # noqa: E402
from sslax.models import build_encoder  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def configs(args):
  if args.vit_base:
    config = load_config(os.path.join(REPO, "configs", "mae_imagenet.py"))
    channels = 3
  else:
    config = load_config(os.path.join(REPO, "configs", "mae_fashion_mnist.py"))
    channels = 1
  if args.batch_size:
    config.batch_size = args.batch_size
  if args.depth:
    config.model.depth = args.depth
  visible = config.copy_and_resolve_references()
  every = config.copy_and_resolve_references()
  every.method.encoder_mask_tokens = True
  return [("encoder on visible patches (MAE)", visible, channels),
          ("encoder on all patches, w/ [M]", every, channels)]


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--vit_base", action="store_true", help="configs/mae_imagenet.py (ViT-B/16, 224 px)")
  parser.add_argument("--batch_size", type=int, default=0, help="0: the config's")
  parser.add_argument("--depth", type=int, default=0, help="encoder blocks; 0: the config's")
  parser.add_argument("--steps", type=int, default=5)
  args = parser.parse_args()
  runs = configs(args)
  model = runs[0][1].model
  vit = build_encoder(model)
  print(f"jax {jax.__version__} on {jax.devices()[0].platform} x{len(jax.devices())} "
        f"({jax.devices()[0].device_kind}); encoder {model.name} patch {vit.patch_size} "
        f"width {vit.hidden_dim} depth {vit.depth}; mask ratio "
        f"{runs[0][1].method.mask_ratio}; decoder {runs[0][1].method.decoder_dim} wide, "
        f"{runs[0][1].method.decoder_depth} deep")
  print(f"{'MAE step':34s} {'batch':>5s} {'image':>11s} {'compile s':>9s} {'step s':>7s} {'images/s':>9s}")
  results = []
  for name, config, channels in runs:
    r = benchmark(name, config, channels, args.steps)
    results.append(r)
    print(f"{name:34s} {r['batch_size']:5d} {r['image']:>11s} {r['compile_s']:9.1f} "
          f"{r['step_s']:7.3f} {r['images_per_s']:9.1f}", flush=True)
  print(f"speed-up of encoding only the visible patches: {results[1]['step_s'] / results[0]['step_s']:.2f}x")


if __name__ == "__main__":
  main()
