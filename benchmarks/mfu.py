"""Throughput and model FLOPs utilization (MFU) of sslax's pretraining step, and the same
SimCLR step in PyTorch, in one command on one machine.

  python benchmarks/mfu.py                                  # batch 8 per device, float32
  python benchmarks/mfu.py --batch_size=128 --precision=bfloat16          # an H100
  python benchmarks/mfu.py --torch_python=/path/to/python   # a Python with torch + torchvision

For each step (SimCLR and BYOL with ResNet-50, MAE with ViT-B/16, from the configs/*_imagenet.py
recipes at 224x224, the batch set by --batch_size per device) it prints:

* images/s per device: source images (each gives the method's views), from the fastest of
  --steps timed steps after one warm-up (the least disturbed by other work on a shared
  machine; the same rule for PyTorch and the peak matmul); compilation is timed apart and
  excluded.
* XLA GFLOP: `compiled.cost_analysis()["flops"]` of the compiled step, per device (every op:
  augmentation-free views, network, loss, backward, optimizer, MAE's one-hot gathers).
* analytic GFLOP: the model's multiply-adds counted by hand from the architecture
  (`resnet_macs`, `vit_macs` below; ResNet-50 at 224 px: 4.09 G, as torchvision states),
  x 2 FLOPs, x 3 for forward + backward of trained networks (x 1 for BYOL's target network),
  per device. XLA / analytic near 1 cross-checks both counts.
* temp MiB: the compiled step's scratch memory (`compiled.memory_analysis()`), where
  --remat and --accumulation_steps show what they save.
* MFU = analytic FLOPs per second / peak FLOPs per device (PaLM's definition: model FLOPs,
  not counting recomputation). Peak: --peak_tflops, else the vendor's dense peak for known
  accelerators (PEAK_TFLOPS), else, on a CPU, a large float32 matmul's FLOP/s measured in the
  same command: MFU on a CPU is relative to that, not to a datasheet.

The views are the images and their horizontal flips (MAE: the images), made in the step on
both sides, so sslax and PyTorch do the same work; sslax's random augmentation (which runs
inside its real step) is left out here (benchmarks/augment_speed.py measures it).

PyTorch side-by-side (SimCLR ResNet-50 only): benchmarks/torch_simclr_step.py, torchvision's
resnet50, the same projector, batch, two views, NT-Xent and LARS, run by --torch_python
(default: this Python) with torch's default threads, on the GPU when torch sees one, at the same
--precision (bfloat16: autocast; float32: TF32 allowed on a GPU, as XLA does), before the sslax
SimCLR step (so that both get the GPU's memory). torch is optional
(`pip install -e ".[bench]"`); without it the table says so and the rest still runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

# On a GPU, JAX would take 75% of its memory up front, leaving too little for the PyTorch
# side-by-side, which runs in a subprocess on the same GPU: allocate as needed instead.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))  # hlo_profile

from sslax import assemble, parallel  # noqa: E402
from sslax import config as config_lib  # noqa: E402
from sslax.data import augment, pipeline  # noqa: E402

CASES = {
    "simclr_resnet50": "configs/simclr_imagenet.py",
    "byol_resnet50": "configs/byol_imagenet.py",
    "mae_vitb16": "configs/mae_imagenet.py",
    "dino_vits16": "configs/dino_imagenet.py",   # with a ViT-S/16: see case_config
}

PROFILED_STEPS = 3

# The PyTorch twin of each method's step, run eager and with torch.compile.
TORCH_STEPS = {"simclr": "torch_simclr_step.py", "mae": "torch_mae_step.py"}

# Dense peak TFLOP/s per device from the vendors' datasheets, (bfloat16, float32); float32
# on NVIDIA is TF32 on tensor cores (XLA's default precision for float32 dots and convs
# there). Matched against jax's device_kind, lower case, first match wins. NVIDIA's H100 and
# H200 datasheets (nvidia.com/en-us/data-center/h100/, .../h200/) give the figures with 2:4
# sparsity; dense is half: H100 SXM5 and H200 SXM BF16 1,979 -> 989.4, TF32 989 -> 494.7;
# H100 PCIe BF16 1,513 -> 756.5, TF32 756 -> 378; H100 NVL BF16 1,671 -> 835.5, TF32 835 -> 417.5.
# HBM bandwidth in TB/s from the same datasheets, for --roofline's memory-bound estimate.
BANDWIDTH_TBS = [("h100 pcie", 2.0), ("h100 nvl", 3.9), ("h100", 3.35), ("h200", 4.8),
                 ("a100", 2.0)]

PEAK_TFLOPS = [
    ("h100 pcie", (756.5, 378.0)),
    ("h100 nvl", (835.5, 417.5)),
    ("h100", (989.4, 494.7)),   # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    ("h200", (989.4, 494.7)),   # H200 SXM
    ("a100", (312.0, 156.0)),
    ("tpu v6 lite", (918.0, None)),
    ("tpu v5 lite", (197.0, None)),
    ("tpu v5", (459.0, None)),  # v5p
    ("tpu v4", (275.0, None)),
]


# ---------------------------------------------------------------------------- analytic counts

def resnet_macs(stage_sizes, bottleneck: bool, width: int, image_size: int, stem: str) -> int:
  """Multiply-adds of one forward pass of sslax's (torchvision's) ResNet on one image:
  convolutions only (BatchNorm, ReLU and pooling are a fraction of a percent)."""
  h, macs = image_size, 0
  if stem == "imagenet":
    h = (h + 2 * 3 - 7) // 2 + 1          # 7x7/2 conv, padding 3
    macs += h * h * 7 * 7 * 3 * width
    h = (h + 2 * 1 - 3) // 2 + 1          # 3x3/2 max-pool, padding 1
  else:
    macs += h * h * 3 * 3 * 3 * width
  cin = width
  for i, blocks in enumerate(stage_sizes):
    f = width * 2 ** i
    cout = 4 * f if bottleneck else f
    for j in range(blocks):
      s = 2 if i > 0 and j == 0 else 1
      ho = (h - 1) // s + 1
      if bottleneck:
        macs += h * h * cin * f + ho * ho * 9 * f * f + ho * ho * f * cout
      else:
        macs += ho * ho * 9 * cin * f + ho * ho * 9 * f * f
      if cin != cout or s != 1:
        macs += ho * ho * cin * cout      # 1x1 projection shortcut
      cin, h = cout, ho
  return macs


def vit_block_macs(tokens: int, dim: int, mlp_dim: int) -> int:
  """One pre-norm transformer block: qkv and output projections 4 N D^2, attention scores
  and weighted sum 2 N^2 D, MLP 2 N D M."""
  return 4 * tokens * dim * dim + 2 * tokens * tokens * dim + 2 * tokens * dim * mlp_dim


def mlp_macs(dims) -> int:
  return sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def analytic_step_flops(config, batch: int) -> float:
  """Model FLOPs of one training step on `batch` images (see the module docstring)."""
  model, method = config.model, config.method
  size = config.data.image_size
  if method.name in ("simclr", "byol"):
    encoder = resnet_macs(model.stage_sizes if "stage_sizes" in model else (3, 4, 6, 3),
                          True, int(model.num_filters * model.width_multiplier), size, model.stem)
    feat = 4 * int(model.num_filters * model.width_multiplier) * 8
    projector = mlp_macs([feat, *method.projector_hidden, method.projector_dim])
    views = 2 * batch
    if method.name == "simclr":
      return 2.0 * views * 3 * (encoder + projector)
    predictor = mlp_macs([method.projector_dim, *method.predictor_hidden, method.projector_dim])
    return 2.0 * views * (3 * (encoder + projector + predictor) + (encoder + projector))
  if method.name == "mae":
    from sslax.models import build_encoder
    vit = build_encoder(model)
    p, d = vit.patch_size, vit.hidden_dim
    n = (size // p) ** 2
    visible = int(n * (1 - method.mask_ratio)) + 1                  # + CLS
    dd = method.decoder_dim
    fwd = (n * d * p * p * 3                                         # patch embedding (all patches)
           + vit.depth * vit_block_macs(visible, d, vit.mlp_dim or 4 * d)  # encoder, visible tokens
           + visible * d * dd                                        # decoder embedding
           + method.decoder_depth * vit_block_macs(n + 1, dd, 4 * dd)
           + (n + 1) * dd * p * p * 3)                               # pixel prediction
    return 2.0 * batch * 3 * fwd
  if method.name == "dino":
    from sslax.models import build_encoder
    vit = build_encoder(model)
    p, d = vit.patch_size, vit.hidden_dim
    h = method.head_hidden
    head = mlp_macs([d] + [h] * (method.head_layers - 1) + [method.head_bottleneck]) \
        + method.head_bottleneck * method.out_dim

    def view_macs(view_size):
      n = (view_size // p) ** 2
      return (n * d * p * p * 3 + vit.depth * vit_block_macs(n + 1, d, vit.mlp_dim or 4 * d)
              + head)
    sizes = [view.get("size", None) or size for view in config.views.values()]
    student = sum(view_macs(s) for s in sizes)
    teacher = sum(view_macs(s) for s in sizes[:2])          # global crops only
    return 2.0 * batch * (3 * student + teacher)
  raise ValueError(f"no analytic count for method {method.name!r}")


# ---------------------------------------------------------------------------- the sslax step

def load_config(path: str):
  spec = importlib.util.spec_from_file_location("experiment_config", os.path.join(REPO, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def case_config(name: str):
  """The case's config: its configs/*_imagenet.py recipe, DINO's with the ViT-S/16 of the
  paper's main table (DINO's multi-crop views, 2 x 224 + 8 x 96, unchanged)."""
  config = load_config(CASES[name])
  if name == "dino_vits16":
    from sslax.models import encoder_config
    config.model = encoder_config("vit_small", patch_size=16)
  return config


def plain_views_fn(config, source):
  """The images and their horizontal flips, alternating, one per config view, resized to a
  view's own size where it has one (DINO's 96 px local crops), normalized."""
  def views_fn(images, positions):
    del positions
    x = images.astype(jnp.float32) / 255.0
    views = []
    for i, view in enumerate(config.views.values()):
      v = x if i % 2 == 0 else x[:, :, ::-1]
      size = view.get("size", None)
      if size and size != v.shape[1]:
        v = jax.image.resize(v, (v.shape[0], size, size, v.shape[3]), "bilinear")
      views.append(augment.normalize(v, source.pixel_mean, source.pixel_std))
    return views
  return views_fn


def cost_flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per program
    analysis = analysis[0]
  return float(analysis.get("flops", float("nan")))


def run_sslax(name: str, args) -> dict:
  config = case_config(name)
  mesh = parallel.make_mesh()
  devices = mesh.devices.size
  batch = args.batch_size * devices
  config.batch_size = batch
  config.data.image_size = args.image_size
  config.precision = args.precision
  config.accumulation_steps = args.accumulation_steps
  if args.remat:
    config.model.remat = True
  if args.attention and "attention_impl" in config.model:  # the ViT cases only
    config.model.attention_impl = args.attention
  config.online_probe.enabled = config.diagnostics.enabled = False  # the method's step alone
  config_lib.validate(config)
  normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
  source = pipeline.synthetic_images(8, (args.image_size, args.image_size, 3),  # shapes only
                                     normalization=normalization)
  run = assemble.build(config, mesh, source=source, views_fn=plain_views_fn(config, source))
  state, step_fn = run.state, run.step_fn
  rng = np.random.default_rng(0)
  local = batch // jax.process_count()
  batches = [parallel.shard_host_batch(
      {"image": rng.integers(0, 256, (local, args.image_size, args.image_size, 3), dtype=np.uint8),
       "label": np.zeros(local, np.int32), "position": np.arange(i * local, (i + 1) * local)}, mesh)
      for i in range(2)]

  dtype_flops = {}
  if args.roofline:
    import hlo_profile
    dtype_flops = hlo_profile.matmul_flops_by_dtype(step_fn.trace(state, batches[0]).jaxpr)
  start = time.perf_counter()
  compiled = step_fn.lower(state, batches[0]).compile()
  compile_s = time.perf_counter() - start
  times = [float("nan")]
  if not args.compile_only:
    state, metrics = compiled(state, batches[0])  # warm-up
    jax.block_until_ready(metrics)
    times = []
  for i in range(0 if args.compile_only else args.steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batches[(i + 1) % 2])
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_s = min(times)
  if args.profile and not args.compile_only:
    trace_dir = os.path.join(args.profile, name)
    jax.profiler.start_trace(trace_dir)
    for i in range(PROFILED_STEPS):
      state, metrics = compiled(state, batches[i % 2])
    jax.block_until_ready(metrics)
    jax.profiler.stop_trace()
  memory = compiled.memory_analysis()
  return dict(name=name, method=config.method.name, views=len(config.views), batch=args.batch_size,
              compile_s=compile_s, step_s=step_s, images_per_s=args.batch_size / step_s,
              temp_mib=getattr(memory, "temp_size_in_bytes", float("nan")) / 2 ** 20,
              xla_flops=cost_flops(compiled), analytic_flops=analytic_step_flops(config, batch) / devices,
              config=config, hlo=compiled.as_text() if (args.roofline or args.profile) else "",
              dtype_flops=dtype_flops)


# ---------------------------------------------------------------------------- peak and PyTorch

def measured_matmul_tflops(n: int = 4096, repeats: int = 5) -> float:
  """float32 [n, n] @ [n, n] on the default device: 2 n^3 FLOPs over the fastest time."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(a, b))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, b))
    times.append(time.perf_counter() - start)
  return 2 * n ** 3 / min(times) / 1e12


def peak_tflops(args) -> tuple[float, str]:
  if args.peak_tflops:
    return args.peak_tflops, "--peak_tflops"
  kind = jax.devices()[0].device_kind.lower()
  for key, (bf16, fp32) in PEAK_TFLOPS:
    if key in kind:
      value = bf16 if args.precision == "bfloat16" else fp32
      if value is None:
        sys.exit(f"no {args.precision} peak known for {kind!r}: pass --peak_tflops")
      return value, f"datasheet dense {args.precision} peak of {key}"
  if jax.devices()[0].platform == "cpu":
    return measured_matmul_tflops(), "measured: float32 4096x4096 matmul on this CPU, same command"
  sys.exit(f"no peak known for device kind {kind!r}: pass --peak_tflops")


def run_torch(args, config, compile_: bool) -> dict:
  """The method's PyTorch twin (TORCH_STEPS) in a subprocess (its Python may be another
  environment), eager or with torch.compile."""
  python = args.torch_python or sys.executable
  probe = subprocess.run([python, "-c", "import torch, torchvision"], capture_output=True, text=True)
  if probe.returncode != 0:
    return {"missing": f"PyTorch not found by {python} ({probe.stderr.strip().splitlines()[-1]}); "
                       "install it with pip install -e \".[bench]\" or pass --torch_python"}
  method = config.method
  cmd = [python, os.path.join(REPO, "benchmarks", TORCH_STEPS[method.name]),
         f"--batch_size={args.batch_size}", f"--image_size={args.image_size}",
         f"--steps={args.steps}", f"--precision={args.precision}"]
  if method.name == "simclr":
    cmd += [f"--hidden={','.join(map(str, method.projector_hidden))}",
            f"--out_dim={method.projector_dim}", f"--temperature={method.temperature}",
            f"--weight_decay={config.optimizer.weight_decay}"]
  if compile_:
    cmd.append("--compile")
  result = subprocess.run(cmd, capture_output=True, text=True)
  if result.returncode != 0:
    return {"missing": f"the PyTorch step ({'compiled' if compile_ else 'eager'}) failed: "
                       f"{result.stderr.strip()[-500:]}"}
  out = json.loads(result.stdout.strip().splitlines()[-1])
  out["images_per_s"] = args.batch_size / out["step_s"]
  return out


def torch_cells(result: dict | None, images_per_s: float, notes: list[str]) -> str:
  if result is None:
    return "- | -"
  if "missing" in result:
    notes.append(result["missing"])
    return "not run | -"
  notes.append(f"PyTorch {result['torch']} on {result['device']} ({result['threads']} CPU threads), "
               f"{result['precision']}, {'torch.compile' if result['compile'] else 'eager'}, "
               f"step {result['step_s']:.3f} s, first step (compilation) {result['first_step_s']:.1f} s")
  return f"{result['images_per_s']:.2f} | {images_per_s / result['images_per_s']:.2f}x"


def device_bandwidth(args) -> tuple[float, str]:
  """Bytes/s for --roofline: --bandwidth_tbs, else the device's datasheet, else --model_device's."""
  if args.bandwidth_tbs:
    return args.bandwidth_tbs * 1e12, "--bandwidth_tbs"
  kind = args.model_device or jax.devices()[0].device_kind.lower()
  for key, tbs in BANDWIDTH_TBS:
    if key in kind:
      return tbs * 1e12, f"datasheet HBM bandwidth of {key}"
  sys.exit(f"no memory bandwidth known for {kind!r}: pass --bandwidth_tbs or --model_device=h100")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {list(CASES)}")
  parser.add_argument("--batch_size", type=int, default=8, help="images per device (each gives the method's views)")
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
  parser.add_argument("--precision", default="float32", choices=config_lib.PRECISIONS)
  parser.add_argument("--remat", action="store_true", help="config.model.remat=True")
  parser.add_argument("--attention", default="", choices=("", "xla", "cudnn"),
                      help="config.model.attention_impl of the ViT cases (MAE's decoder follows)")
  parser.add_argument("--accumulation_steps", type=int, default=1,
                      help="micro-batches per step (stateless methods only: SimCLR, MAE)")
  parser.add_argument("--peak_tflops", type=float, default=0.0, help="peak TFLOP/s per device")
  parser.add_argument("--torch_python", default="", help="Python with torch + torchvision (default: this one)")
  parser.add_argument("--no_torch", action="store_true", help="skip the PyTorch side-by-side")
  parser.add_argument("--compile_only", action="store_true",
                      help="only XLA's FLOPs and temp memory of the compiled step (no timing, no PyTorch)")
  parser.add_argument("--roofline", action="store_true",
                      help="per kind of op: FLOPs, bytes moved and the lower bound on its time "
                           "(benchmarks/hlo_profile.py)")
  parser.add_argument("--model_device", default="",
                      help="on a CPU, the GPU whose peak and bandwidth --roofline assumes (e.g. h100)")
  parser.add_argument("--bandwidth_tbs", type=float, default=0.0, help="memory bandwidth for --roofline")
  parser.add_argument("--profile", default="",
                      help="directory: trace 3 steps of each case with jax.profiler and print where "
                           "the device time goes (open it in TensorBoard/Perfetto too)")
  args = parser.parse_args()

  device = jax.devices()[0]
  peak, peak_source = (float("nan"), "not needed") if args.compile_only else peak_tflops(args)
  print(f"jax {jax.__version__}, {len(jax.devices())} x {device.device_kind} ({device.platform}), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f}; precision {args.precision}, "
        f"{args.image_size}x{args.image_size} images, remat {args.remat}, "
        f"attention {args.attention or 'config'}, "
        f"accumulation_steps {args.accumulation_steps}")
  if not args.compile_only:
    print(f"peak per device: {peak:.3f} TFLOP/s ({peak_source})", flush=True)
  print(flush=True)
  rows = []
  for name in args.cases.split(","):
    if not os.path.exists(os.path.join(REPO, CASES[name])):
      print(f"{name}: {CASES[name]} not found, skipped", flush=True)
      continue
    torch_results = {}
    config = case_config(name)
    if config.method.name in TORCH_STEPS and not (args.no_torch or args.compile_only):
      # PyTorch first: its subprocess gives its GPU memory back when it exits, while JAX's
      # allocator keeps what the sslax step took, which could leave PyTorch too little.
      for compile_ in (False, True):
        t = torch_results[compile_] = run_torch(args, config, compile_)
        print(f"{name}: PyTorch {'compiled' if compile_ else 'eager'} step "
              f"{t.get('step_s', float('nan')):.3f} s", file=sys.stderr, flush=True)
    r = run_sslax(name, args)
    r["torch"] = torch_results
    rows.append(r)
    print(f"{name}: step {r['step_s']:.3f} s, compile {r['compile_s']:.1f} s", file=sys.stderr,
          flush=True)

  if args.compile_only:
    print("| step (per device: batch x views) | XLA GFLOP | analytic GFLOP | temp MiB | compile s |")
    print("|---|---|---|---|---|")
    for r in rows:
      print(f"| {r['name']} ({r['batch']} x {r['views']}) | {r['xla_flops'] / 1e9:.1f} "
            f"| {r['analytic_flops'] / 1e9:.1f} | {r['temp_mib']:.0f} | {r['compile_s']:.1f} |")
  else:
    print("| step (per device: batch x views) | images/s/device | step s | XLA GFLOP | analytic GFLOP "
          "| XLA / analytic | MFU | temp MiB | PyTorch eager images/s | sslax / eager "
          "| torch.compile images/s | sslax / compiled |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for r in rows:
      achieved = r["analytic_flops"] / r["step_s"] / 1e12
      eager = torch_cells(r["torch"].get(False), r["images_per_s"], notes)
      compiled = torch_cells(r["torch"].get(True), r["images_per_s"], notes)
      print(f"| {r['name']} ({r['batch']} x {r['views']}) | {r['images_per_s']:.2f} | {r['step_s']:.3f} "
            f"| {r['xla_flops'] / 1e9:.1f} | {r['analytic_flops'] / 1e9:.1f} "
            f"| {r['xla_flops'] / r['analytic_flops']:.3f} | {achieved / peak:.1%} | {r['temp_mib']:.0f} "
            f"| {eager} | {compiled} |")
    for note in notes:
      print(f"- {note}")
    print("- compile time (excluded above): " +
          ", ".join(f"{r['name']} {r['compile_s']:.1f} s" for r in rows))

  if args.roofline or args.profile:
    import hlo_profile
    for r in rows:
      table = hlo_profile.op_table(r["hlo"])
      if args.roofline:
        model = args.model_device or jax.devices()[0].device_kind.lower()
        peak_model = next((p[0] if args.precision == "bfloat16" else p[1]
                           for key, p in PEAK_TFLOPS if key in model), None)
        peak_roof = (args.peak_tflops or peak_model or peak) * 1e12
        bandwidth, source = device_bandwidth(args)
        print(f"\n{r['name']}: roofline with {peak_roof / 1e12:.1f} TFLOP/s and {source}")
        hlo_profile.print_roofline(r["name"], hlo_profile.roofline(r["hlo"], peak_roof, bandwidth),
                                   peak_roof, bandwidth, r["analytic_flops"])
        total = sum(r["dtype_flops"].values())
        print(f"{r['name']}: matmul and convolution FLOPs by input dtypes (the step's jaxpr): " +
              ", ".join(f"{k} {v / 1e9:.1f} G ({v / total:.1%})"
                        for k, v in sorted(r["dtype_flops"].items(), key=lambda kv: -kv[1])))
      if args.profile:
        hlo_profile.trace_summary(os.path.join(args.profile, r["name"]), table, PROFILED_STEPS)


if __name__ == "__main__":
  main()
