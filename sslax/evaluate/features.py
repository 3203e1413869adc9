"""Features of a whole split, embedded by an encoder with the training's sharded machinery.

Every device embeds its slice of each batch and the features are gathered to every host, so
they do not depend on the device count. Images go through the eval transform (center view
resized to the encoder's size, channels converted for transfer, normalized); sequences and
text go in as the source gives them, with their padding mask.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sslax import parallel
from sslax.data import augment, pipeline

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def convert_channels(x: jax.Array, channels: int) -> jax.Array:
  """x float [B, H, W, C] -> [B, H, W, channels]: grayscale repeated to RGB, RGB to luma."""
  have = x.shape[-1]
  if have == channels:
    return x
  if have == 1:
    return jnp.repeat(x, channels, axis=-1)
  if channels == 1 and have == 3:
    return (x @ jnp.asarray(LUMA, x.dtype))[..., None]
  raise ValueError(f"cannot convert {have}-channel images to the encoder's {channels} channels")


def extract_features(model, variables: dict, source: pipeline.Source, mesh, *,
                     image_size: int, mean, std, batch_size: int,
                     limit: int | None = None, apply_method: str | None = "encode",
                     channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Embeds a whole split: -> features float32 [N, D], labels int32 [N] (the first `limit`).

  Images: center view resized to
  image_size, converted to `channels` if given (transfer), normalized with mean/std, then
  `model.apply(variables, x, train=False, method=apply_method)`. Sequences and text
  (source.input_key "frames" / "tokens"): `model.apply(variables, x, mask, train=False,
  method=apply_method)` on the source's own values, mask bool [B, T]. apply_method=None
  runs `model.__call__` (a fine-tuned classifier's logits).
  """
  input_key = source.input_key
  if input_key == "image":
    def embed(variables, batch):
      x = augment.center_view(batch["image"], image_size)
      x = augment.normalize(x if channels is None else convert_channels(x, channels), mean, std)
      return model.apply(variables, x, train=False, method=apply_method)
    keys = ("image",)
  else:
    def embed(variables, batch):
      return model.apply(variables, batch[input_key], batch["mask"], train=False,
                         method=apply_method)
    keys = (input_key, "mask")

  apply = parallel.sharded_apply(embed, mesh)
  replicated = parallel.replicate(jax.device_get(variables), mesh)
  features, labels = [], []
  global_batch = batch_size - batch_size % mesh.devices.size or mesh.devices.size
  for batch in pipeline.eval_batches(source, global_batch):
    out = apply(replicated, parallel.shard_host_batch({k: batch[k] for k in keys}, mesh))
    out = parallel.gather_to_host(out).astype(np.float32)
    valid = parallel.gather_to_host(batch["valid"])
    label = parallel.gather_to_host(batch["label"])
    features.append(out[valid])
    labels.append(label[valid])
    if limit is not None and sum(len(f) for f in features) >= limit:
      break
  features, labels = np.concatenate(features), np.concatenate(labels)
  if limit is not None:
    features, labels = features[:limit], labels[:limit]
  return features.astype(np.float32), labels.astype(np.int32)
