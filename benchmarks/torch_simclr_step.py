"""The SimCLR ResNet-50 training step in PyTorch, for benchmarks/mfu.py's side-by-side.

The same work as sslax's step in that benchmark: torchvision's resnet50 (no fc) and
SimCLR's projector (Linear without bias -> BatchNorm -> ReLU -> Linear), two views of
every image through the network in one call (BatchNorm over both views), NT-Xent at
temperature tau against the other 2B - 2 views, backward, and LARS as optax.lars applies
it (weight decay and trust ratio on weights only, then learning rate, then momentum).
The views are given (the images and their horizontal flips), as on the sslax side.

Device: CUDA when torch sees a GPU, else the CPU (--device to choose). --precision bfloat16 runs
the forward pass under torch.autocast(bfloat16) with float32 parameters, as sslax's bfloat16
policy keeps float32 parameters; float32 on CUDA allows TF32 on tensor cores, as XLA does by
default for float32 dots and convolutions there. On CUDA, channels_last memory format and
cudnn.benchmark (PyTorch's usual settings for fixed-shape convnets on tensor cores; XLA
autotunes its own) unless --channels_last=0.

--compile wraps the model in torch.compile (default mode; the optimizer stays eager).

Prints one JSON line: {"torch": version, "threads": n, "step_s": fastest, "device": name,
"precision": ..., "channels_last": bool, "steps": [...]}.
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
  targets = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
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
  parser.add_argument("--channels_last", type=int, default=-1, help="1, 0, or -1: on CUDA only")
  parser.add_argument("--device", default="", help="cuda or cpu (default: cuda if available)")
  parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--compile", action="store_true", help="torch.compile the model")
  args = parser.parse_args()

  device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
  channels_last = device.type == "cuda" if args.channels_last < 0 else bool(args.channels_last)
  if device.type == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
  torch.manual_seed(0)
  model = SimCLR([int(h) for h in args.hidden.split(",") if h], args.out_dim).train()
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  model = model.to(device=device, memory_format=memory_format)
  opt = LARS(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, momentum=0.9,
             trust_coefficient=0.001)
  forward = torch.compile(model) if args.compile else model
  images = torch.rand(args.batch_size, 3, args.image_size, args.image_size, device=device)
  views = torch.cat([images, images.flip(-1)]).contiguous(memory_format=memory_format)
  bf16 = args.precision == "bfloat16"

  def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
      z = forward(views)
    loss = nt_xent(z.float(), args.batch_size, args.temperature)
    loss.backward()
    opt.step()
    return loss.item()  # waits for the device

  start = time.perf_counter()
  step()  # warm-up: compilation, oneDNN primitive creation / cuDNN autotuning, allocator
  first_step_s = time.perf_counter() - start
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                    "threads": torch.get_num_threads(), "step_s": min(times),
                    "first_step_s": first_step_s, "compile": args.compile,
                    "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "precision": args.precision, "channels_last": channels_last,
                    "steps": times}))


if __name__ == "__main__":
  main()
