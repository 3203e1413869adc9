"""Speed of the on-device SimCLR view pipeline (sslax.data.augment).

Prints ms per view batch, compile excluded, median (and min) wall time of
repeats and median CPU time, for
  * B=512 28x28x1 -> 28   (Fashion-MNIST)
  * B=64 224x224x3 -> 224 (ImageNet-sized)
for the full SimCLR config, then a cumulative per-op breakdown: the pipeline
with only the first k ops switched on (ops whose probability is 0 are
skipped at trace time, so each row adds that op's cost).

  python benchmarks/augment_speed.py [--repeats 20] [--no-breakdown] [--only 28|224]
"""

import argparse
import time

import jax
import numpy as np

from sslax.data import augment

CASES = {"28": (512, 28, 1), "224": (64, 224, 3)}

# Cumulative breakdown: each stage switches its op on at the SimCLR setting
# (solarize at BYOL's view-2 probability, since SimCLR has it off).
STAGES = [
    ("crop+resize", {}),
    ("+flip", dict(flip_p=0.5)),
    ("+color jitter", dict(jitter_p=0.8)),
    ("+grayscale", dict(gray_p=0.2)),
    ("+blur", dict(blur_p=0.5)),
    ("+solarize", dict(solarize_p=0.2)),
]
ALL_OFF = dict(flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0, solarize_p=0.0)


def time_view(cfg, batch, size, channels, repeats):
  """(median, min, median CPU) ms of one jitted augment_batch call, compile excluded.

  CPU is this process's CPU time summed over threads: on a shared machine it
  is a steadier signal of the work done than wall time.
  """
  rng = np.random.default_rng(0)
  images = jax.numpy.asarray(rng.integers(0, 256, (batch, size, size, channels), np.uint8))
  positions = jax.numpy.arange(batch)
  fn = jax.jit(lambda k, x, p: augment.augment_batch(k, x, p, cfg, size))
  key = jax.random.key(0)
  fn(key, images, positions).block_until_ready()  # compile
  wall, cpu = [], []
  for i in range(repeats):
    k = jax.random.fold_in(key, i)  # fresh draws each call, as in training
    start, start_cpu = time.perf_counter(), time.process_time()
    fn(k, images, positions).block_until_ready()
    wall.append(1e3 * (time.perf_counter() - start))
    cpu.append(1e3 * (time.process_time() - start_cpu))
  return float(np.median(wall)), float(np.min(wall)), float(np.median(cpu))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--no-breakdown", action="store_true")
  parser.add_argument("--only", choices=sorted(CASES), default=None)
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
  for name, (batch, size, channels) in CASES.items():
    if args.only and name != args.only:
      continue
    label = f"B={batch} {size}x{size}x{channels} -> {size}"
    med, low, cpu = time_view(augment.default_view_config(), batch, size, channels, args.repeats)
    print(f"{label}  full SimCLR view: {med:8.2f} ms/batch median wall"
          f" ({low:.2f} min, {cpu:.2f} CPU)")
    if args.no_breakdown:
      continue
    overrides = dict(ALL_OFF)
    for stage, switch_on in STAGES:
      overrides.update(switch_on)
      cfg = augment.default_view_config(**overrides)
      med, low, cpu = time_view(cfg, batch, size, channels, args.repeats)
      print(f"    {stage:16s} {med:8.2f} ms median wall ({low:.2f} min, {cpu:.2f} CPU)")


if __name__ == "__main__":
  main()
