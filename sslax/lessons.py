"""The teaching tables of `python -m sslax.reproduce`: what contrastive and non-contrastive
learning teach, each shown on Fashion-MNIST with the CPU configs (docs/lessons.md).

  batch_size     SimCLR against the global batch (32..1024) at an equal number of images
                 seen, with negatives gathered from all 8 devices or taken from each
                 device's own shard (method.negatives).
  feature_bank   MoCo v2 at batch 64 with a queue of 0, 1k, 4k and 16k keys, and key-encoder
                 momentum 0, 0.9, 0.99 and 0.999, beside SimCLR at batch 64.
  f_vs_g         probe and kNN on the backbone f, the projector g and BYOL's predictor.
  collapse       SimSiam and BYOL as they are, without the predictor, without the
                 stop-gradient, and BYOL with target momentum 0, with curves of the
                 normalized std of the projections and RankMe over training.
  few_labels     each family's best CPU encoder, frozen, with 1% and 10% of the labels,
                 against the same network trained from scratch on those labels.

Every cell pretrains on IMAGES images (2 views each) whatever its batch, so rows differ only
in what the table varies; the rows' configs are the CPU configs as written otherwise.
"""

from __future__ import annotations

from sslax.results import COLUMNS, Column, Figure, Row, Table

IMAGES = 65_536  # images seen by every cell: 256 steps at batch 256, 1.1 epochs of Fashion-MNIST
FROZEN = ("eval.protocols=('linear_probe', 'knn', 'diagnostics')",)


def _budget(batch: int, log_points: int = 32) -> tuple[str, ...]:
  """Steps for IMAGES at BATCH, a 10% warm-up, a log line (and diagnostics) LOG_POINTS times,
  and one checkpoint, at the end."""
  steps = IMAGES // batch
  return (f"batch_size={batch}", f"total_steps={steps}",
          f"optimizer.warmup_steps={max(1, steps // 10)}",
          f"log_every_steps={max(1, steps // log_points)}", f"checkpoint_every_steps={steps}")


def _columns(*names: str) -> tuple[Column, ...]:
  by_name = {c.name: c for c in COLUMNS}
  return tuple(by_name[n] for n in names)


PROBES = _columns("linear probe", "kNN", "pretraining time")

# --- 1. Batch size and negatives ---------------------------------------------------------

BATCHES = (32, 64, 128, 256, 512, 1024)
# AdamW's learning rate scales with sqrt(batch) (SimCLR appendix B.1's rule for small
# batches; linear scaling would give batch 32 an eighth of batch 256's rate): 1e-3 at 256.
SIMCLR_BATCH = ("optimizer.lr_scaling=sqrt",)
# configs/simclr_fashion_mnist.py's optimizer, for another method's rows.
SIMCLR_OPTIMIZER = ("optimizer.name=adamw", "optimizer.base_lr=0.001", "optimizer.weight_decay=0.0001",
                    *SIMCLR_BATCH)


def _batch_rows() -> tuple[Row, ...]:
  rows = []
  for negatives in ("global", "per_device"):
    for batch in BATCHES:
      # "global" is the method's default, so those rows keep the config as written.
      switch = () if negatives == "global" else ("method.negatives=per_device",)
      rows.append(Row(f"{negatives}_b{batch}", "configs/simclr_fashion_mnist.py",
                      SIMCLR_BATCH + _budget(batch) + switch,
                      params=(("global batch", batch), ("negatives", negatives))))
  return tuple(rows)


BATCH_SIZE = Table(
    "SimCLR on Fashion-MNIST: the global batch, and negatives from all devices or one",
    _batch_rows(), settings=FROZEN, columns=PROBES, devices=8,
    figure=Figure("lines", columns=("linear probe", "kNN"), x="global batch", series="negatives"),
    note=f"Every row sees {IMAGES} images (steps = {IMAGES} / batch) on 8 CPU devices. "
         "`global`: each anchor's negatives are both views of every other image of the global "
         "batch (gathered from all devices, 2B - 2 of them); `per_device`: only those of its own "
         "device's shard (2B/8 - 2), as a data-parallel loop without the gather computes it. "
         "BatchNorm statistics are global in both.")

# --- 2. The feature bank ------------------------------------------------------------------

BANK_BATCH = 64
QUEUES = (0, 1024, 4096, 16384)
MOMENTA = (0.0, 0.9, 0.99, 0.999)
MOMENTUM_QUEUE = 4096  # MoCo's momentum ablation (He et al. 2020, section 4.1) used K = 4096


def _bank_rows() -> tuple[Row, ...]:
  rows = []
  for queue in QUEUES:
    rows.append(Row(f"moco_q{queue}", "configs/moco_v2_fashion_mnist.py",
                    _budget(BANK_BATCH) + (f"method.queue_size={queue}",),
                    params=(("sweep", "queue"), ("queue", queue), ("momentum", 0.99))))
  for momentum in MOMENTA:
    if momentum == 0.99:
      continue  # the queue sweep's moco_q4096 row
    rows.append(Row(f"moco_m{momentum:g}", "configs/moco_v2_fashion_mnist.py",
                    _budget(BANK_BATCH) + (f"method.queue_size={MOMENTUM_QUEUE}",
                                           f"method.base_momentum={momentum}"),
                    params=(("sweep", "momentum"), ("queue", MOMENTUM_QUEUE), ("momentum", momentum))))
  # MoCo's official SGD (lr 0.03 x batch/256) against SimCLR's AdamW is a second difference
  # besides the negatives: these rows give MoCo SimCLR's optimizer, so only the loss differs.
  for queue in (0, MOMENTUM_QUEUE, QUEUES[-1]):
    rows.append(Row(f"moco_q{queue}_adamw", "configs/moco_v2_fashion_mnist.py",
                    _budget(BANK_BATCH) + (f"method.queue_size={queue}",) + SIMCLR_OPTIMIZER,
                    params=(("sweep", "queue, AdamW"), ("queue", queue), ("momentum", 0.99))))
  rows.append(Row(f"simclr_b{BANK_BATCH}", "configs/simclr_fashion_mnist.py",
                  SIMCLR_BATCH + _budget(BANK_BATCH), params=(("sweep", "simclr"),)))
  return tuple(rows)


FEATURE_BANK = Table(
    f"MoCo v2's queue and momentum encoder at batch {BANK_BATCH}, beside SimCLR",
    _bank_rows(), settings=FROZEN, columns=PROBES,
    figure=Figure("bars", columns=("linear probe", "kNN")),
    note=f"Batch {BANK_BATCH}, {IMAGES} images ({IMAGES // BANK_BATCH} steps), one device. "
         "moco_qK: a queue of K keys with key-encoder momentum 0.99 (the CPU config's); queue 0: "
         "the negatives are the other keys of the current batch only. moco_mM: momentum M with "
         f"a queue of {MOMENTUM_QUEUE}. moco_qK_adamw: SimCLR's optimizer (AdamW, lr 1e-3 at "
         f"batch 256, sqrt scaling) instead of MoCo's SGD. simclr_b{BANK_BATCH}: SimCLR at the same batch "
         f"({2 * BANK_BATCH - 2} negatives per anchor, from the batch itself).")

# --- 3. f versus g ----------------------------------------------------------------------------

HEAD_COLUMNS = (
    Column("f linear probe", ("linear_probe", "accuracy"), "linear probe on the backbone's features f(x)"),
    Column("f kNN", ("knn", "accuracy"), "kNN on the backbone's features f(x)"),
    Column("g linear probe", ("heads", "projector", "linear_probe", "accuracy"),
           "linear probe on the projector's output g(f(x))"),
    Column("g kNN", ("heads", "projector", "knn", "accuracy"), "kNN on the projector's output g(f(x))"),
    Column("q linear probe", ("heads", "predictor", "linear_probe", "accuracy"),
           "linear probe on the predictor's output q(g(f(x)))"),
    Column("q kNN", ("heads", "predictor", "knn", "accuracy"), "kNN on the predictor's output q(g(f(x)))"),
)

F_VS_G = Table(
    "f versus g: the backbone's features against the projector's (and BYOL's predictor's) output",
    (Row("simclr", "configs/simclr_fashion_mnist.py", ("eval.heads=('projector',)",)),
     Row("byol", "configs/byol_fashion_mnist.py", ("eval.heads=('projector', 'predictor')",)),
     Row("barlow_twins", "configs/barlow_twins_fashion_mnist.py", ("eval.heads=('projector',)",))),
    settings=FROZEN + _budget(256), columns=HEAD_COLUMNS,
    figure=Figure("bars", columns=("f linear probe", "g linear probe", "q linear probe",
                                   "f kNN", "g kNN", "q kNN")),
    note=f"{IMAGES} images at batch 256 per row. One pretraining per row; the same frozen "
         "protocols read three points of the network.")

# --- 4. Collapse ------------------------------------------------------------------------------

NO_PREDICTOR = ("method.predictor=False",)
NO_STOP_GRADIENT = ("method.stop_gradient=False",)
NO_OUTPUT_BN = ("method.projector_output_bn=False",)
MOMENTUM_0 = ("method.base_momentum=0.0", "method.momentum_schedule=constant")

COLLAPSE_COLUMNS = _columns("linear probe", "kNN") + (
    Column("final z std", ("final", "z_std"),
           "normalized std of the projections l2(z) over the last logged batch (1/sqrt(dim): "
           "spread out, 0: collapsed; SimSiam figure 2)", unit=""),
    Column("final RankMe", ("final", "diagnostics/rankme"),
           "RankMe of the backbone features of the last logged batch", unit=""),
)

COLLAPSE = Table(
    "Collapse, and what prevents it: SimSiam and BYOL without their parts",
    (Row("simsiam", "configs/simsiam_fashion_mnist.py"),
     Row("simsiam_no_predictor", "configs/simsiam_fashion_mnist.py", NO_PREDICTOR),
     Row("simsiam_no_stop_gradient", "configs/simsiam_fashion_mnist.py", NO_STOP_GRADIENT),
     # Without the projector's output BatchNorm, which alone keeps z spread over the batch.
     Row("simsiam_no_output_bn", "configs/simsiam_fashion_mnist.py", NO_OUTPUT_BN),
     Row("simsiam_no_output_bn_no_predictor", "configs/simsiam_fashion_mnist.py",
         NO_OUTPUT_BN + NO_PREDICTOR),
     Row("simsiam_no_output_bn_no_stop_gradient", "configs/simsiam_fashion_mnist.py",
         NO_OUTPUT_BN + NO_STOP_GRADIENT),
     Row("byol", "configs/byol_fashion_mnist.py"),
     Row("byol_no_predictor", "configs/byol_fashion_mnist.py", NO_PREDICTOR),
     Row("byol_momentum_0", "configs/byol_fashion_mnist.py", MOMENTUM_0),
     Row("byol_momentum_0_no_stop_gradient", "configs/byol_fashion_mnist.py",
         MOMENTUM_0 + NO_STOP_GRADIENT)),
    settings=FROZEN + _budget(256, log_points=64), columns=COLLAPSE_COLUMNS,
    figure=Figure("curves", keys=(("z_std", "normalized std of the projections l2(z)"),
                                  ("diagnostics/rankme", "RankMe of the backbone features"),
                                  ("loss", "loss"),
                                  ("online_probe/accuracy", "online probe accuracy (train batch)"))),
    note=f"{IMAGES} images at batch 256 per row. BYOL's target network with momentum 0 is the "
         "online network of the same step; without the stop-gradient the loss's gradient also "
         "flows through that branch.")

# --- 5. Few labels ----------------------------------------------------------------------------

FEW_LABEL_COLUMNS = _columns("few-label {key}", "linear probe")
SUPERVISED_ONLY = "eval.protocols=('few_label',)"

FEW_LABELS = Table(
    "Few labels: frozen self-supervised encoders against supervised training from scratch",
    # The best linear probe of each family in the 2000-step CPU table (docs/results.md).
    (Row("simclr", "configs/simclr_fashion_mnist.py"),
     Row("vicreg", "configs/vicreg_fashion_mnist.py"),
     Row("denoising_ae", "configs/denoising_ae_fashion_mnist.py"),
     Row("jigsaw", "configs/jigsaw_fashion_mnist.py"),
     Row("supervised_1pct", "configs/supervised_fashion_mnist.py",
         ("data.train_subset=1%", "eval.few_label_fractions=(0.01,)", SUPERVISED_ONLY)),
     Row("supervised_10pct", "configs/supervised_fashion_mnist.py",
         ("data.train_subset=10%", "eval.few_label_fractions=(0.1,)", SUPERVISED_ONLY))),
    settings=("eval.protocols=('linear_probe', 'few_label')",) + _budget(256),
    columns=FEW_LABEL_COLUMNS,
    figure=Figure("bars", columns=("few-label 1%", "few-label 10%")),
    note=f"{IMAGES} images at batch 256 per row. The self-supervised rows pretrain on every "
         "training image without labels, then a linear probe fits the 1% or 10% subset "
         "(sslax/evaluate/subsets/). supervised_1pct and _10pct train the same ConvNet with "
         "labels on that subset only (data.train_subset), then the same probe on the same labels.")

TABLES = {"batch_size": BATCH_SIZE, "feature_bank": FEATURE_BANK, "f_vs_g": F_VS_G,
          "collapse": COLLAPSE, "few_labels": FEW_LABELS}
