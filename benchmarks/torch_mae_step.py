"""The MAE ViT-B/16 pretraining step in PyTorch, for benchmarks/mfu.py's side-by-side.

The architecture of the official code (facebookresearch/mae, `models_mae.py`,
`mae_vit_base_patch16_dec512d8b`), written here for the benchmark so that only torch is
needed: a 16x16 patch embedding, fixed 2-D sin-cos position embeddings and a CLS token,
12 pre-norm blocks 768 wide with 12 heads (LayerNorm eps 1e-6, fused qkv with bias, exact
GELU, MLP 4x), per-sample random masking of 75% of the patches (argsort of uniform noise,
as `random_masking`), a decoder 512 wide with 8 blocks and 16 heads, mask tokens put back
in patch order with a gather, and the normalized-pixel loss on the masked patches
(`norm_pix_loss=True`). Attention is `F.scaled_dot_product_attention`, which timm's
`Block` (the official code's block) uses as well. AdamW with betas (0.9, 0.95), weight
decay 0.05 on weights only (biases and norms undecayed, as `param_groups_weight_decay`).

--precision bfloat16 runs forward and loss under torch.autocast(bfloat16) with float32
parameters (the official code uses float16 autocast with a loss scaler; bfloat16 needs
none, and matches sslax's policy). --compile wraps the model in torch.compile (default
mode); the optimizer step stays eager, as in the usual recipe. The input is the images
(MAE's one view), as on the sslax side.

Prints one JSON line like benchmarks/torch_simclr_step.py.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F


def sincos_2d(grid: int, dim: int, cls: bool) -> np.ndarray:
  """MAE's get_2d_sincos_pos_embed: half the channels for each axis, sin then cos."""
  quarter = dim // 4
  omega = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)
  rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")

  def encode(pos):
    angles = pos.reshape(-1)[:, None] * omega[None]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
  table = np.concatenate([encode(rows), encode(cols)], axis=1)
  if cls:
    table = np.concatenate([np.zeros((1, dim)), table])
  return table.astype(np.float32)


class Block(torch.nn.Module):
  def __init__(self, dim: int, heads: int):
    super().__init__()
    self.heads = heads
    self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
    self.qkv = torch.nn.Linear(dim, 3 * dim)
    self.proj = torch.nn.Linear(dim, dim)
    self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
    self.fc1 = torch.nn.Linear(dim, 4 * dim)
    self.fc2 = torch.nn.Linear(4 * dim, dim)

  def forward(self, x):
    b, n, d = x.shape
    qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
    attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
    x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
    return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class MAE(torch.nn.Module):
  def __init__(self, image_size=224, patch=16, dim=768, depth=12, heads=12,
               dec_dim=512, dec_depth=8, dec_heads=16, mask_ratio=0.75):
    super().__init__()
    self.patch, self.mask_ratio = patch, mask_ratio
    grid = image_size // patch
    self.patch_embed = torch.nn.Conv2d(3, dim, patch, stride=patch)
    self.cls = torch.nn.Parameter(torch.zeros(1, 1, dim))
    self.register_buffer("pos", torch.from_numpy(sincos_2d(grid, dim, cls=True))[None])
    self.blocks = torch.nn.ModuleList(Block(dim, heads) for _ in range(depth))
    self.norm = torch.nn.LayerNorm(dim, eps=1e-6)
    self.dec_embed = torch.nn.Linear(dim, dec_dim)
    self.mask_token = torch.nn.Parameter(torch.zeros(1, 1, dec_dim))
    self.register_buffer("dec_pos", torch.from_numpy(sincos_2d(grid, dec_dim, cls=True))[None])
    self.dec_blocks = torch.nn.ModuleList(Block(dec_dim, dec_heads) for _ in range(dec_depth))
    self.dec_norm = torch.nn.LayerNorm(dec_dim, eps=1e-6)
    self.dec_pred = torch.nn.Linear(dec_dim, patch * patch * 3)
    torch.nn.init.normal_(self.cls, std=0.02)
    torch.nn.init.normal_(self.mask_token, std=0.02)

  def patchify(self, images):
    b, c, h, w = images.shape
    p = self.patch
    x = images.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)

  def forward(self, images):
    x = self.patch_embed(images).flatten(2).transpose(1, 2) + self.pos[:, 1:]
    b, n, d = x.shape
    keep = int(n * (1 - self.mask_ratio))
    noise = torch.rand(b, n, device=x.device)
    shuffle = torch.argsort(noise, dim=1)
    restore = torch.argsort(shuffle, dim=1)
    x = torch.gather(x, 1, shuffle[:, :keep, None].expand(-1, -1, d))
    mask = torch.ones(b, n, device=x.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, restore)

    x = torch.cat([(self.cls + self.pos[:, :1]).expand(b, -1, -1), x], dim=1)
    for block in self.blocks:
      x = block(x)
    x = self.dec_embed(self.norm(x))
    tokens = torch.cat([x[:, 1:], self.mask_token.expand(b, n - keep, -1)], dim=1)
    tokens = torch.gather(tokens, 1, restore[:, :, None].expand(-1, -1, x.shape[2]))
    x = torch.cat([x[:, :1], tokens], dim=1) + self.dec_pos
    for block in self.dec_blocks:
      x = block(x)
    pred = self.dec_pred(self.dec_norm(x))[:, 1:]

    target = self.patchify(images)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    target = (target - mean) / (var + 1e-6) ** 0.5
    loss = ((pred.float() - target) ** 2).mean(-1)
    return (loss * mask).sum() / mask.sum()


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch_size", type=int, required=True)
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--lr", type=float, default=1.5e-4 * 4096 / 256)
  parser.add_argument("--device", default="", help="cuda or cpu (default: cuda if available)")
  parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--compile", action="store_true", help="torch.compile the model")
  # Smaller stand-ins for a CPU check of this script (the benchmark uses ViT-B/16's sizes).
  parser.add_argument("--dim", type=int, default=768)
  parser.add_argument("--depth", type=int, default=12)
  parser.add_argument("--heads", type=int, default=12)
  args = parser.parse_args()

  device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
  if device.type == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
  torch.manual_seed(0)
  model = MAE(args.image_size, dim=args.dim, depth=args.depth, heads=args.heads).to(device).train()
  decay = [p for p in model.parameters() if p.ndim > 1]
  no_decay = [p for p in model.parameters() if p.ndim <= 1]
  opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                           {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
  forward = torch.compile(model) if args.compile else model
  images = torch.rand(args.batch_size, 3, args.image_size, args.image_size, device=device)
  bf16 = args.precision == "bfloat16"

  def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
      loss = forward(images)
    loss.backward()
    opt.step()
    return loss.item()  # waits for the device

  start = time.perf_counter()
  first = step()  # warm-up: compilation, autotuning, allocator
  compile_s = time.perf_counter() - start
  if not math.isfinite(first):
    raise SystemExit(f"non-finite loss {first}")
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                    "step_s": min(times), "first_step_s": compile_s, "compile": args.compile,
                    "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "precision": args.precision, "steps": times}))


if __name__ == "__main__":
  main()
