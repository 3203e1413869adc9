"""Where a compiled step's time goes: its optimized HLO read op by op, and a profiler trace
of it summed per op. Used by benchmarks/mfu.py (--roofline, --profile).

Two views of the same program:

* `roofline(hlo_text, peak_flops, bandwidth)`: every top-level op of the entry computation
  (a fusion, a dot, a convolution, a copy, a library call, ...) with the FLOPs of the dots
  and convolutions inside it and the bytes it reads and writes (operands + result, each
  once: what a kernel moves to and from memory when nothing stays in cache). Its time can
  be no less than max(FLOPs / peak, bytes / bandwidth): the op is compute bound when the
  first is larger, memory bound otherwise. Summed per kind of op this says, before any
  measurement, how much of a step's time is matmul and how much is memory traffic that
  the GPU's peak cannot help with. It reads the HLO of whatever backend compiled it; a
  CPU's fusion decisions are not a GPU's, so on a CPU it is an estimate of the GPU's.
  Library calls (cuBLAS/cuDNN custom calls on a GPU) get their FLOPs from their operand
  shapes where they are matmuls.
* `trace_summary(trace_dir, kinds)`: the device ops of a `jax.profiler` trace, summed by
  HLO op name and by the same kinds, as a share of the traced time.

Neither needs TensorFlow or TensorBoard: the trace is read with jax.profiler.ProfileData.
"""

from __future__ import annotations

import collections
import glob
import math
import os
import re

DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
               "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
               "f8e4m3fn": 1, "f8e5m2": 1}
SHAPE = re.compile(r"\b(" + "|".join(DTYPE_BYTES) + r")\[([0-9,]*)\]")
INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*?) ([a-z][\w\-]*)\((.*)$")
COMPUTATION = re.compile(r"^(ENTRY )?%([\w.\-]+) .*\{$")
OPERAND = re.compile(r"%([\w.\-]+)")
CALLS = re.compile(r"calls=%([\w.\-]+)")
TARGET = re.compile(r'custom_call_target="([^"]+)"')

# Kinds of top-level op, in the order they are reported.
KINDS = ("matmul/conv", "attention (fused)", "reduction", "elementwise", "layout/copy",
         "gather/scatter/sort", "collective", "other")


def shapes_of(text: str) -> list[tuple[str, list[int]]]:
  return [(dtype, [int(d) for d in dims.split(",") if d]) for dtype, dims in SHAPE.findall(text)]


def nbytes(text: str) -> int:
  return sum(DTYPE_BYTES[dtype] * math.prod(dims) for dtype, dims in shapes_of(text))


def parse(hlo_text: str) -> dict[str, dict]:
  """{computation: {"entry": bool, "ops": [{name, type, opcode, operands, rest}], "types": {}}}"""
  computations, current = {}, None
  for line in hlo_text.splitlines():
    m = COMPUTATION.match(line)
    if m:
      current = computations.setdefault(m.group(2), {"entry": bool(m.group(1)), "ops": [],
                                                     "types": {}})
      header = line[line.find("(") + 1:line.rfind("->")]
      for param in re.finditer(r"([\w.\-]+): ((?:\([^)]*\))|[\w\[\],{}]+)", header):
        current["types"][param.group(1)] = param.group(2)
      continue
    m = INSTRUCTION.match(line) if current is not None else None
    if m:
      name, type_, opcode, rest = m.groups()
      args = rest.split(")", 1)[0]
      current["types"][name] = type_
      current["ops"].append(dict(name=name, type=type_, opcode=opcode,
                                 operands=OPERAND.findall(args), rest=rest))
  return computations


def dot_flops(op, types) -> float:
  """2 x output elements x contracted size."""
  out = shapes_of(op["type"])
  lhs = shapes_of(types.get(op["operands"][0], "")) if op["operands"] else []
  m = re.search(r"lhs_contracting_dims=\{([0-9,]*)\}", op["rest"])
  if not out or not lhs or not m:
    return 0.0
  contracted = math.prod(lhs[0][1][int(d)] for d in m.group(1).split(",") if d)
  return 2.0 * math.prod(out[0][1]) * contracted


def conv_flops(op, types) -> float:
  """2 x output elements x (kernel elements / output features) / feature groups."""
  out = shapes_of(op["type"])
  kernel = shapes_of(types.get(op["operands"][1], "")) if len(op["operands"]) > 1 else []
  labels = re.search(r"dim_labels=\w+_(\w+)->", op["rest"])
  if not out or not kernel or not labels:
    return 0.0
  kdims = kernel[0][1]
  out_features = kdims[labels.group(1).index("o")]
  groups = re.search(r"feature_group_count=(\d+)", op["rest"])
  per_output = math.prod(kdims) / out_features / (int(groups.group(1)) if groups else 1)
  return 2.0 * math.prod(out[0][1]) * per_output


def gemm_flops(op, types) -> float:
  """A library matmul (cuBLAS custom call): 2 x output x contracted, from its dot dims."""
  m = re.search(r'"lhs_contracting_dimensions":\["?([0-9",]*)\]', op["rest"])
  out = shapes_of(op["type"])
  lhs = shapes_of(types.get(op["operands"][0], "")) if op["operands"] else []
  if not (m and out and lhs):
    return 0.0
  contracted = math.prod(lhs[0][1][int(d)] for d in m.group(1).replace('"', "").split(",") if d)
  return 2.0 * math.prod(out[0][1]) * contracted  # the first shape: the product, not scratch


def classify(op, computations) -> tuple[str, float]:
  """(kind, FLOPs of its dots and convolutions) of one top-level op."""
  opcode = op["opcode"]
  if opcode == "dot":
    return "matmul/conv", dot_flops(op, computations["_types"])
  if opcode == "convolution":
    return "matmul/conv", conv_flops(op, computations["_types"])
  if opcode == "custom-call":
    target = (TARGET.search(op["rest"]) or [None, ""])[1]
    if "fmha" in target or "flash" in target:
      return "attention (fused)", 0.0
    if "gemm" in target or "matmul" in target:
      return "matmul/conv", gemm_flops(op, computations["_types"])
    if "conv" in target:
      return "matmul/conv", 0.0
    return "other", 0.0
  if opcode in ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
                "all-reduce-start", "all-gather-start"):
    return "collective", 0.0
  if opcode in ("copy", "transpose", "bitcast", "reshape", "concatenate", "slice", "pad",
                "dynamic-slice", "dynamic-update-slice", "copy-start", "broadcast"):
    return "layout/copy", 0.0
  if opcode in ("gather", "scatter", "sort"):
    return "gather/scatter/sort", 0.0
  if opcode in ("reduce", "reduce-window"):
    return "reduction", 0.0
  if opcode == "fusion":
    called = CALLS.search(op["rest"])
    inner = computations.get(called.group(1)) if called else None
    if inner is None:
      return "other", 0.0
    flops, opcodes = 0.0, collections.Counter()
    for sub in inner["ops"]:
      opcodes[sub["opcode"]] += 1
      if sub["opcode"] == "dot":
        flops += dot_flops(sub, inner["types"])
      elif sub["opcode"] == "convolution":
        flops += conv_flops(sub, inner["types"])
      elif sub["opcode"] == "fusion":  # nested (CPU's library fusions)
        kind, f = classify(sub, {**computations, "_types": inner["types"]})
        flops += f
        opcodes["dot"] += kind == "matmul/conv"
    if flops or opcodes["dot"] or opcodes["convolution"]:
      return "matmul/conv", flops
    if opcodes["gather"] or opcodes["scatter"] or opcodes["sort"]:
      return "gather/scatter/sort", 0.0
    if opcodes["reduce"] or opcodes["reduce-window"]:
      return "reduction", 0.0
    if set(opcodes) <= {"parameter", "copy", "transpose", "bitcast", "reshape", "concatenate",
                        "slice", "pad", "dynamic-slice", "dynamic-update-slice", "broadcast",
                        "tuple", "get-tuple-element"}:
      return "layout/copy", 0.0
    return "elementwise", 0.0
  if opcode in ("parameter", "constant", "tuple", "get-tuple-element", "after-all", "while",
                "call", "conditional"):
    return "", 0.0  # no kernel of its own (a loop's body is listed separately)
  return "elementwise", 0.0


def op_table(hlo_text: str) -> dict[str, dict]:
  """{op name: {kind, flops, bytes}} for the entry computation's and loop bodies' ops."""
  computations = parse(hlo_text)
  called_by_loops = set()
  for comp in computations.values():
    for op in comp["ops"]:
      if op["opcode"] in ("while", "call", "conditional"):
        called_by_loops.update(re.findall(r"(?:body|calls|branch_computations)=\{?%([\w.\-]+)",
                                          op["rest"]))
  table = {}
  for cname, comp in computations.items():
    if not (comp["entry"] or cname in called_by_loops):
      continue
    for op in comp["ops"]:
      kind, flops = classify(op, {**computations, "_types": comp["types"]})
      if not kind:
        continue
      moved = nbytes(op["type"]) + sum(nbytes(comp["types"].get(o, "")) for o in set(op["operands"]))
      table[op["name"]] = dict(kind=kind, flops=flops, bytes=moved)
  return table


def roofline(hlo_text: str, peak_flops: float, bandwidth: float) -> list[dict]:
  """Per kind: ops, GFLOP, GB moved and the lower bound on its time at the given peak FLOP/s
  and memory bandwidth (bytes/s), each op at max(flops / peak, bytes / bandwidth)."""
  rows = {kind: dict(kind=kind, ops=0, flops=0.0, bytes=0.0, bound_s=0.0, memory_bound_ops=0)
          for kind in KINDS}
  for op in op_table(hlo_text).values():
    row = rows[op["kind"]]
    compute_s, memory_s = op["flops"] / peak_flops, op["bytes"] / bandwidth
    row["ops"] += 1
    row["flops"] += op["flops"]
    row["bytes"] += op["bytes"]
    row["bound_s"] += max(compute_s, memory_s)
    row["memory_bound_ops"] += memory_s > compute_s
  return [r for r in rows.values() if r["ops"]]


def print_roofline(name: str, rows: list[dict], peak_flops: float, bandwidth: float,
                   model_flops: float) -> None:
  total = sum(r["bound_s"] for r in rows)
  print(f"\n{name}: lower bound per op at {peak_flops / 1e12:.1f} TFLOP/s and "
        f"{bandwidth / 1e12:.2f} TB/s: {total * 1e3:.2f} ms per step "
        f"(MFU ceiling {model_flops / total / peak_flops:.1%})")
  print("| kind | ops | GFLOP | GB moved | bound ms | share | memory-bound ops |")
  print("|---|---|---|---|---|---|---|")
  for r in sorted(rows, key=lambda r: -r["bound_s"]):
    print(f"| {r['kind']} | {r['ops']} | {r['flops'] / 1e9:.1f} | {r['bytes'] / 1e9:.2f} "
          f"| {r['bound_s'] * 1e3:.2f} | {r['bound_s'] / total:.1%} | {r['memory_bound_ops']} |")


def trace_summary(trace_dir: str, table: dict[str, dict], steps: int, top: int = 15) -> None:
  """Prints the device time per step of a jax.profiler trace of `steps` steps, per kind and
  for its top ops. (On a CPU, ops running on several threads at once each count.)"""
  from jax.profiler import ProfileData
  paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True),
                 key=os.path.getmtime)
  if not paths:
    print(f"no trace under {trace_dir}")
    return
  data = ProfileData.from_file(paths[-1])
  per_op = collections.Counter()
  device_planes = [p for p in data.planes if p.name.startswith("/device:")]
  for plane in device_planes or [p for p in data.planes if p.name.startswith("/host:CPU")]:
    for line in plane.lines:
      if line.name in ("XLA Modules", "Steps", "XLA TraceMe", "Source") or "python" in line.name:
        continue
      for event in line.events:
        stats = dict(event.stats)
        name = stats.get("hlo_op") or event.name
        if name in table or "hlo_op" in stats:
          per_op[name] += event.duration_ns / steps
  total = sum(per_op.values())
  if not total:
    print(f"no device ops found in {paths[-1]}")
    return
  per_kind = collections.Counter()
  for name, ns in per_op.items():
    per_kind[table.get(name, {}).get("kind", "unmatched")] += ns
  print(f"\nprofile {paths[-1]}: {total / 1e6:.2f} ms of device ops per step")
  print("| kind | ms per step | share |")
  print("|---|---|---|")
  for kind, ns in per_kind.most_common():
    print(f"| {kind} | {ns / 1e6:.2f} | {ns / total:.1%} |")
  print(f"\ntop {top} ops")
  print("| op | kind | ms per step | share | GFLOP | GB moved | achieved TFLOP/s | achieved GB/s |")
  print("|---|---|---|---|---|---|---|---|")
  for name, ns in per_op.most_common(top):
    info = table.get(name, dict(kind="unmatched", flops=0.0, bytes=0.0))
    print(f"| {name} | {info['kind']} | {ns / 1e6:.3f} | {ns / total:.1%} | {info['flops'] / 1e9:.2f} "
          f"| {info['bytes'] / 1e9:.3f} | {info['flops'] / ns / 1e3:.1f} | {info['bytes'] / ns:.1f} |")


def matmul_flops_by_dtype(jaxpr) -> dict[str, float]:
  """FLOPs of every dot_general and convolution in a (closed) jaxpr, nested calls included
  (a shard_map body, remat, custom_vjp), keyed by their input dtypes, e.g. "bfloat16 x
  bfloat16": which share of a step's matmuls a precision policy actually reaches. Counted
  before XLA sees the program, so a backend that upcasts bfloat16 (a CPU) does not blur it."""
  totals = collections.Counter()

  def visit(jaxpr, multiplier=1):
    for eqn in jaxpr.eqns:
      name = eqn.primitive.name
      if name in ("dot_general", "conv_general_dilated"):
        lhs, rhs = (v.aval for v in eqn.invars[:2])
        out = eqn.outvars[0].aval
        if name == "dot_general":
          (contract, _), _ = eqn.params["dimension_numbers"]
          per_output = math.prod(lhs.shape[d] for d in contract)
        else:
          out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
          per_output = math.prod(rhs.shape) / rhs.shape[out_feature_dim] / eqn.params["feature_group_count"]
        totals[f"{lhs.dtype} x {rhs.dtype}"] += 2.0 * math.prod(out.shape) * per_output * multiplier
      for param in eqn.params.values():
        for sub in param if isinstance(param, (tuple, list)) else [param]:
          if hasattr(sub, "eqns"):
            visit(sub, multiplier)
          elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
            visit(sub.jaxpr, multiplier)
  visit(jaxpr.jaxpr if hasattr(jaxpr, "jaxpr") else jaxpr)
  return dict(totals)
