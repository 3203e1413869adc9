"""The papers' own numbers for the paper-scale configs (configs/*_imagenet.py, *_cifar10.py).

sslax cannot train these recipes on the machines it was built on, so its results tables
(sslax/reproduce.py) print these numbers beside them: what each recipe reaches when run at
the scale it was written for, with the protocol and the place in the paper that reports
it. A number goes in only when it was checked against the paper or the authors' official
repository; where a detail could not be checked (DINO's epochs), it is left out rather
than guessed. The CIFAR-10 configs follow solo-learn's recipes; their numbers are
solo-learn's README table (ResNet-18, 1000 epochs; vturrisi/solo-learn README.md "Results,
CIFAR-10", checked against the repository, present since 2021-07-09), not the methods' papers.
`note` says where a number's own set-up differs from its config's (another architecture, a
released checkpoint).

Entries whose pretraining length differs from the config's say so: the config's length is
`config_epochs`, checked against the config files in tests/test_reproduce.py.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Published:
  """One number from a paper. `method` names the results-table row it belongs to."""
  method: str
  config: str               # the paper-scale config file, relative to the repository
  config_epochs: int        # how long that config pretrains
  architecture: str
  protocol: str             # "linear probe", "fine-tune", "kNN (k=20)"
  epochs: int | None        # pretraining epochs behind the number; None: not checked
  top1: float               # validation (CIFAR-10: test) top-1 on `dataset`, percent
  paper: str                # authors, year, short title
  where: str                # table or section
  arxiv: str
  dataset: str = "ImageNet-1k"
  note: str = ""            # what differs between the number's set-up and the config's


_SOLO = "da Costa et al. 2022, solo-learn"
_SOLO_WHERE = "README.md, Results: CIFAR-10 (MoCo v2 row: MoCo V2+)"
# The README's table does not name its linear protocol; solo-learn trains a linear classifier
# on stop-gradient features during pretraining and offers an offline one.
_SOLO_PROTOCOL = "linear (solo-learn)"
_SOLO_DINO = ("produced in 2021 when solo-learn's teacher-temperature warm-up default was 50 "
              "epochs (0 since 2022-09); the config keeps 50")

PUBLISHED: tuple[Published, ...] = (
    Published("simclr", "configs/simclr_imagenet.py", 100, "ResNet-50", "linear probe", 1000, 69.3,
              "Chen et al. 2020, SimCLR", "Table 6", "2002.05709"),
    Published("moco_v2", "configs/moco_v2_imagenet.py", 200, "ResNet-50", "linear probe", 200, 67.5,
              "Chen, Fan, Girshick, He 2020, MoCo v2", "Table 1 (MLP, aug+, cos)", "2003.04297"),
    Published("moco_v2", "configs/moco_v2_imagenet.py", 200, "ResNet-50", "linear probe", 800, 71.1,
              "Chen, Fan, Girshick, He 2020, MoCo v2", "Table 2", "2003.04297"),
    # The ResNet-50 number is the official repository's (the PyTorch re-implementation the
    # authors released with the paper; CONFIG.md is the recipe configs/moco_v3_imagenet.py
    # follows); the paper's own ResNet-50 row could not be checked here.
    Published("moco_v3", "configs/moco_v3_imagenet.py", 100, "ResNet-50", "linear probe", 100, 68.9,
              "Chen, Xie, He 2021, MoCo v3", "facebookresearch/moco-v3 README", "2104.02057"),
    Published("moco_v3", "configs/moco_v3_imagenet.py", 100, "ViT-B/16", "linear probe", 300, 76.7,
              "Chen, Xie, He 2021, MoCo v3", "ViT linear probing (paper and README)", "2104.02057",
              note="a ViT-B/16 number (300 epochs, ViT recipe): the config trains a ResNet-50; "
                   "no sslax config reproduces it"),
    Published("byol", "configs/byol_imagenet.py", 1000, "ResNet-50", "linear probe", 1000, 74.3,
              "Grill et al. 2020, BYOL", "Table 1", "2006.07733"),
    Published("simsiam", "configs/simsiam_imagenet.py", 100, "ResNet-50", "linear probe", 100, 68.1,
              "Chen & He 2021, SimSiam", "Table 4", "2011.10566"),
    Published("barlow_twins", "configs/barlow_twins_imagenet.py", 1000, "ResNet-50", "linear probe",
              1000, 73.2, "Zbontar et al. 2021, Barlow Twins", "Table 1", "2103.03230"),
    Published("vicreg", "configs/vicreg_imagenet.py", 1000, "ResNet-50", "linear probe", 1000, 73.2,
              "Bardes, Ponce, LeCun 2022, VICReg", "Table 1", "2105.04906"),
    Published("dino", "configs/dino_imagenet.py", 100, "ResNet-50", "linear probe", None, 75.3,
              "Caron et al. 2021, DINO", "Table 2", "2104.14294",
              note="the released ResNet-50 checkpoint's, trained with its own (longer) recipe, "
                   "not the config's 100-epoch command"),
    Published("dino", "configs/dino_imagenet.py", 100, "ResNet-50", "kNN (k=20)", None, 67.5,
              "Caron et al. 2021, DINO", "Table 2", "2104.14294",
              note="the released ResNet-50 checkpoint's; kNN over the whole training split "
                   "(eval_knn.py)"),
    Published("dino", "configs/dino_imagenet.py", 100, "ViT-S/16", "linear probe", None, 77.0,
              "Caron et al. 2021, DINO", "Table 2", "2104.14294"),
    Published("dino", "configs/dino_imagenet.py", 100, "ViT-S/16", "kNN (k=20)", None, 74.5,
              "Caron et al. 2021, DINO", "Table 2", "2104.14294"),
    Published("swav", "configs/swav_imagenet.py", 800, "ResNet-50, multi-crop 2x224 + 6x96",
              "linear probe", 800, 75.3, "Caron et al. 2020, SwAV", "Table 1", "2006.09882"),
    Published("mae", "configs/mae_imagenet.py", 800, "ViT-B/16", "fine-tune", 1600, 83.6,
              "He et al. 2022, MAE", "Table 3", "2111.06377",
              note="after MAE's fine-tuning recipe (FINETUNE.md), 1600 pretraining epochs"),
    Published("barlow_twins", "configs/barlow_twins_cifar10.py", 1000, "ResNet-18 (CIFAR stem)", _SOLO_PROTOCOL, 1000,
              92.10, _SOLO, _SOLO_WHERE, "2108.01775", dataset="CIFAR-10"),
    Published("byol", "configs/byol_cifar10.py", 1000, "ResNet-18 (CIFAR stem)", _SOLO_PROTOCOL, 1000,
              92.58, _SOLO, _SOLO_WHERE, "2108.01775", dataset="CIFAR-10"),
    Published("dino", "configs/dino_cifar10.py", 1000, "ResNet-18 (CIFAR stem)", _SOLO_PROTOCOL, 1000,
              89.52, _SOLO, _SOLO_WHERE, "2108.01775", dataset="CIFAR-10", note=_SOLO_DINO),
    Published("moco_v2", "configs/moco_v2_cifar10.py", 1000, "ResNet-18 (CIFAR stem)", _SOLO_PROTOCOL, 1000,
              92.94, _SOLO, _SOLO_WHERE, "2108.01775", dataset="CIFAR-10"),
    Published("moco_v3", "configs/moco_v3_cifar10.py", 1000, "ResNet-18 (CIFAR stem)", _SOLO_PROTOCOL, 1000,
              93.10, _SOLO, _SOLO_WHERE, "2108.01775", dataset="CIFAR-10"),
    Published("simclr", "configs/simclr_cifar10.py", 1000, "ResNet-18 (CIFAR stem)", _SOLO_PROTOCOL, 1000,
              90.74, _SOLO, _SOLO_WHERE, "2108.01775", dataset="CIFAR-10"),
    Published("simsiam", "configs/simsiam_cifar10.py", 1000, "ResNet-18 (CIFAR stem)", _SOLO_PROTOCOL, 1000,
              90.51, _SOLO, _SOLO_WHERE, "2108.01775", dataset="CIFAR-10"),
    Published("swav", "configs/swav_cifar10.py", 1000, "ResNet-18 (CIFAR stem)", _SOLO_PROTOCOL, 1000,
              89.17, _SOLO, _SOLO_WHERE, "2108.01775", dataset="CIFAR-10"),
    Published("vicreg", "configs/vicreg_cifar10.py", 1000, "ResNet-18 (CIFAR stem)", _SOLO_PROTOCOL, 1000,
              92.07, _SOLO, _SOLO_WHERE, "2108.01775", dataset="CIFAR-10"),
    Published("data2vec", "configs/data2vec_imagenet.py", 800, "ViT-B/16", "fine-tune", 800, 84.2,
              "Baevski et al. 2022, data2vec", "Table 1", "2202.03555"),
)


def for_methods(methods) -> list[Published]:
  """The entries of `methods` (results-table row labels), in the order of PUBLISHED."""
  wanted = set(methods)
  return [p for p in PUBLISHED if p.method in wanted]


def markdown(entries: list[Published]) -> str:
  """The Markdown table of `entries`: config file, the paper's number, its protocol and source."""
  lines = ["| row | paper-scale config (its epochs) | architecture | protocol | paper's epochs | "
           "dataset | top-1 | source | note |", "|---" * 9 + "|"]
  for p in entries:
    epochs = "not checked" if p.epochs is None else str(p.epochs)
    lines.append(f"| {p.method} | `{p.config}` ({p.config_epochs}) | {p.architecture} | {p.protocol} | "
                 f"{epochs} | {p.dataset} | {p.top1:.{2 if p.dataset == 'CIFAR-10' else 1}f}% | {p.paper}, {p.where}, arXiv:{p.arxiv} | "
                 f"{p.note} |")
  return "\n".join(lines)
