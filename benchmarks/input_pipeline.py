"""Host input pipeline throughput on full-resolution JPEGs: sslax's loader beside tf.data and
torchvision's ImageFolder + RandomResizedCrop + DataLoader, on the same files and cores.

    python benchmarks/input_pipeline.py [--images 2000] [--cores N] [--seconds 15]

Writes a synthetic ImageNet-like dataset (JPEG, sizes around 500 x 375, sslax/data/synthetic.py)
in the TFDS ArrayRecord format the pipeline reads, and the same JPEG files as an ImageFolder,
into --workdir (kept: a second run reuses them). Then, for two 224 px views (SimCLR, BYOL,
...) and DINO's multi-crop (2 x 224 at scale (0.4, 1) + 6 x 96 at (0.05, 0.4)), prints the
views per second each loader delivers as uint8 crops (flips, colour and blur are on the device
in sslax; torchvision's side stops at the same point: the crops as uint8 tensors), and that
figure per host core. Loaders:
  sslax, tf.data          host_batches as training uses it (sslax/data/tf_views.py): boxes from
                          crops.sample_box, decode_and_crop_jpeg, tf.image.resize(antialias=True),
                          a private thread pool of --cores threads
  sslax, grain threads    the same boxes cropped by PIL (FullResolutionSource.get_views) through
                          Grain, --cores threads, each a whole batch
  sslax, grain processes  the same through Grain worker processes (--cores), 1 thread each
  torchvision DataLoader  ImageFolder + RandomResizedCrop + PILToTensor, DataLoader(num_workers=--cores)
torchvision is skipped when torch is not installed (pip install sslax[bench]).
"""

from __future__ import annotations

import argparse
import functools
import os
import time

from sslax.data import pipeline, synthetic

NAME = "synthetic_imagenet"
SETTINGS = {
  "2 x 224": [pipeline.HostView(224)] * 2,
  "DINO 2 x 224 + 6 x 96": [pipeline.HostView(224, (0.4, 1.0))] * 2
  + [pipeline.HostView(96, (0.05, 0.4))] * 6,
}


def prepare(workdir: str, images: int) -> tuple[str, str]:
  """-> (TFDS data_dir, ImageFolder root) holding the same JPEG files."""
  import tensorflow_datasets as tfds

  data_dir, folder = os.path.join(workdir, "tfds"), os.path.join(workdir, "folder")
  start = time.perf_counter()
  synthetic.write_synthetic_imagenet(data_dir, NAME, splits={"train": images}, num_classes=10)
  if not os.path.isdir(folder):
    records = tfds.builder(NAME, data_dir=data_dir).as_data_source(
      "train", decoders={"image": tfds.decode.SkipDecoding()})
    for i in range(len(records)):
      record = records[i]
      os.makedirs(os.path.join(folder, f"c{int(record['label'])}"), exist_ok=True)
      with open(os.path.join(folder, f"c{int(record['label'])}", f"{i:06d}.jpg"), "wb") as f:
        f.write(record["image"])
  print(f"dataset: {images} JPEGs in {data_dir} and {folder} "
        f"(ready in {time.perf_counter() - start:.0f} s)")
  return data_dir, folder


def rate(batches, views_per_batch: int, seconds: float, warmup: int = 2) -> float:
  """Views per second over `seconds` of `batches`, after `warmup` batches."""
  for _ in range(warmup):
    next(batches)
  start, n = time.perf_counter(), 0
  while time.perf_counter() - start < seconds:
    next(batches)
    n += 1
  return n * views_per_batch / (time.perf_counter() - start)


def sslax_rate(data_dir, views, batch, cores, seconds, loader: str) -> float:
  """loader: "tf.data" (host_batches' own: sslax/data/tf_views.py), or the same crops in PIL
  (FullResolutionSource.get_views) through Grain: "grain threads" or "grain processes"."""
  source = pipeline.open_source(NAME, "train", data_dir=data_dir, image_size=224)
  source.crop_views_on_host(views, seed=0)
  if loader != "tf.data":
    source.raw_records = None
  processes = loader == "grain processes"
  it = pipeline.host_batches(source, global_batch=batch, seed=0, process_index=0, process_count=1,
                             num_threads=1 if processes else cores,
                             num_workers=cores if processes else 0, prefetch=2 * cores)
  try:
    return rate(it, batch * len(views), seconds)
  finally:
    it.close()


def torchvision_rate(folder, views, batch, cores, seconds) -> float:
  import torch
  from torchvision import datasets, transforms

  per_view = [transforms.Compose([transforms.RandomResizedCrop(v.size, v.scale, v.ratio),
                                  transforms.PILToTensor()]) for v in views]
  dataset = datasets.ImageFolder(folder, transform=lambda image: [t(image) for t in per_view])
  loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=cores,
                                       persistent_workers=True, prefetch_factor=2, drop_last=True,
                                       worker_init_fn=lambda _: torch.set_num_threads(1))

  def forever():
    while True:
      yield from loader

  return rate(forever(), batch * len(views), seconds)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--images", type=int, default=2000)
  parser.add_argument("--cores", type=int, default=os.cpu_count())
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--seconds", type=float, default=15.0)
  parser.add_argument("--workdir", default="/tmp/sslax_input_pipeline")
  parser.add_argument("--skip", default="", help="comma-separated loader names (as printed) to skip")
  args = parser.parse_args()
  data_dir, folder = prepare(args.workdir, args.images)
  loaders = {f"sslax, {name}": functools.partial(sslax_rate, data_dir, loader=name)
             for name in ("tf.data", "grain threads", "grain processes")}
  try:
    import torchvision  # noqa: F401

    loaders["torchvision DataLoader"] = functools.partial(torchvision_rate, folder)
  except ImportError:
    print("torchvision not installed: its row is skipped (pip install sslax[bench])")
  for name in filter(None, args.skip.split(",")):
    loaders.pop(name)
  print(f"{args.cores} cores, batch {args.batch}, {args.seconds:.0f} s per measurement")
  print("| loader | views | views/s | views/s per core |\n|---|---|---:|---:|")
  for setting, views in SETTINGS.items():
    for name, measure in loaders.items():
      per_second = measure(views, args.batch, args.cores, args.seconds)
      print(f"| {name} | {setting} | {per_second:.0f} | {per_second / args.cores:.0f} |", flush=True)


if __name__ == "__main__":
  main()
