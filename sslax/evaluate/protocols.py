"""The registry of evaluation protocols: what config.eval.protocols may name.

A protocol turns the (features, labels) of the train and test splits of one encoder into a
result dict, which eval.json holds under the protocol's name. Each is declared once, as a
`Protocol` passed to `register`; the frozen evaluation (frozen.py), the config validation
(`validate_eval`) and the printed table all read it from `PROTOCOLS`, so a new protocol is
one `register(Protocol(...))` beside its functions and nothing else.

  linear_probe  L-BFGS logistic regression, L2 chosen on a held-out split (linear_probe.py)
  knn           weighted kNN of Wu et al. 2018 (knn.py)
  sgd_probe     SimCLR/BYOL's SGD linear probe (sgd_probe.py)
  few_label     the linear probe on class-balanced 1% / 10% / k-per-class subsets (few_label.py)
  diagnostics   RankMe, uniformity, normalized std and a collapse flag on the test features
                (diagnostics.py)

The papers' linear evaluation (a classifier trained on augmented images through the frozen
encoder) is a training run, not a protocol on stored features: linear_eval.py.

Registration order is the order in which protocols run, their keys in eval.json and their
columns in the table, whatever order config.eval.protocols lists them in.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import ml_collections

from sslax.errors import require
from sslax.evaluate import diagnostics as diagnostics_lib
from sslax.evaluate import few_label as few_label_lib
from sslax.evaluate import sgd_probe as sgd_probe_lib
from sslax.evaluate.knn import knn_accuracy
from sslax.evaluate.linear_probe import linear_probe

LINEAR_PROBE_PROTOCOL = "linear probe (L-BFGS logistic regression, L2 chosen on a held-out split)"


@dataclasses.dataclass(frozen=True)
class Context:
  """What a protocol may need besides the features and the config."""
  num_classes: int  # labels lie in [0, num_classes)
  dataset: str      # the evaluated dataset and the split train_x comes from, which
  train_split: str  # name few_label's saved subsets


def no_settings(config: ml_collections.ConfigDict) -> None:
  """The `validate` of a protocol with nothing of its own to check."""


def no_warning(result: dict) -> str | None:
  return None


def percent(result: dict | None) -> str:
  """A table cell: "12.34%", "12.34±0.56%" over several draws, "-" where nothing ran."""
  if result is None:
    return "-"
  text = f"{100 * result['accuracy']:.2f}"
  if result.get("draws", 1) > 1:
    text += f"±{100 * result['std']:.2f}"
  return text + "%"


@dataclasses.dataclass(frozen=True)
class Protocol:
  """One evaluation protocol: how it runs, how its result is worded, what it checks."""
  name: str  # its key in config.eval.protocols and in each encoder's entry of eval.json
  # (config, train_x float [N, D], train_y int [N], test_x float [M, D], test_y int [M],
  # Context) -> the result, with a "protocol" description and the settings it used; or None
  # when the config asks it for nothing (few_label without subsets), leaving no key.
  run: Callable[..., dict[str, Any] | None]
  summarize: Callable[[dict], str]  # result -> its words in the line printed per encoder
  cells: Callable[[dict], dict[str, str]]  # result -> {table column: cell}
  # (config) -> None, raising ConfigError for a bad value of the protocol's own settings.
  # It runs for every registered protocol, selected or not: its settings are in every config.
  validate: Callable[[ml_collections.ConfigDict], None] = no_settings
  warning: Callable[[dict], str | None] = no_warning  # result -> what the user must hear
  on_raw_inputs: bool = False  # also run on the raw-input baseline (baselines.py)


PROTOCOLS: dict[str, Protocol] = {}
# The protocols that config.eval.heads runs on the heads' outputs (frozen.py).
HEAD_PROTOCOLS = ("linear_probe", "knn")


def register(protocol: Protocol) -> Protocol:
  """Adds `protocol` to `PROTOCOLS`, after those already registered."""
  if protocol.name in PROTOCOLS:
    raise ValueError(f"an evaluation protocol named {protocol.name!r} is already registered")
  PROTOCOLS[protocol.name] = protocol
  return protocol


def validate_eval(config: ml_collections.ConfigDict) -> None:
  """The eval block: protocol names, every protocol's own settings, transfer data."""
  ev = config.eval
  unknown = sorted(set(ev.get("protocols", ())) - set(PROTOCOLS))
  require(not unknown, "eval.protocols",
          f"unknown protocol(s) {unknown}; choose from {list(PROTOCOLS)}")
  for protocol in PROTOCOLS.values():
    protocol.validate(config)
  data = ev.get("data") or {}
  if data.get("name"):
    require(data.get("image_size", config.data.image_size) == config.data.image_size,
            "eval.data.image_size", f"the encoder takes data.image_size = {config.data.image_size}; "
            "leave it out (the evaluated images are resized to it)")


# ----------------------------------------------------------------------------- linear_probe


def run_linear_probe(config, train_x, train_y, test_x, test_y, context: Context) -> dict:
  weight_decays = tuple(config.eval.probe_weight_decays)
  probe = linear_probe(train_x, train_y, test_x, test_y, context.num_classes,
                       weight_decays=weight_decays, seed=config.seed)
  probe["protocol"] = LINEAR_PROBE_PROTOCOL
  probe["settings"] = {"weight_decays": list(weight_decays), "val_fraction": 0.1,
                       "standardized": True, "max_iters": 100, "tol": 1e-4, "seed": config.seed}
  return probe


register(Protocol(
    "linear_probe", run_linear_probe,
    summarize=lambda r: f"linear probe {100 * r['accuracy']:.2f}%",
    cells=lambda r: {"linear probe": percent(r)},
    on_raw_inputs=True))


# ----------------------------------------------------------------------------- knn


def run_knn(config, train_x, train_y, test_x, test_y, context: Context) -> dict:
  k, temperature = config.eval.knn_k, config.eval.knn_temperature
  return {"accuracy": float(knn_accuracy(train_x, train_y, test_x, test_y, context.num_classes,
                                         k=k, temperature=temperature)),
          "protocol": f"weighted kNN (Wu et al. 2018), cosine, k={k}, T={temperature}",
          "settings": {"k": k, "temperature": temperature}}


def validate_knn(config: ml_collections.ConfigDict) -> None:
  require(config.eval.knn_k > 0, "eval.knn_k", "must be > 0")


register(Protocol(
    "knn", run_knn, validate=validate_knn,
    summarize=lambda r: f"kNN {100 * r['accuracy']:.2f}%",
    cells=lambda r: {"kNN": percent(r)}))


# ----------------------------------------------------------------------------- sgd_probe


def run_sgd_probe(config, train_x, train_y, test_x, test_y, context: Context) -> dict:
  return sgd_probe_lib.sgd_probe(train_x, train_y, test_x, test_y, context.num_classes,
                                 config.eval.get("sgd_probe"), seed=config.seed)


def validate_sgd_probe(config: ml_collections.ConfigDict) -> None:
  ev = config.eval
  if "sgd_probe" not in ev:  # sgd_probe.py's defaults
    return
  for key in ("batch_size", "epochs"):
    require(isinstance(ev.sgd_probe[key], int) and ev.sgd_probe[key] > 0, f"eval.sgd_probe.{key}",
            f"must be a positive integer, got {ev.sgd_probe[key]!r}")
  require(ev.sgd_probe.base_lr > 0, "eval.sgd_probe.base_lr", "must be > 0")
  require(0 <= ev.sgd_probe.momentum < 1, "eval.sgd_probe.momentum", "must be in [0, 1)")
  require(ev.sgd_probe.weight_decay >= 0, "eval.sgd_probe.weight_decay", "must be >= 0")


register(Protocol(
    "sgd_probe", run_sgd_probe, validate=validate_sgd_probe,
    summarize=lambda r: f"SGD probe {100 * r['accuracy']:.2f}%",
    cells=lambda r: {"SGD probe": percent(r)}))


# ----------------------------------------------------------------------------- few_label


def run_few_label(config, train_x, train_y, test_x, test_y, context: Context) -> dict | None:
  """{subset name ("1%", "3 per class"): its result}, or None when no subset is configured."""
  ev = config.eval
  specs = few_label_lib.specs_from_config(ev)
  if not specs:
    return None
  return {spec.name: few_label_lib.few_label_probe(
              train_x, train_y, test_x, test_y, context.num_classes, spec=spec,
              draws=ev.get("few_label_draws", 1), seed=ev.get("few_label_seed", 0),
              dataset=context.dataset, split=context.train_split,
              weight_decays=tuple(ev.probe_weight_decays),
              per_class_c=ev.get("few_label_per_class_c", 1.0),
              saved=ev.get("few_label_saved_subsets", True))
          for spec in specs}


def validate_few_label(config: ml_collections.ConfigDict) -> None:
  ev = config.eval
  for f in ev.get("few_label_fractions", ()):
    require(0 < f <= 1, "eval.few_label_fractions", f"fractions of each class in (0, 1], got {f!r}")
  for k in ev.get("few_label_per_class", ()):
    require(isinstance(k, int) and k > 0, "eval.few_label_per_class",
            f"positive integers (labeled examples per class), got {k!r}")
  draws = ev.get("few_label_draws", 1)
  require(isinstance(draws, int) and draws > 0, "eval.few_label_draws",
          f"must be a positive integer, got {draws!r}")


register(Protocol(
    "few_label", run_few_label, validate=validate_few_label,
    summarize=lambda r: ", ".join(f"{name} {100 * e['accuracy']:.2f}%" for name, e in r.items()),
    cells=lambda r: {f"few-label {name}": percent(e) for name, e in r.items()},
    on_raw_inputs=True))


# ----------------------------------------------------------------------------- diagnostics


def run_diagnostics(config, train_x, train_y, test_x, test_y, context: Context) -> dict:
  """On the test features alone: the diagnostics need no labels."""
  diag = diagnostics_lib.summary(
      test_x, collapse_threshold=config.eval.get("collapse_threshold",
                                                 diagnostics_lib.COLLAPSE_THRESHOLD))
  diag["protocol"] = ("RankMe (Garrido et al. 2023), uniformity (Wang & Isola 2020, t=2), std of "
                      "l2-normalized features (SimSiam) on the first "
                      f"{diag['examples']} test-split features")
  return diag


register(Protocol(
    "diagnostics", run_diagnostics,
    summarize=lambda r: f"RankMe {r['rankme']:.1f}",
    cells=lambda r: {"RankMe": f"{r['rankme']:.1f}"},
    warning=diagnostics_lib.collapse_warning))

