"""Few-label evaluation: the linear probe fit on a small class-balanced labeled subset.

A subset is named by its spec and seed:
  * by fraction ("1%", "10%"): each class c with n_c examples contributes
    max(1, round(fraction * n_c)) of them;
  * by count ("1 per class", "3 per class"): min(k, n_c) from each class.
Within each class (classes in sorted order) the examples are the first ones of a
permutation drawn from `np.random.default_rng(seed)`, so a (labels, spec, seed) triple
always gives the same subset. Draw d of an evaluation uses seed `seed + d`.

Saved lists make a subset the same everywhere, whatever code draws it: a plain text
file of indices into the split, one per line, under a header of `# key: value` comments
(dataset, split, spec, seed, N, the split's size and a checksum of its labels).
sslax/evaluate/subsets/ holds Fashion-MNIST train 1% and 10% at seed 0 (config.data.
train_subset pretrains on the same subsets, sslax/assemble.py):

  python -m sslax.evaluate.few_label --dataset=fashion_mnist --split=train \
      --fractions=0.01,0.1 --seed=0

Indices are into the split in the order `pipeline.open_source` reads it (TFDS's order,
which is not the order of the original idx files). When a saved list exists for the
requested (dataset, split, spec, seed), the evaluation uses it, after checking that it
was drawn from these very labels (the checksum, the balance its spec promises); the same
number of labels in another order is an error, never a silent redraw. Labels of another
size (a truncated split, or a small stand-in dataset under the same name, as in the
tests) are not the split the list indexes: the subset is drawn from them instead, and
eval.json says so.

Protocol on each subset: by fraction, `linear_probe` (L2 chosen on a stratified held-out
part of the subset); k per class (too few labels to hold any out), the same logistic
regression on features standardized with the whole training split's statistics (features
of unlabeled examples are available to a semi-supervised learner) at one fixed strength,
scikit-learn's default C = 1, so the raw-feature baseline is the usual scikit-learn recipe. Reported: mean and population std of
test top-1 over the draws.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Sequence

import numpy as np

from sslax.errors import ConfigError

SUBSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "subsets")
_FORMAT = "sslax few-label subset: indices into the split, one per line, sorted"


class SubsetMismatchError(ConfigError):
  """A saved subset does not fit the labels it is applied to; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class SubsetSpec:
  """How many labeled examples per class: `fraction` of each class, or `per_class` of each."""
  fraction: float | None = None
  per_class: int | None = None

  def __post_init__(self):
    if (self.fraction is None) == (self.per_class is None):
      raise ValueError("give exactly one of fraction and per_class")
    if self.fraction is not None and not 0 < self.fraction <= 1:
      raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
    if self.per_class is not None and (int(self.per_class) != self.per_class or self.per_class < 1):
      raise ValueError(f"per_class must be a positive integer, got {self.per_class}")

  @property
  def name(self) -> str:
    """"1%", "10%", "1 per class": the key of its result in eval.json."""
    if self.fraction is not None:
      return f"{100 * self.fraction:g}%"
    return f"{int(self.per_class)} per class"

  @property
  def slug(self) -> str:
    """The spec in a file name: "1pct", "0.5pct", "3perclass"."""
    return self.name.replace("%", "pct").replace(" per class", "perclass")

  def count(self, n_class: int) -> int:
    """Examples taken from a class of n_class examples."""
    if self.fraction is not None:
      return min(n_class, max(1, int(round(self.fraction * n_class))))
    return min(n_class, int(self.per_class))

  @classmethod
  def parse(cls, name: str) -> "SubsetSpec":
    """Inverse of `name`."""
    if name.endswith("%"):
      return cls(fraction=float(name[:-1]) / 100)
    if name.endswith(" per class"):
      return cls(per_class=int(name[:-len(" per class")]))
    raise ValueError(f"not a subset spec: {name!r} (expected e.g. '1%' or '3 per class')")


def specs_from_config(eval_config) -> list[SubsetSpec]:
  """config.eval.few_label_fractions and few_label_per_class -> specs, fractions first."""
  return ([SubsetSpec(fraction=float(f)) for f in eval_config.get("few_label_fractions", ())]
          + [SubsetSpec(per_class=int(k)) for k in eval_config.get("few_label_per_class", ())])


def balanced_subset(labels: Any, spec: SubsetSpec, seed: int) -> np.ndarray:
  """labels int [N] -> sorted int64 indices of the class-balanced subset (module docstring)."""
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  parts = []
  # Sorted class order: the RNG stream, hence the subset, depends only on labels and seed.
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    parts.append(rng.permutation(idx)[:spec.count(idx.size)])
  return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)


def labels_checksum(labels: Any) -> str:
  """sha256 of the labels as little-endian int64: ties a saved list to one ordering of one split."""
  return hashlib.sha256(np.asarray(labels).astype("<i8").tobytes()).hexdigest()


def subset_path(dataset: str, split: str, spec: SubsetSpec, seed: int,
                directory: str = SUBSETS_DIR) -> str:
  return os.path.join(directory, f"{dataset}_{split}_{spec.slug}_seed{seed}.txt")


def save_subset(path: str, indices: Any, labels: Any, *, dataset: str, split: str,
                spec: SubsetSpec, seed: int) -> None:
  """Writes `indices` (into `labels`, the whole split) with the header `load_subset` reads."""
  indices = np.sort(np.asarray(indices, np.int64))
  header = {"dataset": dataset, "split": split, "spec": spec.name, "seed": seed,
            "N": indices.size, "split_size": len(labels), "split_labels_sha256": labels_checksum(labels)}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    f.write(f"# {_FORMAT}\n")
    f.writelines(f"# {key}: {value}\n" for key, value in header.items())
    f.writelines(f"{i}\n" for i in indices)


def load_subset(path: str) -> tuple[np.ndarray, dict[str, str]]:
  """-> (indices int64 [N], header {key: value as written})."""
  header, indices = {}, []
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line.startswith("#"):
        key, sep, value = line[1:].partition(":")
        if sep:
          header[key.strip()] = value.strip()
      elif line:
        indices.append(int(line))
  indices = np.asarray(indices, np.int64)
  if "N" in header and int(header["N"]) != indices.size:
    raise SubsetMismatchError(f"{path}: its header says N = {header['N']} but it lists {indices.size} "
                              "indices; the file is damaged, restore it from version control")
  return indices, header


def check_subset(path: str, indices: np.ndarray, header: dict[str, str], labels: Any,
                 spec: SubsetSpec) -> None:
  """Raises SubsetMismatchError unless the saved subset was drawn from exactly these labels
  (`get_subset` has already checked that they are as many as the split it indexes)."""
  labels = np.asarray(labels)
  what = f"{header.get('dataset')} {header.get('split')} {header.get('spec')} seed {header.get('seed')}"
  if header.get("split_labels_sha256") != labels_checksum(labels):
    raise SubsetMismatchError(
        f"the saved few-label subset {path} ({what}) was drawn from labels with another checksum "
        f"than the {labels.size} it is applied to: the split is ordered differently or is another "
        "version of the dataset, so its indices would pick other examples. Evaluate on the split "
        "it was drawn from, or set config.eval.few_label_saved_subsets=False to draw subsets "
        "from these labels instead")
  counts = np.bincount(labels[indices], minlength=labels.max() + 1)
  expected = np.array([spec.count(int(n)) for n in np.bincount(labels, minlength=labels.max() + 1)])
  if header.get("spec") != spec.name or not np.array_equal(counts, expected):
    raise SubsetMismatchError(
        f"the saved few-label subset {path} ({what}) holds {counts.tolist()} examples per class, "
        f"not the {expected.tolist()} that {spec.name!r} takes: regenerate it "
        "(python -m sslax.evaluate.few_label)")


def get_subset(labels: Any, spec: SubsetSpec, seed: int, *, dataset: str, split: str,
               saved: bool = True, directory: str = SUBSETS_DIR) -> tuple[np.ndarray, str]:
  """-> (indices, where they came from).

  With `saved` and a saved list for (dataset, split, spec, seed): the list, after
  `check_subset` (an error when the same-sized split is ordered differently). A list that
  indexes a split of another size cannot describe these labels at all (a truncated split,
  config.eval.max_train_examples, or a small stand-in dataset under the same name): the
  subset is drawn from the labels instead, and the returned description says so.
  Otherwise `balanced_subset`.
  """
  labels = np.asarray(labels)
  path = subset_path(dataset, split, spec, seed, directory)
  drawn = f"drawn from labels, seed {seed}"
  if saved and os.path.exists(path):
    # Relative to the repository when it is one of ours: eval.json should not name a home folder.
    shown = os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.dirname(SUBSETS_DIR)))) \
        if os.path.abspath(path).startswith(SUBSETS_DIR) else path
    indices, header = load_subset(path)
    if int(header.get("split_size", -1)) != labels.size:
      return balanced_subset(labels, spec, seed), (
          f"{drawn} (the saved list {shown} indexes a split of {header.get('split_size')} "
          f"examples, not these {labels.size})")
    check_subset(path, indices, header, labels, spec)
    return indices, f"saved list {shown}"
  return balanced_subset(labels, spec, seed), drawn


def split_labels(source) -> np.ndarray:
  """The labels int [N] of a whole split (a pipeline.Source), in the order its indices count."""
  if getattr(source, "labels", None) is not None:
    return np.asarray(source.labels)
  return np.asarray(source.get(np.arange(len(source)))["label"])


def few_label_probe(train_x: Any, train_y: Any, test_x: Any, test_y: Any, num_classes: int, *,
                    spec: SubsetSpec, draws: int = 1, seed: int = 0, dataset: str, split: str,
                    weight_decays: Sequence[float] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2),
                    per_class_c: float = 1.0, saved: bool = True,
                    directory: str = SUBSETS_DIR) -> dict[str, Any]:
  """Few-label accuracy of frozen features (protocol in the module docstring).

  Args:
    train_x: float [N, D], the features of the whole training split (the subset indexes it);
      train_y: int [N]. test_x: float [M, D]; test_y: int [M].
    spec, draws, seed: draw d is the subset of `spec` at seed `seed + d`.
    dataset, split: name the saved lists; saved: use them where they exist.
    weight_decays: the probe's candidate L2 strengths (fraction subsets).
    per_class_c: scikit-learn's C of the fixed-strength fit on k-per-class subsets.

  Returns:
    {"accuracy": mean test top-1 over draws, "std": population std over draws, "draws",
    "accuracies": per draw, "seeds", "examples": labeled examples per draw, "subsets": where
    each came from, "weight_decays": used per draw, "protocol"}.
  """
  from sslax.evaluate.linear_probe import (
    fit_logistic_regression,
    linear_probe,
    standardization_stats,
    standardize,
  )

  train_x, train_y = np.asarray(train_x, np.float32), np.asarray(train_y)
  # k per class: too few labels to hold any out. Standardize with the statistics of the whole
  # (unlabeled) training split, as its features exist without labels, and fit with sklearn's
  # default strength C = 1, i.e. weight_decay = 1 / (C n) in linear_probe.py's convention.
  full_stats = standardization_stats(train_x) if spec.per_class is not None else None
  accuracies, sources, examples, chosen, seeds = [], [], [], [], []
  for draw in range(draws):
    indices, where = get_subset(train_y, spec, seed + draw, dataset=dataset, split=split,
                                saved=saved, directory=directory)
    x, y = train_x[indices], train_y[indices]
    if full_stats is None:
      result = linear_probe(x, y, test_x, test_y, num_classes, weight_decays=weight_decays,
                            seed=seed + draw)
      accuracy, wd = result["accuracy"], result["weight_decay"]
    else:
      wd = 1.0 / (per_class_c * len(y))
      params, _ = fit_logistic_regression(standardize(x, full_stats), y, num_classes, wd,
                                          max_iters=200)
      logits = np.asarray(standardize(np.asarray(test_x, np.float32), full_stats)) \
          @ np.asarray(params["w"]).T + np.asarray(params["b"])
      accuracy = float(np.mean(np.argmax(logits, 1) == np.asarray(test_y)))
    accuracies.append(float(accuracy))
    sources.append(where)
    examples.append(int(indices.size))
    chosen.append(wd)
    seeds.append(seed + draw)
  protocol = (f"few-label linear probe: {spec.name} of the {train_y.size} labeled training "
              "examples, class-balanced, "
              f"{draws} seeded draw(s) (seeds {seeds[0]}..{seeds[-1]}); ")
  protocol += (f"features standardized with the whole training split's statistics, L-BFGS "
               f"logistic regression with fixed L2 (scikit-learn C={per_class_c}: too few labels "
               "to hold any out)"
               if full_stats is not None else
               "standardized features, L-BFGS logistic regression, L2 chosen on 10% stratified "
               "held-out part of the subset")
  protocol += "; mean and population std of test top-1 over draws"
  return {"accuracy": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
          "draws": draws, "accuracies": accuracies, "seeds": seeds, "examples": examples,
          "subsets": sources, "weight_decays": chosen, "protocol": protocol}


def main(argv: Sequence[str] | None = None) -> None:
  """Writes the saved lists of a TFDS split's labels (see the module docstring)."""
  import argparse

  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument("--dataset", default="fashion_mnist")
  parser.add_argument("--split", default="train")
  parser.add_argument("--fractions", default="0.01,0.1", help="comma-separated; '' for none")
  parser.add_argument("--per_class", default="", help="comma-separated counts, e.g. 1,3")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--out", default=SUBSETS_DIR)
  args = parser.parse_args(argv)

  from sslax.data import pipeline

  source = pipeline.open_source(args.dataset, args.split, data_dir=args.data_dir)
  labels = split_labels(source)
  specs = ([SubsetSpec(fraction=float(f)) for f in args.fractions.split(",") if f]
           + [SubsetSpec(per_class=int(k)) for k in args.per_class.split(",") if k])
  for spec in specs:
    path = subset_path(args.dataset, args.split, spec, args.seed, args.out)
    indices = balanced_subset(labels, spec, args.seed)
    save_subset(path, indices, labels, dataset=args.dataset, split=args.split, spec=spec, seed=args.seed)
    print(f"{path}: {indices.size} indices")


if __name__ == "__main__":
  main()
