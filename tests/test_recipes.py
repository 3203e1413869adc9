"""Each paper config against its source: the key values below were read from the sources
(each with where it came from); a config value that differs must be a departure the
config lists in `config.recipe.departures`, or the test fails. The recipe card
(`python -m sslax.recipe`) prints the same comparison, and docs/recipes.md holds the cards it
printed."""

from __future__ import annotations

import glob
import importlib.util
import os
import re

import pytest

from sslax import recipe

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_CONFIGS = sorted(
    os.path.relpath(p, REPO) for pattern in ("*_cifar10.py", "*_imagenet.py", "simclr_stl10.py")
    for p in glob.glob(os.path.join(REPO, "configs", pattern)))

SOLO = "vturrisi/solo-learn @9187ea3"
CIFAR = "scripts/pretrain/cifar"
# Read at vturrisi/solo-learn 2aa1e64: RandomResizedCrop(..., interpolation=BICUBIC) in every
# dataset's transform.
SOLO_CROP = "vturrisi/solo-learn @2aa1e64 solo/data/pretrain_dataloader.py"
# torchvision's RandomResizedCrop without `interpolation` is bilinear.
TV_BILINEAR = "RandomResizedCrop without interpolation= (torchvision's default, bilinear)"


def _solo(yaml, optimizer, lr, wd):
  """What every solo-learn CIFAR-10 yaml shares (solo/args/pretrain.py and
  solo/methods/base.py defaults fill what the yaml leaves out)."""
  rows = {
      "batch_size": (256, f"{SOLO} {CIFAR}/{yaml} optimizer.batch_size"),
      "epochs": (1000.0, f"{SOLO} {CIFAR}/{yaml} max_epochs"),
      "warmup_epochs": (10.0, f"{SOLO} solo/methods/base.py scheduler.warmup_epochs default 10"),
      "optimizer.warmup_start_lr": (3e-5, f"{SOLO} solo/methods/base.py warmup_start_lr default"),
      "lr_peak": (lr, f"{SOLO} {CIFAR}/{yaml} optimizer.lr, x batch/256 in solo/args/pretrain.py"),
      "optimizer.weight_decay": (wd, f"{SOLO} {CIFAR}/{yaml} optimizer.weight_decay"),
      "optimizer.momentum": (0.9, f"{SOLO} solo/args/pretrain.py momentum default 0.9"),
      "model.zero_init_last_bn": (False, "torchvision resnet18 zero_init_residual=False"),
      "crop_interpolation": ("bicubic", f"{SOLO_CROP} CifarTransform"),
  }
  if optimizer == "lars":
    rows["optimizer"] = ("lars (solo_learn, clip_lr)",
                         f"{SOLO} {CIFAR}/{yaml} kwargs clip_lr True; solo/utils/lars.py")
    rows["optimizer.trust_coefficient"] = (0.02, f"{SOLO} {CIFAR}/{yaml} kwargs eta 0.02")
  else:
    rows["optimizer"] = (optimizer, f"{SOLO} {CIFAR}/{yaml} optimizer.name")
    rows["optimizer.decay_all_parameters"] = (
        True, f"{SOLO} solo/methods/base.py exclude_bias_n_norm_wd default False")
  return rows


ASYM = f"{SOLO} {CIFAR}/augmentations/asymmetric.yaml"
SYM = f"{SOLO} {CIFAR}/augmentations/symmetric.yaml"
SYM_WEAK = f"{SOLO} {CIFAR}/augmentations/symmetric_weak.yaml"
PER_VIEW = (("per_view"), f"{SOLO} solo/methods/base.py training_step: one forward per crop")
PIL_BLUR = ("sigma", f"{SOLO} solo/data/pretrain_dataloader.py GaussianBlur: PIL radius=sigma")

SOURCES = {
    "configs/byol_cifar10.py": {
        **_solo("byol.yaml", "lars", 1.0, 1e-5),
        "method.projector_hidden": ((4096,), f"{SOLO} {CIFAR}/byol.yaml proj_hidden_dim 4096"),
        "method.projector_dim": (256, f"{SOLO} {CIFAR}/byol.yaml proj_output_dim 256"),
        "method.predictor_hidden": ((4096,), f"{SOLO} {CIFAR}/byol.yaml pred_hidden_dim 4096"),
        "method.base_momentum": (0.99, f"{SOLO} {CIFAR}/byol.yaml momentum.base_tau"),
        "method.views_forward": PER_VIEW,
        "views.view1.crop_scale": ((0.08, 1.0), ASYM),
        "views.view1.blur_p": (0.0, ASYM),
        "views.view2.solarize_p": (0.2, ASYM),
    },
    "configs/simclr_cifar10.py": {
        **_solo("simclr.yaml", "lars", 0.4, 1e-4),
        "method.temperature": (0.2, f"{SOLO} {CIFAR}/simclr.yaml temperature"),
        "method.projector_hidden": ((2048,), f"{SOLO} {CIFAR}/simclr.yaml proj_hidden_dim"),
        "method.projector_dim": (256, f"{SOLO} {CIFAR}/simclr.yaml proj_output_dim"),
        "method.projector_bn": (False, f"{SOLO} solo/methods/simclr.py Linear-ReLU-Linear"),
        "method.projector_last_bn": (False, f"{SOLO} solo/methods/simclr.py Linear-ReLU-Linear"),
        "method.views_forward": PER_VIEW,
        "views.view1.brightness": (0.8, SYM), "views.view1.hue": (0.2, SYM),
        "views.view1.blur_p": (0.5, SYM), "views.view1.blur_kernel": PIL_BLUR,
    },
    "configs/barlow_twins_cifar10.py": {
        **_solo("barlow.yaml", "lars", 0.3, 1e-4),
        "method.projector_hidden": ((2048, 2048), f"{SOLO} {CIFAR}/barlow.yaml proj_hidden_dim"),
        "method.projector_dim": (2048, f"{SOLO} {CIFAR}/barlow.yaml proj_output_dim"),
        "method.scale_loss": (0.1, f"{SOLO} {CIFAR}/barlow.yaml scale_loss"),
        "method.views_forward": PER_VIEW,
        "views.view2.solarize_p": (0.2, ASYM),
    },
    "configs/vicreg_cifar10.py": {
        **_solo("vicreg.yaml", "lars", 0.3, 1e-4),
        "method.projector_hidden": ((2048, 2048), f"{SOLO} {CIFAR}/vicreg.yaml proj_hidden_dim"),
        "method.halve_variance": (False, f"{SOLO} solo/losses/vicreg.py variance_loss sums both"),
        "method.views_forward": PER_VIEW,
        "views.view1.crop_scale": ((0.2, 1.0), f"{SOLO} {CIFAR}/vicreg.yaml rrc 0.2"),
        "views.view1.solarize_p": (0.1, f"{SOLO} {CIFAR}/vicreg.yaml solarization 0.1"),
    },
    "configs/moco_v2_cifar10.py": {
        **_solo("mocov2plus.yaml", "sgd", 0.3, 1e-4),
        "method.queue_size": (32768, f"{SOLO} {CIFAR}/mocov2plus.yaml queue_size"),
        "method.temperature": (0.2, f"{SOLO} {CIFAR}/mocov2plus.yaml temperature"),
        "method.final_momentum": (0.999, f"{SOLO} {CIFAR}/mocov2plus.yaml final_tau"),
        "method.symmetric": (True, f"{SOLO} solo/methods/mocov2plus.py training_step"),
        "views.view1.blur_p": (0.5, SYM_WEAK), "views.view1.blur_kernel": PIL_BLUR,
    },
    "configs/moco_v3_cifar10.py": {
        **_solo("mocov3.yaml", "lars", 0.3, 1e-6),
        "method.projector_hidden": ((4096,), f"{SOLO} solo/methods/mocov3.py _build_mlp(2, ...)"),
        "method.temperature": (0.2, f"{SOLO} {CIFAR}/mocov3.yaml temperature"),
        "method.views_forward": PER_VIEW,
    },
    "configs/simsiam_cifar10.py": {
        **_solo("simsiam.yaml", "sgd", 0.5, 1e-5),
        "method.predictor_hidden": ((512,), f"{SOLO} {CIFAR}/simsiam.yaml pred_hidden_dim"),
        "optimizer.fixed_lr_parts": (("predictor",), f"{SOLO} solo/methods/simsiam.py static_lr"),
        "method.views_forward": PER_VIEW,
        "views.view1.blur_kernel": PIL_BLUR,
    },
    "configs/dino_cifar10.py": {
        **_solo("dino.yaml", "lars", 0.3, 1e-6),
        "method.out_dim": (4096, f"{SOLO} {CIFAR}/dino.yaml num_prototypes"),
        "method.base_momentum": (0.9995, f"{SOLO} {CIFAR}/dino.yaml base_tau"),
        "method.warmup_teacher_temp_steps": (0, f"{SOLO} solo/methods/dino.py HEAD default 0 epochs"),
    },
    "configs/swav_cifar10.py": {
        **_solo("swav.yaml", "lars", 0.6, 1e-6),
        "method.num_prototypes": (3000, f"{SOLO} {CIFAR}/swav.yaml num_prototypes"),
        "method.queue_length": (3840, f"{SOLO} {CIFAR}/swav.yaml queue_size"),
        "views.global1.blur_kernel": PIL_BLUR,
    },
    "configs/mae_cifar10.py": {
        **{k: v for k, v in _solo("mae.yaml", "adamw", 2e-4, 0.05).items() if not k.startswith("model.")},
        "model.name": ("vit_small", f"{SOLO} {CIFAR}/mae.yaml backbone vit_small"),
        "model.patch_size": (4, f"{SOLO} {CIFAR}/mae.yaml patch_size 4"),
        "method.mask_ratio": (0.75, f"{SOLO} {CIFAR}/mae.yaml mask_ratio"),
        "method.decoder_dim": (512, f"{SOLO} {CIFAR}/mae.yaml decoder_embed_dim"),
        "optimizer.b2": (0.95, f"{SOLO} {CIFAR}/mae.yaml betas"),
    },
    "configs/simclr_imagenet.py": {
        "batch_size": (4096, "Chen et al. 2020 section 2.2"),
        "epochs": (1000.0, "Chen et al. 2020 Table 6 (69.3 row)"),
        "lr_peak": (4.8, "Chen et al. 2020 appendix B.1: 0.3 x 4096/256"),
        "optimizer": ("lars (optax)", "google-research/simclr LARS: momentum after the lr"),
        "optimizer.weight_decay": (1e-6, "Chen et al. 2020 section 2.2"),
        "method.temperature": (0.1, "Chen et al. 2020 appendix B.9"),
        "method.projector_last_bn": (True, "google-research/simclr projection head: use_bn=True last"),
        "method.views_forward": ("concatenated", "google-research/simclr: views in one batch"),
        "views.view1.blur_kernel": ("fraction", "Chen et al. 2020 appendix A: 10% of the side"),
        "crop_interpolation": ("bicubic", "google-research/simclr tf2/data_util.py crop_and_resize "
                                          "tf.image.resize(method=BICUBIC)"),
    },
    "configs/byol_imagenet.py": {
        "batch_size": (4096, "Grill et al. 2020 section 3.3"),
        "epochs": (1000.0, "Grill et al. 2020 section 3.3"),
        "lr_peak": (3.2, "Grill et al. 2020 section 3.3: 0.2 x 4096/256"),
        "optimizer.weight_decay": (1.5e-6, "Grill et al. 2020 section 3.3"),
        "method.base_momentum": (0.996, "Grill et al. 2020 section 3.3"),
        "method.views_forward": ("per_view", "deepmind-research byol_experiment.py"),
        "views.view1.blur_p": (1.0, "Grill et al. 2020 Table 6"),
        "crop_interpolation": ("bicubic", "deepmind-research byol/utils/dataset.py _preprocess_image"),
    },
    "configs/moco_v3_imagenet.py": {
        "method.projector_hidden": ((4096,), "facebookresearch/moco-v3 builder.py MoCo_ResNet _build_mlp(2, ...)"),
        "optimizer": ("lars (pytorch)", "moco-v3 moco/optimizer.py LARS: momentum before lr"),
        "lr_peak": (9.6, "moco-v3 CONFIG.md: --lr .6 at batch 4096"),
        "method.views_forward": ("per_view", "moco-v3 builder.py: x1 and x2 apart"),
        "crop_interpolation": ("bilinear", f"moco-v3 main_moco.py augmentation1/2 {TV_BILINEAR}"),
    },
    "configs/moco_v2_imagenet.py": {
        "optimizer.decay_all_parameters": (True, "facebookresearch/moco main_moco.py SGD(model.parameters(), wd)"),
        "lr_peak": (0.03, "main_moco.py --lr 0.03 at batch 256"),
        "method.symmetric": (False, "facebookresearch/moco builder.py: one direction"),
        "crop_interpolation": ("bilinear", f"main_moco.py --aug-plus {TV_BILINEAR}"),
    },
    "configs/simsiam_imagenet.py": {
        "optimizer.fixed_lr_parts": (("predictor",), "facebookresearch/simsiam --fix-pred-lr"),
        "optimizer.decay_all_parameters": (True, "main_simsiam.py SGD over every parameter"),
        "lr_peak": (0.1, "main_simsiam.py --lr 0.05 x 512/256"),
        "crop_interpolation": ("bilinear", f"main_simsiam.py {TV_BILINEAR}"),
    },
    "configs/vicreg_imagenet.py": {
        "method.halve_variance": (True, "facebookresearch/vicreg main_vicreg.py std_loss / 2"),
        "lr_peak": (1.6, "vicreg README --base-lr 0.2 at batch 2048"),
        "optimizer": ("lars (pytorch)", "main_vicreg.py LARS: mu = m mu + dp; p -= lr mu"),
        "crop_interpolation": ("bicubic", "vicreg augmentations.py TrainTransform InterpolationMode.BICUBIC"),
    },
    "configs/barlow_twins_imagenet.py": {
        "optimizer": ("lars (pytorch)", "facebookresearch/barlowtwins main.py LARS: momentum before lr"),
        "method.views_forward": ("per_view", "barlowtwins main.py: y1 and y2 through the backbone apart"),
        "crop_interpolation": ("bicubic", "barlowtwins main.py Transform: interpolation=Image.BICUBIC"),
    },
    "configs/swav_imagenet.py": {
        "optimizer": ("lars (solo_learn)", "facebookresearch/swav main_swav.py apex LARC(clip=False)"),
        "optimizer.decay_all_parameters": (True, "main_swav.py: LARC on every parameter"),
        "lr_peak": (4.8, "swav_800ep_pretrain.sh --base_lr 4.8, not batch-scaled"),
        "crop_interpolation": ("bilinear", f"swav src/multicropdataset.py {TV_BILINEAR}"),
    },
    "configs/dino_imagenet.py": {
        "crop_interpolation": ("bicubic", "facebookresearch/dino main_dino.py DataAugmentationDINO: "
                                          "Image.BICUBIC for the global and the local crops"),
    },
    "configs/mae_imagenet.py": {
        "crop_interpolation": ("bicubic", "facebookresearch/mae main_pretrain.py interpolation=3"),
    },
}


def load(path: str):
  spec = importlib.util.spec_from_file_location("_paper_config", os.path.join(REPO, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def unlisted_against(config, source: dict) -> list[str]:
  """Keys of `source` whose config value differs without a keyed departure."""
  listed = {key for key, _ in config.recipe.departures}
  return [key for key, (value, _) in source.items()
          if not recipe.same(recipe.resolve(config, key), value) and key not in listed]


def test_every_paper_config_names_its_source_and_shows_no_unlisted_departure():
  assert len(PAPER_CONFIGS) >= 26
  for path in PAPER_CONFIGS:
    config = load(path)
    assert config.recipe.source, f"{path}: config.recipe.source is empty"
    assert recipe.unlisted(config) == [], path
    differing = {key for key, *_, mark, _ in recipe.rows(config) if mark == "!="}
    recorded = {key for key, _, _ in config.recipe.source_values}
    for key, why in config.recipe.departures:  # a keyed departure names a real difference
      assert key == "-" or key not in recorded or key in differing, f"{path}: stale departure {key}"
      assert why


@pytest.mark.parametrize("path", sorted(SOURCES))
def test_config_matches_the_source_values_recorded_here(path):
  config = load(path)
  assert unlisted_against(config, SOURCES[path]) == [], path
  # what the card prints as the source's value is what was read from the source
  claimed = {key: value for key, value, _ in config.recipe.source_values}
  for key, (value, where) in SOURCES[path].items():
    if key in claimed:
      assert recipe.same(claimed[key], value), f"{path} {key}: card says {claimed[key]}, {where} says {value}"


def test_an_unlisted_departure_fails():
  config = load("configs/byol_cifar10.py")
  assert unlisted_against(config, SOURCES["configs/byol_cifar10.py"]) == []
  config.optimizer.weight_decay = 1e-4
  config.method.views_forward = "concatenated"
  assert unlisted_against(config, SOURCES["configs/byol_cifar10.py"]) == [
      "optimizer.weight_decay", "method.views_forward"]
  assert recipe.unlisted(config) == ["optimizer.weight_decay", "method.views_forward"]
  assert "UNLISTED" in recipe.card(config)


def test_derived_values_count_whole_batches():
  config = load("configs/byol_cifar10.py")
  values = recipe.derived(config)
  assert values["epochs"] == 1000.0 and values["warmup_epochs"] == 10.0  # 195 steps an epoch
  assert values["lr_peak"] == 1.0 and values["optimizer"] == "lars (solo_learn, clip_lr)"
  assert recipe.derived(load("configs/simclr_imagenet.py"))["lr_peak"] == 4.8


def test_crop_interpolation_is_the_views():
  config = load("configs/dino_imagenet.py")
  assert recipe.crop_interpolation(config) == "bicubic"
  config.views.local1.interpolation = "bilinear"
  assert recipe.crop_interpolation(config) == "/".join(
      ["bilinear" if name == "local1" else "bicubic" for name in config.views])
  cifar = load("configs/byol_cifar10.py")  # the on-device crop, bicubic as solo-learn's
  assert recipe.crop_interpolation(cifar) == "bicubic"
  cifar.views.view2.interpolation = "bilinear"
  assert "crop_interpolation" in unlisted_against(cifar, SOURCES["configs/byol_cifar10.py"])


@pytest.mark.parametrize("name", ["byol_cifar10", "simclr_imagenet"])
def test_docs_hold_the_cards_the_command_prints(name):
  """docs/recipes.md quotes `python -m sslax.recipe --config=configs/NAME.py` verbatim."""
  text = open(os.path.join(REPO, "docs", "recipes.md")).read()
  match = re.search(rf"python -m sslax.recipe --config=configs/{name}.py\n```\n\n(.*?)\n\n<!-- end {name} -->",
                    text, re.S)
  assert match, f"docs/recipes.md has no card for {name}"
  assert match.group(1).strip() == recipe.card(load(f"configs/{name}.py")).strip()
