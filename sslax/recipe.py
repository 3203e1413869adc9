"""The recipe card of a paper config: its resolved recipe beside its source's, every
difference marked.

  python -m sslax.recipe --config=configs/byol_cifar10.py

A paper config (configs/*_cifar10.py, *_imagenet.py, simclr_stl10.py) carries a
`config.recipe` block:
  source         where the recipe comes from (repository and file, or paper and table);
  source_values  ((key, the source's value, where in the source), ...);
  departures     ((key, why this config differs), ...); key "-" for a departure no key
                 captures (an evaluation protocol, a data pipeline).
A key is a dotted config path ("method.temperature") or one of the derived quantities
below (the effective learning rate after batch scaling, epochs, warm-up epochs, the
optimizer and its semantics, the crop's resampling). The card prints every key's resolved value beside the
source's, marks a difference "!=", and marks one that `departures` does not name
"UNLISTED" (tests/test_recipes.py fails on it). It ends with what evaluates the backbone:
the frozen protocols `--mode=train` runs, and the paper's linear evaluation, a separate run
(`python -m sslax.evaluate.linear_eval`), named by its recipe.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from sslax import optim

# Training examples of the splits paper configs pretrain on (STL-10: `unlabelled`); an
# epoch is examples // batch steps (the last partial batch dropped, as the sources do).
EPOCH_EXAMPLES = {"cifar10": 50_000, "imagenet2012": 1_281_167, "stl10": 100_000}

# What each optimizer steps as: the semantics row of the card.
_SEMANTICS = {
    ("lars", "optax"): "optax.lars: r = eta||p||/||g + wd p||, momentum after lr "
                       "(official SimCLR / BYOL LARS)",
    ("lars", "solo_learn"): "sslax.optim.lars: r = eta||p||/(||g|| + wd||p||), momentum before lr "
                            "(solo-learn solo/utils/lars.py)",
    ("lars", "pytorch"): "sslax.optim.pytorch_lars: r = eta||p||/||g + wd p||, momentum before lr "
                         "(official Barlow Twins / VICReg / MoCo v3 LARS)",
    ("sgd", None): "SGD, momentum, L2 weight decay added to the gradient (PyTorch SGD)",
    ("adamw", None): "AdamW, decoupled weight decay",
}


def default_config() -> ml_collections.ConfigDict:
  """Empty for configs that follow no published recipe (the CPU configs)."""
  return ml_collections.ConfigDict(dict(source="", source_values=(), departures=()))


def optimizer_summary(cfg: ml_collections.ConfigDict) -> str:
  if cfg.name == "lars":
    variant = cfg.get("lars_variant", "optax")
    clip = ", clip_lr" if cfg.get("clip_lr", False) else ""
    return f"lars ({variant}{clip})"
  return cfg.name


def crop_interpolation(config: ml_collections.ConfigDict) -> str:
  """How the random resized crop resamples (on the host for full-resolution images, on the
  device for in-memory ones): the views' `interpolation`, one name, or each view's joined by
  "/" where they differ."""
  names = [view.get("interpolation", "bilinear") for view in config.views.values()]
  return names[0] if len(set(names)) == 1 else "/".join(names)


def derived(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The card's computed keys: what a reader compares first."""
  examples = EPOCH_EXAMPLES.get(config.data.name)
  per_epoch = examples // config.batch_size if examples else None

  def epochs(steps):
    return None if per_epoch is None else round(steps / per_epoch, 1)

  opt = config.optimizer
  semantics = _SEMANTICS.get((opt.name, opt.get("lars_variant", "optax") if opt.name == "lars" else None))
  return {
      "lr_peak": round(optim.scaled_learning_rate(opt, config.batch_size), 6),
      "epochs": epochs(config.total_steps),
      "warmup_epochs": epochs(opt.warmup_steps),
      "optimizer": optimizer_summary(opt),
      "optimizer_semantics": semantics,
      "views": len(config.views),
      "crop_interpolation": crop_interpolation(config),
  }


def resolve(config: ml_collections.ConfigDict, key: str) -> Any:
  """The value of a card key in `config`: derived, or a dotted path."""
  values = derived(config)
  if key in values:
    return values[key]
  value = config
  for part in key.split("."):
    value = value[part]
  return value


def same(a: Any, b: Any) -> bool:
  if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
  if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
  return a == b


def rows(config: ml_collections.ConfigDict) -> list[tuple[str, Any, Any, str, str]]:
  """(key, this config's value, the source's, mark, where or why) for every recorded key:
  mark "" (same), "!=" (a listed departure) or "UNLISTED" (a difference no departure names)."""
  listed = dict(config.recipe.departures)
  out = []
  for key, source_value, where in config.recipe.source_values:
    value = resolve(config, key)
    if same(value, source_value):
      out.append((key, value, source_value, "", where))
    elif key in listed:
      out.append((key, value, source_value, "!=", listed[key]))
    else:
      out.append((key, value, source_value, "UNLISTED", where))
  return out


def unlisted(config: ml_collections.ConfigDict) -> list[str]:
  """Keys whose value differs from the source's without a listed departure."""
  return [key for key, *_, mark, _ in rows(config) if mark == "UNLISTED"]


def card(config: ml_collections.ConfigDict) -> str:
  """The recipe card as Markdown."""
  recipe = config.recipe
  lines = [f"Source: {recipe.source or '(none: this config follows no published recipe)'}", "",
           "| key | this config | source | | where in the source / why it differs |",
           "|---|---|---|---|---|"]
  for key, value, source_value, mark, note in rows(config):
    lines.append(f"| {key} | {value} | {source_value} | {mark} | {note} |")
  resolved_only = derived(config)
  recorded = {key for key, _, _ in recipe.source_values}
  for key in resolved_only:
    if key not in recorded:
      lines.append(f"| {key} | {resolved_only[key]} | (not recorded) | | |")
  free = [why if key == "-" else f"{key}: {why}" for key, why in recipe.departures
          if key not in recorded]
  if free:
    lines += ["", "Departures no key captures:"] + [f"- {why}" for why in free]
  return "\n".join(lines + [""] + evaluation(config))


def evaluation(config: ml_collections.ConfigDict) -> list[str]:
  """What evaluates the backbone: `--mode=train`'s frozen protocols, and the paper's linear
  evaluation where the config names its recipe."""
  protocols = tuple(config.eval.protocols)
  limit = config.eval.get("max_train_examples", -1)
  bank = "the whole training split" if limit < 0 else f"the first {limit} training examples"
  knn = (f" (kNN: k {config.eval.knn_k}, T {config.eval.knn_temperature})"
         if "knn" in protocols else "")
  out = [f"Evaluation at the end of `--mode=train`: {', '.join(protocols)}, on frozen features "
         f"of {bank}{knn}."]
  name = config.get("linear_eval", {}).get("recipe", "")
  if name:
    out.append(f"The paper's linear evaluation is a separate run, not part of `--mode=train`: "
               f"`python -m sslax.evaluate.linear_eval --config=... --workdir=...`, recipe "
               f"{name!r} (settings, source and departures: sslax/evaluate/linear_eval_recipes.py).")
  return out


def main(argv) -> None:
  del argv
  from absl import flags

  config = flags.FLAGS.config
  print(card(config))
  missing = unlisted(config)
  if missing:
    print(f"\nUNLISTED departures {missing}: add them to config.recipe.departures")


def define_flags() -> None:
  """Only when run as a program: importing this module must not define flags that clash
  with sslax.main's."""
  from absl import flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "A paper config file (configs/*.py).",
                                  lock_config=True)
  flags.mark_flags_as_required(["config"])


if __name__ == "__main__":
  from absl import app

  define_flags()
  app.run(main)
