"""The SimCLR ResNet-50 training step in PyTorch, for benchmarks/mfu.py's side-by-side.

The same work as sslax's step in that benchmark: torchvision's resnet50 (no fc) and
SimCLR's projector (Linear without bias -> BatchNorm -> ReLU -> Linear), two views of
every image through the network in one call (BatchNorm over both views), NT-Xent at
temperature tau against the other 2B - 2 views, backward, and LARS as optax.lars applies
it (weight decay and trust ratio on weights only, then learning rate, then momentum).
The views are given (the images and their horizontal flips), as on the sslax side.

Prints one JSON line: {"torch": version, "threads": n, "step_s": fastest, "steps": [...]}.
Run by benchmarks/mfu.py with the Python that has torch (`--torch_python`); needs only
torch and torchvision (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
import torchvision


class SimCLR(torch.nn.Module):
  def __init__(self, hidden: list[int], out_dim: int):
    super().__init__()
    self.encoder = torchvision.models.resnet50(weights=None)
    self.encoder.fc = torch.nn.Identity()
    layers, width = [], 2048
    for h in hidden:
      layers += [torch.nn.Linear(width, h, bias=False), torch.nn.BatchNorm1d(h), torch.nn.ReLU()]
      width = h
    layers.append(torch.nn.Linear(width, out_dim))
    self.projector = torch.nn.Sequential(*layers)

  def forward(self, x):
    return self.projector(self.encoder(x))


def nt_xent(z: torch.Tensor, batch: int, temperature: float) -> torch.Tensor:
  """z: [2B, d], rows i and i + B are the two views of image i."""
  z = F.normalize(z, dim=1)
  logits = z @ z.t() / temperature
  logits.fill_diagonal_(float("-inf"))
  targets = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)])
  return F.cross_entropy(logits, targets)


class LARS(torch.optim.Optimizer):
  """optax.lars: g += wd * w; g *= tc * ||w|| / ||g||; buf = m * buf + lr * g; w -= buf
  (decay and trust ratio on tensors with ndim > 1 only, as sslax's decay_mask)."""

  def __init__(self, params, lr, weight_decay, momentum, trust_coefficient):
    super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                  trust_coefficient=trust_coefficient))

  @torch.no_grad()
  def step(self):
    for group in self.param_groups:
      for p in group["params"]:
        if p.grad is None:
          continue
        g = p.grad
        if p.ndim > 1:
          g = g.add(p, alpha=group["weight_decay"])
          w_norm, g_norm = torch.linalg.norm(p), torch.linalg.norm(g)
          trust = torch.where((w_norm > 0) & (g_norm > 0),
                              group["trust_coefficient"] * w_norm / g_norm, torch.ones_like(w_norm))
          g = g * trust
        buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
        buf.mul_(group["momentum"]).add_(g, alpha=group["lr"])
        p.sub_(buf)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch_size", type=int, required=True, help="images; 2 views each")
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--hidden", default="2048")
  parser.add_argument("--out_dim", type=int, default=128)
  parser.add_argument("--temperature", type=float, default=0.1)
  parser.add_argument("--lr", type=float, default=0.3)
  parser.add_argument("--weight_decay", type=float, default=1e-6)
  parser.add_argument("--channels_last", type=int, default=0)
  args = parser.parse_args()

  torch.manual_seed(0)
  model = SimCLR([int(h) for h in args.hidden.split(",") if h], args.out_dim).train()
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
  model = model.to(memory_format=memory_format)
  opt = LARS(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, momentum=0.9,
             trust_coefficient=0.001)
  images = torch.rand(args.batch_size, 3, args.image_size, args.image_size)
  views = torch.cat([images, images.flip(-1)]).contiguous(memory_format=memory_format)

  def step():
    opt.zero_grad(set_to_none=True)
    loss = nt_xent(model(views), args.batch_size, args.temperature)
    loss.backward()
    opt.step()
    return loss.item()

  step()  # warm-up: oneDNN primitive creation, allocator
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                    "threads": torch.get_num_threads(), "step_s": min(times),
                    "steps": times}))


if __name__ == "__main__":
  main()
