"""The settings of each paper's linear evaluation (sslax/evaluate/linear_eval.py runs them),
each with the file or paper it comes from and what sslax does differently; and the
config.linear_eval block that selects one.

Departures shared by all: the lr follows sslax's warm-up + cosine schedule; the classifier
starts at Flax's default init (the sources: normal(0, 0.01) and zero bias; SimCLR: zeros).
lr = base_lr * batch_size / 256 in every recipe (a source that states its lr at batch 256
gives the same number).
"""

from __future__ import annotations

import ml_collections

from sslax.data.augment import crop_flip_view_config
from sslax.errors import require


def recipe(source: str, *, optimizer: str, base_lr: float, batch_size: int, epochs: int,
           weight_decay: float = 0.0, momentum: float = 0.9, nesterov: bool = False,
           warmup_epochs: int = 0, departures: tuple = ()) -> dict:
  return dict(source=source, optimizer=optimizer, base_lr=base_lr, batch_size=batch_size,
              epochs=epochs, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
              warmup_epochs=warmup_epochs, departures=tuple(departures))


RECIPES = {
    "moco_v2": recipe(
        "facebookresearch/moco main_lincls.py (--lr 30 --epochs 100 --schedule 60 80, batch 256, "
        "momentum 0.9, weight decay 0)", optimizer="sgd", base_lr=30.0, batch_size=256, epochs=100,
        departures=("cosine decay instead of x0.1 steps at epochs 60 and 80",)),
    "moco_v3": recipe(
        "facebookresearch/moco-v3 main_lincls.py defaults, CONFIG.md 'ResNet-50, linear "
        "classification' (lr 0.1 x batch/256, batch 1024, 90 epochs, momentum 0.9, weight decay 0, "
        "cosine)", optimizer="sgd", base_lr=0.1, batch_size=1024, epochs=90),
    "simclr": recipe(
        "google-research/simclr README, linear evaluation (--optimizer=momentum (Nesterov) "
        "--learning_rate=0.1 linear scaling --weight_decay=0 --train_epochs=90 "
        "--train_batch_size=4096 --warmup_epochs=0); Chen et al. 2020 appendix B.6",
        optimizer="sgd", base_lr=0.1, batch_size=4096, epochs=90, nesterov=True,
        departures=("classifier not zero-initialized (--zero_init_logits_layer)",)),
    "byol": recipe(
        "Grill et al. 2020 appendix C.1 (SGD, Nesterov momentum 0.9, 80 epochs, batch 1024, no "
        "weight decay; lr swept over {0.4, 0.3, 0.2, 0.1, 0.05})", optimizer="sgd", base_lr=0.2,
        batch_size=1024, epochs=80, nesterov=True,
        departures=("one lr (0.2 x batch/256) of the paper's sweep; byol/configs not re-read "
                    "this session",)),
    "dino": recipe(
        "facebookresearch/dino README 'Linear classification on ImageNet' (8 GPUs, "
        "eval_linear.py's defaults: --lr 0.001 x batch/256, 128 per GPU x 8 = 1024, 100 epochs, "
        "SGD momentum 0.9, weight decay 0, cosine to 0)", optimizer="sgd",
        base_lr=0.001, batch_size=1024, epochs=100,
        departures=("eval_linear.py's --lr help asks to tune the lr per checkpoint; this is its "
                    "default",
                    "a ViT's pooled features, not DINO's CLS tokens of the last blocks "
                    "(--n_last_blocks, ViT only)")),
    "swav": recipe(
        "facebookresearch/swav eval_linear.py defaults (lr 0.3, 32 per GPU x 8 = 256, 100 "
        "epochs, weight decay 1e-6, cosine to 0)", optimizer="sgd", base_lr=0.3, batch_size=256,
        epochs=100, weight_decay=1e-6),
    "barlow_twins": recipe(
        "facebookresearch/barlowtwins evaluate.py (--lr-classifier 0.3, --weight-decay 1e-6, "
        "batch 256, 100 epochs, SGD momentum 0.9, cosine)", optimizer="sgd", base_lr=0.3,
        batch_size=256, epochs=100, weight_decay=1e-6),
    "vicreg": recipe(
        "facebookresearch/vicreg README 'Linear evaluation' command (evaluate.py --lr-head 0.02; "
        "its other defaults: --weight-decay 1e-6, batch 256, 100 epochs, SGD momentum 0.9, "
        "cosine)", optimizer="sgd", base_lr=0.02, batch_size=256,
        epochs=100, weight_decay=1e-6),
    "simsiam": recipe(
        "Chen & He 2021 appendix A, linear classification (LARS, base lr 0.02 x batch/256, batch "
        "4096, 90 epochs, weight decay 0, cosine)", optimizer="lars", base_lr=0.02, batch_size=4096,
        epochs=90,
        departures=("optax's LARS (trust coefficient 0.001); simsiam main_lincls.py not re-read "
                    "this session",)),
    "mae": recipe(
        "facebookresearch/mae FINETUNE.md 'Linear Probing' and main_linprobe.py (LARS, blr 0.1, "
        "batch 16384, 90 epochs, 10 warm-up epochs, weight decay 0)", optimizer="lars",
        base_lr=0.1, batch_size=16384, epochs=90, warmup_epochs=10,
        departures=("no BatchNorm without affine before the classifier (MAE's head)",
                    "the CLS token as pretrained (as --cls_token)")),
}


def default_config() -> ml_collections.ConfigDict:
  """config.linear_eval: a config that reproduces a paper names its recipe ("": none)."""
  return ml_collections.ConfigDict(dict(
      recipe="", checkpoint_every_steps=5000,
      # Random resized crop (0.08, 1) and flip: torchvision's RandomResizedCrop(224) +
      # RandomHorizontalFlip in every source above.
      view=crop_flip_view_config((0.08, 1.0))))


def validate(config: ml_collections.ConfigDict) -> None:
  block = config.get("linear_eval")
  if block is None:
    return
  name = block.get("recipe", "")
  require(name == "" or name in RECIPES, "linear_eval.recipe",
          f"{name!r} is not one of {sorted(RECIPES)} ('' for none)")
