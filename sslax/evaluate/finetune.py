"""Full fine-tuning of a pretraining run: the pretrained encoder and a new linear
classifier, every parameter trained with labels, top-1 accuracy on the test split.

  python -m sslax.main --config=CONFIG --workdir=DIR --mode=finetune   # newest checkpoint in DIR

or, with config.finetune.enabled, after the frozen evaluation of --mode=train_and_evaluate.

Protocol (MAE, He et al. 2022, appendix A.3 and table 9; BEiT, Bao et al. 2022):
  * The encoder starts from the network the run is evaluated with
    (`method.evaluated_variables`: the online network, DINO's teacher): its `encoder`
    parameters and BatchNorm statistics. Every method names its backbone `encoder`.
  * A new linear classifier on the encoder's features: the `supervised` method's network
    (sslax/methods/supervised.py), which the generic trainer (sslax/train.py) trains
    exactly as it pretrains, so fine-tuning is sharded, checkpointed and resumable like
    pretraining, in WORKDIR/finetune (its own checkpoints and metrics.jsonl).
  * On config.data.train_split, one view config.finetune.view (crop and flip), softmax
    cross-entropy with label smoothing, AdamW with lr = base_lr * batch_size / 256
    (lr_scaling "linear"), linear warmup then cosine decay, decoupled weight decay (not on
    biases, norms, tokens), and layer-wise lr decay: layer i of L takes lr * layer_decay **
    (L + 1 - i) (`optim.scale_by_layer_decay`; one layer per ViT block or ResNet/ConvNet stage).
  * Accuracy: top-1 of the classifier on config.data.test_split, center view, BatchNorm
    on its running statistics, with the frozen evaluation's sharded machinery.
It writes WORKDIR/finetune.json: the protocol, every config.finetune setting, the
pretrained step and the accuracy. With config.finetune.init="random" the same protocol
starts from the encoder's random initialization instead (no checkpoint needed), in
WORKDIR/finetune_random_init(.json): the baseline that shows what pretraining adds.

  * Regularizers, on the device (sslax/methods/supervised.py), each off by default:
    Mixup / CutMix with label smoothing (sslax/data/mixing.py, timm's Mixup), RandAugment
    (sslax/data/randaugment.py, timm's rand-m9-mstd0.5-inc1), stochastic depth of a ViT
    (config.finetune.drop_path -> the ViT's drop_path_rate), and MAE's global pool
    (config.finetune.pool "gap": the final LayerNorm, restarted at (1, 0) as MAE's new
    fc_norm, on the mean of the patch tokens).

`mae_vit_b_recipe` is MAE's ViT-B recipe (configs/mae_imagenet.py uses it). Departures from
it: no random erasing (--reprob 0.25); the classifier has Flax's default init (MAE:
truncated normal, std 2e-5); RandAugment's geometric ops resample bilinearly, not bicubically;
Mixup / CutMix draw one lambda per global batch (timm: per GPU's batch).
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import ml_collections
import numpy as np

from sslax import assemble, optim, parallel, train
from sslax import config as config_lib
from sslax.data import datasets
from sslax.errors import ConfigError
from sslax.evaluate.features import extract_features
from sslax.methods import get_method
from sslax.step import TrainState

PROTOCOL = ("full fine-tuning: pretrained encoder + new linear classifier, all trained with labels "
            "(AdamW, warmup + cosine, layer-wise lr decay, label smoothing); top-1 on the test "
            "split, center view")


def mae_vit_b_recipe(steps_per_epoch: int) -> dict:
  """config.finetune settings of MAE's ViT-B/16 fine-tuning (facebookresearch/mae FINETUNE.md,
  "Fine-tuning", ViT-Base; main_finetune.py's defaults for what the command leaves out;
  He et al. 2022 table 9): effective batch 1024 (32 per GPU x 32 GPUs), blr 5e-4 (lr = blr x
  batch / 256), layer decay 0.65, 100 epochs, 5 warm-up epochs (main_finetune.py
  --warmup_epochs), AdamW betas (0.9, 0.999) (main_finetune.py: torch.optim.AdamW's default)
  with weight decay 0.05, drop path 0.1, Mixup 0.8, CutMix 1.0 (prob 1.0, switch prob 0.5),
  label smoothing 0.1 (--smoothing), RandAugment rand-m9-mstd0.5-inc1 (--aa), random resized
  crop (0.08, 1) and flip (util/datasets.py build_transform -> timm create_transform), global
  average pooling (--global_pool)."""
  from sslax.data.augment import crop_flip_view_config
  return dict(
      batch_size=1024, total_steps=100 * steps_per_epoch, warmup_steps=5 * steps_per_epoch,
      base_lr=5e-4, lr_scaling="linear", layer_decay=0.65, weight_decay=0.05, b1=0.9, b2=0.999,
      label_smoothing=0.1, mixup_alpha=0.8, cutmix_alpha=1.0, mix_prob=1.0, mix_switch_prob=0.5,
      randaugment_layers=2, randaugment_magnitude=9.0, randaugment_magnitude_std=0.5,
      drop_path=0.1, pool="gap", view=crop_flip_view_config((0.08, 1.0)))


def finetune_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config of the supervised run that fine-tunes: the pretraining config's data, model,
  seed, devices and logging, with config.finetune's steps, batch, view, optimizer and label
  smoothing; a copy."""
  from sslax.methods.supervised import defaults

  cfg = config.finetune
  ft = config.copy_and_resolve_references()
  with ft.unlocked():
    ft.method = defaults()
    ft.method.label_smoothing = cfg.label_smoothing
    for key in ("mixup_alpha", "cutmix_alpha", "mix_prob", "mix_switch_prob", "randaugment_layers",
                "randaugment_magnitude", "randaugment_magnitude_std"):
      if key in cfg:
        ft.method[key] = cfg[key]
    if cfg.get("drop_path", 0.0) > 0:
      ft.model.drop_path_rate = cfg.drop_path
    if cfg.get("pool", ""):
      ft.model.pool = cfg.pool
    ft.views = ml_collections.ConfigDict({"view1": cfg.view.copy_and_resolve_references()})
    if "train_subset" in ft.data:  # a subset restricts pretraining only
      ft.data.train_subset = ""
    ft.batch_size = cfg.batch_size
    ft.total_steps = cfg.total_steps
    ft.checkpoint_every_steps = cfg.checkpoint_every_steps
    ft.optimizer = optim.default_config()
    ft.optimizer.name = "adamw"
    for key in ("base_lr", "lr_scaling", "warmup_steps", "weight_decay", "b1", "b2", "layer_decay"):
      ft.optimizer[key] = cfg[key]
    ft.eval.enabled = False
    ft.finetune.enabled = False  # the fine-tuning run fine-tunes nothing itself
  return ft


def pretrained_encoder(config: ml_collections.ConfigDict, state: TrainState) -> dict:
  """{"params": {"encoder": ...}, "batch_stats": {"encoder": ...}} of the variables the run
  is evaluated with, on the host: what the fine-tuned network starts from."""
  method = get_method(config.method.name)
  variables = method.evaluated_variables(config, state.params, state.batch_stats, state.method_state)
  if "encoder" not in variables["params"]:
    raise ValueError(
        f"method {method.name!r}: its network has no `encoder` to fine-tune (top-level "
        f"parameters: {sorted(variables['params'])}); name the backbone `encoder`, as every "
        "method in sslax/methods does")
  encoder = variables["params"]["encoder"]
  if config.finetune.get("pool", "") == "gap" and config.model.get("pool") != "gap":
    # MAE's global pool drops the pretrained final norm for a new fc_norm: here the pool's
    # LayerNorm is `norm`, restarted at scale 1, bias 0.
    norm = encoder["norm"]
    encoder = {**encoder, "norm": {"scale": np.ones(norm["scale"].shape, norm["scale"].dtype),
                                   "bias": np.zeros(norm["bias"].shape, norm["bias"].dtype)}}
  init_from = {"params": {"encoder": encoder}}
  if "encoder" in (variables.get("batch_stats") or {}):
    init_from["batch_stats"] = {"encoder": variables["batch_stats"]["encoder"]}
  return parallel.to_host(init_from)


def classifier_accuracy(config: ml_collections.ConfigDict, model, state: TrainState,
                        mesh) -> float:
  """Top-1 accuracy of `model`'s logits on config.data.test_split (center view, BatchNorm
  on its running statistics), every device classifying its slice of each batch."""
  source = assemble.open_split(config, config.data.test_split)
  logits, labels = extract_features(
      model, {"params": state.params, "batch_stats": state.batch_stats}, source, mesh,
      image_size=config.data.image_size, mean=source.pixel_mean, std=source.pixel_std,
      batch_size=config.eval.batch_size, apply_method=None)
  return float(np.mean(np.argmax(logits, axis=1) == labels))


def check_same_pretraining(directory: str, pretrained_step: int) -> None:
  """A fine-tuning run resumes from its checkpoints: refuse to resume one that started from
  another pretraining checkpoint (the pretraining went on since)."""
  marker = os.path.join(directory, "pretrained.json")
  if os.path.exists(marker) and os.path.isdir(os.path.join(directory, "checkpoints")):
    with open(marker) as f:
      started_from = json.load(f)["pretrained_step"]
    if started_from != pretrained_step and os.listdir(os.path.join(directory, "checkpoints")):
      raise FileExistsError(
          f"{directory} fine-tunes the pretraining checkpoint of step {started_from}, not the "
          f"newest ({pretrained_step}): delete {directory} to fine-tune the newest")
  if jax.process_index() == 0:
    os.makedirs(directory, exist_ok=True)
    with open(marker, "w") as f:
      json.dump({"pretrained_step": pretrained_step}, f)


def finetune_run(config: ml_collections.ConfigDict, state: TrainState | None,
                 workdir: str) -> dict:
  """Fine-tunes the encoder of `state` (the pretraining run's) in WORKDIR/finetune; writes
  WORKDIR/finetune.json and returns what it holds. state None: from the random init, in
  WORKDIR/finetune_random_init(.json)."""
  if datasets.get_dataset(config.data.name).modality != "image":
    raise ConfigError(
        f"--mode=finetune trains image encoders; {config.data.name} holds sequences or text, "
        "whose encoders are evaluated frozen (linear probe, kNN, few-label): use "
        "--mode=evaluate")
  ft = finetune_config(config)
  if state is None and ft.model.get("init_from"):
    ft.model.init_from = ""  # the random-init baseline starts from no weights at all
  devices = assemble.make_mesh(config).devices.size
  if ft.batch_size % devices:
    raise ConfigError(
        f"config.finetune.batch_size: {ft.batch_size} is not divisible by the {devices} "
        f"devices; choose a multiple of {devices}")
  name = "finetune" if state is not None else "finetune_random_init"
  pretrained_step = int(parallel.to_host(state.step)) if state is not None else 0
  directory = os.path.join(workdir, name)
  check_same_pretraining(directory, pretrained_step)

  start = time.perf_counter()
  # init_from None: the supervised network's own initialization from config.seed.
  init_from = pretrained_encoder(config, state) if state is not None else None
  ft_state, model, mesh = train.train(ft, directory, init_from=init_from)
  results = {
      "protocol": PROTOCOL, "init": "pretrained" if state is not None else "random",
      "dataset": config.data.name, "train_split": config.data.train_split,
      "test_split": config.data.test_split, "pretrained_step": pretrained_step,
      "steps": int(parallel.to_host(ft_state.step)),
      "accuracy": classifier_accuracy(ft, model, ft_state, mesh),
      "settings": config.finetune.to_dict(),
      "seconds": round(time.perf_counter() - start, 1)}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, f"{name}.json"), "w") as f:
      json.dump(results, f, indent=2)
    print(f"[{name}] {config.data.name} {config.data.test_split} accuracy after {results['steps']} "
          f"fine-tuning steps: {100 * results['accuracy']:.2f}%", file=sys.stderr, flush=True)
  return results


def finetune_latest(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """--mode=finetune: fine-tunes the newest pretraining checkpoint in WORKDIR (or, with
  config.finetune.init="random", the random init)."""
  config_lib.validate(config)
  if config.finetune.init == "random":
    return finetune_run(config, None, workdir)
  state = assemble.restore_latest(config, workdir, assemble.make_mesh(config),
                                 what="pretraining checkpoint").state
  return finetune_run(config, state, workdir)
