"""The shape of an experiment config and its validation.

Experiment files in configs/ start from `base_config()` (or a preset of sslax/presets.py)
and change what they need. `validate` runs before any data is opened or anything is built
or compiled: it checks the run's own keys, then hands each part the config selects (the
dataset, the encoder, the views, the method, the evaluation protocols) to that part's own
validate hook. Every message names the offending key and what it accepts.
"""

from __future__ import annotations

import ml_collections

from sslax import budget, online_probe, optim, recipe
from sslax.data import augment, datasets
from sslax.data.augment import default_view_config
from sslax.errors import require
from sslax.evaluate import few_label, linear_eval_recipes, validate_eval
from sslax.evaluate.protocols import HEAD_PROTOCOLS
from sslax.evaluate.sgd_probe import default_config as sgd_probe_config
from sslax.methods import get_method
from sslax.methods.base import no_state
from sslax.models import validate_encoder

PRECISIONS = ("float32", "bfloat16")


def with_precision(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy whose config.model.dtype is config.precision: what `build_encoder` hands the
  backbone as its compute dtype (parameters stay float32 in every encoder)."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.model.dtype = config.get("precision", "float32")
  return config


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.batch_size = 256            # global, over all devices and hosts
  c.total_steps = 1000
  c.log_every_steps = 50
  c.checkpoint_every_steps = 500
  c.keep_checkpoints = 3
  c.async_checkpoints = True
  c.num_devices = -1            # -1: every device of every process
  # Precision and memory (README "Scale out"). precision: the backbone's compute dtype;
  # parameters, optimizer state, heads, losses and softmax stay float32 either way.
  c.precision = "float32"       # or "bfloat16"
  c.accumulation_steps = 1      # > 1: the global batch as this many micro-batches, one gradient

  c.data = ml_collections.ConfigDict(dict(
      name="fashion_mnist", train_split="train", test_split="test", data_dir="",
      image_size=28, download=False, in_memory=True,
      # "": pretrain on the whole train split; "1%", "10%", "5 per class": only that labelled
      # subset of it, the few-label evaluation's for eval.few_label_seed (sslax/evaluate/
      # few_label.py), e.g. the supervised baseline on the same labels. The evaluation
      # (probes, kNN, few-label) still reads the whole split.
      train_subset="",
      num_classes=0))           # 0: the dataset's (only the supervised baseline uses it)
  c.model = ml_collections.ConfigDict(dict(name="convnet"))
  c.method = ml_collections.ConfigDict(dict(name="simclr"))
  c.views = ml_collections.ConfigDict()   # view name -> augmentation config (sslax/data/augment.py)
  c.optimizer = optim.default_config()
  # Paper configs: the source they follow and their departures from it (sslax/recipe.py).
  c.recipe = recipe.default_config()
  # A wall-clock budget for pretraining (sslax/budget.py): with seconds > 0 the step count is
  # fixed from the speed measured on the first steps, at most total_steps; 0: off.
  c.budget = budget.default_config()
  # While pretraining (sslax/online_probe.py): an online linear probe on stop-gradient
  # features, and RankMe / alignment / uniformity / collapse diagnostics every few steps.
  c.online_probe, c.diagnostics = online_probe.default_config()

  # Frozen evaluation (sslax/evaluate/frozen.py, docs/evaluation.md): every result in
  # eval.json is a named protocol with its settings. Per encoder (pretrained, random init)
  # the `protocols` run; the raw-input baseline runs the linear probe and few-label only.
  c.eval = ml_collections.ConfigDict(dict(
      enabled=True,
      # any of "linear_probe" (L-BFGS, L2 chosen on a held-out split), "knn", "sgd_probe"
      # (SimCLR/BYOL's SGD recipe, settings in sgd_probe), "few_label", "diagnostics"
      protocols=("linear_probe", "knn", "few_label", "diagnostics"),
      train_split="",  # the split the probes and kNN fit on; "": data.train_split
      # Heads evaluated besides the backbone f, e.g. ("projector", "predictor"): g(f(x)) and
      # q(g(f(x))) of the pretrained network, by linear_probe and knn (those of `protocols`),
      # under eval.json's "heads". Method.heads lists what a method has.
      heads=(),
      batch_size=1000, knn_k=200, knn_temperature=0.07,
      probe_weight_decays=(0.0, 1e-5, 1e-4, 1e-3, 1e-2),
      sgd_probe=sgd_probe_config(),
      # Few-label: the linear probe on class-balanced subsets of the train split, by
      # fraction of each class and/or by count per class; draw d uses few_label_seed + d,
      # or the saved list in sslax/evaluate/subsets/ where one exists (few_label.py).
      few_label_fractions=(0.01, 0.1), few_label_per_class=(), few_label_draws=1,
      few_label_seed=0, few_label_saved_subsets=True,
      few_label_per_class_c=1.0,  # k per class: fixed L2 as scikit-learn's C (its default: 1)
      collapse_threshold=0.01,  # diagnostics: collapsed when std(z/|z|) < this / sqrt(D)
      random_init_baseline=True,
      raw_pixel_baseline=True,  # the raw inputs: pixels, mean frames, or TF-IDF of tokens
      raw_text_max_features=10_000,  # TF-IDF vocabulary of the text baseline
      raw_frames="mean",  # frame sequences' raw baseline: "mean" frame or "flatten" (fixed length)
      max_train_examples=-1,
      # Transfer: evaluate on another dataset than the pretraining one (--config.eval.data.
      # name=cifar10); its images are converted to the encoder's channels and resized to
      # data.image_size. name "": the pretraining data. data_dir "": config.data.data_dir.
      # Every key set here (a config file may add more) replaces config.data's.
      data=ml_collections.ConfigDict(dict(
          name="", train_split="train", test_split="test", data_dir="", download=False))))

  # Full fine-tuning (sslax/evaluate/finetune.py): the pretrained encoder + a new linear
  # classifier trained with labels; --mode=finetune, or after the frozen evaluation if
  # enabled. MAE's recipe (He et al. 2022, table 9) with its regularizers off, for small
  # runs; lr = base_lr * batch_size / 256 with lr_scaling "linear". MAE's ViT-B recipe
  # itself: sslax.evaluate.finetune.mae_vit_b_recipe (configs/mae_imagenet.py).
  c.finetune = ml_collections.ConfigDict(dict(
      enabled=False, total_steps=1000, batch_size=256, checkpoint_every_steps=500,
      # "pretrained": from the run's encoder; "random": the same protocol from a random
      # init (the baseline that shows what pretraining adds), in WORKDIR/finetune_random_init
      init="pretrained",
      base_lr=1e-3, lr_scaling="linear", warmup_steps=100, weight_decay=0.05, b1=0.9, b2=0.999,
      layer_decay=0.75,       # lr of layer i: lr * layer_decay ** (L + 1 - i); 1: none
      label_smoothing=0.1,
      # On the device (sslax/methods/supervised.py): Mixup / CutMix (Beta alphas; 0: off,
      # timm's Mixup), RandAugment (layers 0: off; timm's rand-m9-mstd0.5-inc1 is 2, 9, 0.5),
      # stochastic depth of a ViT (drop_path, the last block's rate; 0: off).
      mixup_alpha=0.0, cutmix_alpha=0.0, mix_prob=1.0, mix_switch_prob=0.5,
      randaugment_layers=0, randaugment_magnitude=9.0, randaugment_magnitude_std=0.5,
      drop_path=0.0,
      # "": the encoder pools as it was pretrained; "gap": a ViT pretrained with a CLS token
      # pools as MAE fine-tunes (global_pool: LayerNorm of the mean patch token).
      pool="",
      # A mild view: crop and flip only, no colour.
      view=default_view_config(crop_scale=(0.5, 1.0), color_strength=0.0, jitter_p=0.0,
                               gray_p=0.0, blur_p=0.0, solarize_p=0.0)))

  # The papers' linear evaluation (sslax/evaluate/linear_eval.py): a classifier trained on
  # the frozen encoder with augmented images of the whole training split; the paper configs
  # name their source's recipe (sslax/evaluate/linear_eval_recipes.py).
  c.linear_eval = linear_eval_recipes.default_config()
  return c


def _choice(config: ml_collections.ConfigDict, key: str, choices) -> None:
  value = config
  for part in key.split("."):
    value = value[part]
  require(value in choices, key, f"{value!r} is not one of {sorted(choices)}")


def _positive_ints(config: ml_collections.ConfigDict, prefix: str, keys) -> None:
  for key in keys:
    value = config[key]
    require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
            f"{prefix}{key}", f"must be a positive integer, got {value!r}")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a value that cannot work; call before building anything."""
  _positive_ints(config, "", ("batch_size", "total_steps", "log_every_steps",
                              "checkpoint_every_steps", "keep_checkpoints", "accumulation_steps"))
  _choice(config, "precision", PRECISIONS)
  require(config.batch_size % config.accumulation_steps == 0, "accumulation_steps",
          f"{config.accumulation_steps} does not divide batch_size = {config.batch_size}; "
          "choose a divisor of the batch size")
  _validate_optimizer(config)
  dataset = datasets.get_dataset(config.data.name)
  dataset.validate(config)
  _validate_train_subset(config)
  validate_encoder(config.model)
  method = get_method(config.method.name)
  require(config.accumulation_steps == 1 or method.init_state is no_state
          or not method.state_reads_outputs,
          "accumulation_steps", f"method {config.method.name!r} updates its state (target "
          "network, queue, center) from each step's outputs, which accumulation would split "
          "into micro-batches; set accumulation_steps=1 (supported for stateless methods)")
  _validate_views(config, dataset.modality, method)
  # Each method's own keys must exist in its defaults: catches typos in config files.
  known = set(method.defaults().keys())
  unknown = set(config.method.keys()) - known
  require(not unknown, "method", f"unknown key(s) {sorted(unknown)} for method "
          f"{method.name!r}; valid keys: {sorted(known)}")
  method.validate(config)
  validate_eval(config)
  _validate_eval_heads(config, method)
  _validate_finetune(config)
  linear_eval_recipes.validate(config)
  budget.validate(config)


def _validate_optimizer(config: ml_collections.ConfigDict) -> None:
  _choice(config, "optimizer.name", optim.OPTIMIZERS)
  _choice(config, "optimizer.lr_scaling", optim.LR_SCALINGS)
  variant = config.optimizer.get("lars_variant", "optax")
  require(variant in optim.LARS_VARIANTS, "optimizer.lars_variant",
          f"{variant!r} is not one of {sorted(optim.LARS_VARIANTS)}")
  require(not config.optimizer.get("clip_lr", False)
          or (config.optimizer.name == "lars" and variant == "solo_learn"),
          "optimizer.clip_lr", "clips solo-learn's LARS only: set optimizer.name=lars and "
          "optimizer.lars_variant=solo_learn, or clip_lr=False")
  require(config.optimizer.base_lr > 0, "optimizer.base_lr", "must be > 0")
  require(config.optimizer.weight_decay >= 0, "optimizer.weight_decay", "must be >= 0")
  require(config.optimizer.warmup_steps >= 0, "optimizer.warmup_steps", "must be >= 0")
  require(0 < config.optimizer.get("layer_decay", 1.0) <= 1, "optimizer.layer_decay",
          "must be in (0, 1]; 1: no layer-wise decay")


def _validate_views(config: ml_collections.ConfigDict, modality: str, method) -> None:
  """As many views as the method takes, each a valid augmentation (sslax/data/augment.py);
  none for sequences and text, which the method masks or corrupts itself."""
  if modality != "image":
    require(len(config.views) == 0, "views",
            f"{config.data.name} holds sequences or text, which take no image views (the "
            f"method masks or corrupts its inputs itself); remove {sorted(config.views)}")
  elif method.num_views is None:  # multi-crop: 2 global views (first in sorted order), any locals
    require(len(config.views) >= 2, "views",
            f"method {method.name!r} takes 2 global views and any number of local ones, the "
            f"config defines {len(config.views)} ({sorted(config.views)})")
  else:
    require(len(config.views) == method.num_views, "views",
            f"method {method.name!r} takes {method.num_views} views, the config defines "
            f"{len(config.views)} ({sorted(config.views)})")
  for name, view in config.views.items():
    augment.validate_view(view, f"views.{name}")


def _validate_train_subset(config: ml_collections.ConfigDict) -> None:
  subset = config.data.get("train_subset", "")
  try:
    valid = subset == "" or bool(few_label.SubsetSpec.parse(subset))
  except (ValueError, TypeError, AttributeError):
    valid = False
  require(valid, "data.train_subset",
          f"{subset!r} is not a subset: use '' (the whole train split), a percentage of each "
          "class in (0, 100] such as '1%' or '10%', or a count per class such as '5 per class'")


def _validate_eval_heads(config: ml_collections.ConfigDict, method) -> None:
  """config.eval.heads: heads the method's network has, and a protocol that runs on them."""
  heads = tuple(config.eval.get("heads", ()))
  missing = [h for h in heads if h not in method.heads]
  require(not missing, "eval.heads",
          f"method {method.name!r} has no head {missing}; its heads: {list(method.heads)} "
          "(set eval.heads to some of them, or to () for the backbone only)")
  require(len(set(heads)) == len(heads), "eval.heads", f"{list(heads)} names a head twice")
  on_heads = [p for p in config.eval.get("protocols", ()) if p in HEAD_PROTOCOLS]
  require(not heads or on_heads, "eval.heads",
          f"heads are evaluated by {list(HEAD_PROTOCOLS)} only, and eval.protocols has neither: "
          "add one to eval.protocols, or set eval.heads=()")


def _validate_finetune(config: ml_collections.ConfigDict) -> None:
  ft = config.finetune
  _positive_ints(ft, "finetune.", ("total_steps", "batch_size", "checkpoint_every_steps"))
  _choice(config, "finetune.lr_scaling", optim.LR_SCALINGS)
  _choice(config, "finetune.init", ("pretrained", "random"))
  require(ft.base_lr > 0, "finetune.base_lr", "must be > 0")
  require(ft.weight_decay >= 0, "finetune.weight_decay", "must be >= 0")
  require(0 < ft.layer_decay <= 1, "finetune.layer_decay", "must be in (0, 1]; 1: no layer-wise decay")
  require(0 <= ft.label_smoothing < 1, "finetune.label_smoothing", "must be in [0, 1)")
  for key in ("mixup_alpha", "cutmix_alpha", "randaugment_magnitude_std"):
    require(ft.get(key, 0.0) >= 0, f"finetune.{key}", "must be >= 0 (0: off)")
  for key in ("mix_prob", "mix_switch_prob"):
    require(0 <= ft.get(key, 1.0) <= 1, f"finetune.{key}", "must be a probability in [0, 1]")
  layers = ft.get("randaugment_layers", 0)
  require(isinstance(layers, int) and not isinstance(layers, bool) and layers >= 0,
          "finetune.randaugment_layers", "must be an integer >= 0 (timm's n is 2; 0: off)")
  require(0 <= ft.get("randaugment_magnitude", 9.0) <= 10, "finetune.randaugment_magnitude",
          "must be in [0, 10] (timm's m)")
  vit = "drop_path_rate" in config.model  # the ViT's field (sslax/models/vit.py)
  require(0 <= ft.get("drop_path", 0.0) < 1, "finetune.drop_path", "must be in [0, 1); 0: off")
  require(ft.get("drop_path", 0.0) == 0 or vit, "finetune.drop_path",
          f"stochastic depth is the ViT's; config.model.name {config.model.get('name')!r} has none: set 0")
  require(ft.get("pool", "") in ("", "gap"), "finetune.pool", "use '' (as pretrained) or 'gap' (MAE's)")
  require(ft.get("pool", "") != "gap" or (vit and config.model.get("pool") in ("cls", "gap")),
          "finetune.pool", "'gap' keeps the CLS token of a ViT pretrained with pool 'cls'; "
          "set finetune.pool to ''")
