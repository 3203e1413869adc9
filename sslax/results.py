"""Reading, aggregating and rendering the results of a named table (sslax/reproduce.py
runs the table; this module only reads what its runs left behind).

  What a table is    Row, Column, Table: the rows, the measurements, the table's settings.
  Reading runs       OUTDIR/ROW/seedS: eval.json, finetune*.json, config.json, run.log or
                     metrics.jsonl (the pretraining time) -> one dict per encoder.
  Aggregating        every (row, seed) of a table -> mean ± std (ddof=1) per row and column,
                     one random-init row per encoder architecture, one raw-input row.
  Rendering          table.md (command, machines from reproduce.json, protocols, missing
                     cells, the papers' numbers from sslax/published.py) and table.csv.

Nothing here runs anything, so the whole of it is tested on fabricated run directories.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import re

from sslax import published

MISSING = "–"  # an empty cell: no run measured it


# ----------------------------------------------------------------------------
# What a table is.
# ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Row:
  """A row of a table: a method, as its config file and the overrides of this row alone."""
  label: str
  config: str                        # relative to the repository
  overrides: tuple[str, ...] = ()    # "KEY=VALUE" config overrides of this row only
  params: tuple[tuple[str, object], ...] = ()  # what the row varies, by name: a figure's axes


@dataclasses.dataclass(frozen=True)
class Column:
  """A measurement. `path` leads into one encoder's entry of a run (see `run_entries`); a
  "*" expands to every key found there (the few-label subsets). `protocol` is the header's
  description when the eval.json gives none."""
  name: str
  path: tuple[str, ...]
  protocol: str
  unit: str = "%"                    # "%": accuracies in [0, 1], shown x100; "s": seconds; "": as is


COLUMNS = (
    Column("online probe", ("online_probe", "accuracy"),
           "linear classifier trained during pretraining on stop-gradient features; "
           "not a frozen-encoder evaluation"),
    Column("linear probe", ("linear_probe", "accuracy"),
           "multinomial logistic regression on frozen standardized features, L-BFGS, L2 chosen "
           "on a held-out 10% of train"),
    Column("kNN", ("knn", "accuracy"), "weighted kNN (Wu et al. 2018), cosine"),
    Column("few-label {key}", ("few_label", "*", "accuracy"),
           "linear probe on {key} of the training labels, mean over draws"),
    Column("fine-tune", ("finetune", "accuracy"), "full fine-tuning with labels (sslax/evaluate/finetune.py)"),
    Column("pretraining time", ("pretraining_seconds",),
           "the trainer's own time: compilation included, data preparation and evaluation not",
           unit="s"),
)
FEW_LABEL_ORDER = ("1%", "10%", "1 per class", "3 per class")


@dataclasses.dataclass(frozen=True)
class Figure:
  """A table's picture. kind "lines": `columns` against the rows' param `x` (log2 axis), one
  line per value of param `series`; "bars": `columns` as bars, a group per row; "curves": the
  first seed's metrics.jsonl `keys` over training, a line per row (plus a panel per column
  key: the table's final values)."""
  kind: str
  columns: tuple[str, ...] = ()      # Column names (few-label ones expanded, e.g. "few-label 1%")
  x: str = ""
  series: str = ""
  keys: tuple[tuple[str, str], ...] = ()  # ("key in metrics.jsonl", "panel title")


@dataclasses.dataclass(frozen=True)
class Table:
  """A named results table: its rows, the settings every row shares, its default seeds.
  The runner (sslax/reproduce.py) reads the settings, seeds and finetune_steps; the title,
  raw_label, note and columns are the rendering's."""
  title: str
  rows: tuple[Row, ...]
  settings: tuple[str, ...] = ()     # "KEY=VALUE" for every row: the shared budget
  seeds: tuple[int, ...] = (0, 1, 2)
  raw_label: str = "raw pixels"
  finetune_steps: int | None = None  # > 0: also fine-tune every encoder (and its random init)
  note: str = ""
  columns: tuple[Column, ...] = COLUMNS
  devices: int = 0                   # > 0: the runs see this many CPU devices (XLA_FLAGS)
  figure: Figure | None = None     # OUTDIR/table.png, drawn by sslax/plot.py


# ----------------------------------------------------------------------------
# Reading runs (pure: tested on fabricated files).
# ----------------------------------------------------------------------------

def read_json(path: str) -> dict | None:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


_TRAINED = re.compile(r"trained steps (\d+)\.\.(\d+) in ([0-9.]+) s")


def pretraining_seconds(workdir: str) -> float | None:
  """The trainer's "trained steps a..b in T s" lines of WORKDIR/run.log, summed over resumed
  segments; else, from WORKDIR/metrics.jsonl, the sum of steps x batch / images_per_second of
  its logged intervals; else None."""
  try:
    with open(os.path.join(workdir, "run.log"), errors="replace") as f:
      segments = [float(m.group(3)) for m in _TRAINED.finditer(f.read())]
    if segments:
      return sum(segments)
  except OSError:
    pass
  batch = (read_json(os.path.join(workdir, "config.json")) or {}).get("batch_size")
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      records = [json.loads(line) for line in f if line.strip()]
  except (OSError, ValueError):
    return None
  # Only the trainer's progress records carry a rate; monitors may log other steps.
  records = sorted((r for r in records if r.get("images_per_second")), key=lambda r: r.get("step", 0))
  if not batch or not records:
    return None
  seconds, last = 0.0, 0
  for record in records:
    seconds += (record["step"] - last) * batch / record["images_per_second"]
    last = record["step"]
  return seconds


def final_metrics(workdir: str) -> dict:
  """The last logged value of every numeric key of WORKDIR/metrics.jsonl ({} without one)."""
  final, step = {}, {}
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      lines = f.read().splitlines()
  except OSError:
    return {}
  for line in lines:
    try:
      record = json.loads(line)
    except ValueError:
      continue  # a run still writing its last line
    if not isinstance(record, dict):
      continue
    at = record.get("step", 0)
    for key, value in record.items():
      if (key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
          and at >= step.get(key, -1)):
        final[key], step[key] = value, at
  return final


def run_entries(workdir: str) -> dict | None:
  """A run's results by encoder, each a dict the columns' paths lead into:
  {"pretrained": eval.json's + online_probe, finetune, pretraining_seconds,
   "random_init": + finetune (of the random init), "raw": raw_features or raw_pixels,
   "model": config.model}; None without eval.json."""
  result = read_json(os.path.join(workdir, "eval.json"))
  if result is None:
    return None
  pretrained = dict(result.get("pretrained") or {})
  if "online_probe" in result:  # the trainer's, of the pretrained encoder only
    pretrained["online_probe"] = result["online_probe"]
  if "heads" in result:  # the projector's and predictor's outputs (eval.heads)
    pretrained["heads"] = result["heads"]
  final = final_metrics(workdir)
  if final:
    pretrained["final"] = final
  finetune = read_json(os.path.join(workdir, "finetune.json"))
  if finetune is not None:
    pretrained["finetune"] = finetune
  seconds = pretraining_seconds(workdir)
  if seconds is not None:
    pretrained["pretraining_seconds"] = seconds
  entries = {"pretrained": pretrained, "step": result.get("step"),
             "model": (read_json(os.path.join(workdir, "config.json")) or {}).get("model")}
  if "random_init" in result:
    entries["random_init"] = dict(result["random_init"])
    finetune = read_json(os.path.join(workdir, "finetune_random_init.json"))
    if finetune is not None:
      entries["random_init"]["finetune"] = finetune
  raw = result.get("raw_features", result.get("raw_pixels"))  # older runs: raw_pixels
  if raw is not None:
    entries["raw"] = raw
  return entries


def lookup(entry, path):
  """entry[path[0]][path[1]]...; None where the path leads nowhere (a run without that
  evaluation)."""
  for key in path:
    if not isinstance(entry, dict) or key not in entry:
      return None
    entry = entry[key]
  return entry


def model_key(model) -> str:
  """A comparable form of a config.model dict (tuples and lists alike)."""
  return json.dumps(json.loads(json.dumps(model)), sort_keys=True)


# ----------------------------------------------------------------------------
# Aggregating over seeds.
# ----------------------------------------------------------------------------

def describe_model(model: dict | None) -> str:
  """A short name of an encoder config, for the random-init rows."""
  if not model:
    return "encoder"
  name = str(model.get("name", "encoder"))
  if name == "convnet":
    return f"ConvNet {tuple(model.get('widths', ()))}"
  if name.startswith("vit"):
    return (f"ViT ({model.get('patch_size')}px patches, {model.get('hidden_dim', '?')} wide, "
            f"{model.get('depth', '?')} deep)")
  return name


def expand_columns(columns, entries: list[dict]) -> list[tuple[Column, tuple[str, ...], str, str]]:
  """-> [(column, concrete path, name, protocol)]: "*" paths expanded to the keys present in
  `entries` (few-label subsets in their usual order), columns no entry has left out, the
  protocol in the eval.json's own words where it has them."""
  out = []
  for column in columns:
    if "*" in column.path:
      star = column.path.index("*")
      keys = {k for e in entries if isinstance(lookup(e, column.path[:star]), dict)
              for k in lookup(e, column.path[:star])}
      keys = [k for k in FEW_LABEL_ORDER if k in keys] + sorted(keys - set(FEW_LABEL_ORDER))
      paths = [(column.path[:star] + (k,) + column.path[star + 1:], k) for k in keys]
    else:
      paths = [(column.path, "")]
    for path, key in paths:
      if not any(lookup(e, path) is not None for e in entries):
        continue
      protocols = []
      for e in entries:
        p = lookup(e, path[:-1] + ("protocol",)) if len(path) > 1 else None
        if isinstance(p, str) and p not in protocols:
          protocols.append(p)
      protocol = " / ".join(protocols) or column.protocol.format(key=key)
      name = column.name.format(key=key)
      out.append((column, path, name, protocol))
  return out


def mean_std(values: list[float]) -> tuple[float | None, float | None, int]:
  """(mean, sample std with ddof=1 or None below 2 values, n)."""
  n = len(values)
  if not n:
    return None, None, 0
  mean = sum(values) / n
  std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else None
  return mean, std, n


def aggregate(table: Table, rows: list[Row], seeds: list[int], outdir: str,
              status: dict | None = None) -> dict:
  """Reads every OUTDIR/ROW/seedS and builds the table's rows: -> {"columns": [(column,
  path, name, protocol)], "rows": [{"label", "kind", "config", "cells": [(mean, std, n)]}],
  "problems": [why a cell is missing], "steps": [pretraining steps found]}."""
  status = status or {}
  runs = {(row.label, seed): run_entries(os.path.join(outdir, row.label, f"seed{seed}"))
          for row in rows for seed in seeds}
  per_row = []  # (label, kind, config, [entry per seed])
  random_init = {}  # model key -> (model, [entry per seed], [row labels it came from])
  raw, raw_from = [], []
  for seed in seeds:
    seen_models, have_raw = set(), False
    for row in rows:
      entries = runs[(row.label, seed)]
      if entries is None:
        continue
      key = model_key(entries["model"])
      if "random_init" in entries and key not in seen_models:
        seen_models.add(key)
        model, found, sources = random_init.setdefault(key, (entries["model"], [], []))
        found.append(entries["random_init"])
        if row.label not in sources:
          sources.append(row.label)
      if "raw" in entries and not have_raw:
        have_raw = True
        raw.append(entries["raw"])
        if row.label not in raw_from:
          raw_from.append(row.label)
  for row in rows:
    found = [runs[(row.label, s)]["pretrained"] for s in seeds if runs[(row.label, s)] is not None]
    per_row.append((row.label, "method", row.config, found))
  for model, found, sources in random_init.values():
    label = f"random-init {describe_model(model)}"
    per_row.append((label, "random-init", f"(from the {', '.join(sources)} runs)", found))
  if raw:
    # The evaluation names what its raw baseline reads ("pixels / 255"); older runs do not.
    inputs = sorted({str(r["input"]) for r in raw if r.get("input")})
    label = f"raw inputs ({', '.join(inputs)})" if inputs else table.raw_label
    per_row.append((label, "raw", f"(from the {', '.join(raw_from)} runs)", raw))

  columns = expand_columns(table.columns, [e for *_, found in per_row for e in found])
  out_rows = []
  for label, kind, config, found in per_row:
    cells = [mean_std([100 * v if column.unit == "%" else v for v in
                       (lookup(e, path) for e in found) if isinstance(v, (int, float))])
             for column, path, *_ in columns]
    out_rows.append(dict(label=label, kind=kind, config=config, cells=cells))
  problems = []
  for row in rows:
    for seed in seeds:
      why = status.get((row.label, seed))
      if why:
        problems.append(f"{row.label} seed {seed}: {why}")
      elif runs[(row.label, seed)] is None:
        problems.append(f"{row.label} seed {seed}: no eval.json in "
                        f"{os.path.join(outdir, row.label, f'seed{seed}')}")
  steps = sorted({e["step"] for e in runs.values() if e is not None and e.get("step") is not None})
  walls = [(read_json(os.path.join(outdir, row.label, f"seed{seed}", "reproduce.json")) or {}).get("wall_seconds")
           for row in rows for seed in seeds]
  walls = [w for w in walls if isinstance(w, (int, float))]
  return dict(columns=columns, rows=out_rows, problems=problems, steps=steps,
              params={row.label: dict(row.params) for row in rows},
              wall_seconds=(sum(walls), len(walls)) if walls else None)


# ----------------------------------------------------------------------------
# Rendering.
# ----------------------------------------------------------------------------

def format_cell(mean, std, n, n_seeds: int, unit: str) -> str:
  """"mean ± std", "(n=k)" added where fewer than all the seeds measured it."""
  if mean is None:
    return MISSING
  if unit == "":  # a plain quantity (a std, a rank): three significant digits
    text = f"{mean:.3g}" + ("" if std is None else f" ± {std:.2g}")
    return text + (f" (n={n})" if n != n_seeds else "")
  digits = 2 if unit == "%" else 0
  text = f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")
  return text + (f" (n={n})" if n != n_seeds else "")


def machine_line(info: dict) -> str:
  """One line of a machine record (reproduce.json's "machine"); "" for an empty one."""
  keys = ("platform", "cpus", "devices", "python", "jax", "jaxlib")
  return ", ".join(f"{k} {info[k]}" for k in keys if info.get(k))


def recorded_once(workdirs, describe) -> list[str]:
  """describe(reproduce.json's record) of the runs in WORKDIRS, each distinct text once, in the
  runs' order (a run without a record, or whose description is empty, adds nothing)."""
  lines = []
  for workdir in workdirs:
    line = describe(read_json(os.path.join(workdir, "reproduce.json")) or {})
    if line and line not in lines:
      lines.append(line)
  return lines


def machine_lines(workdirs) -> list[str]:
  """The machines the runs in WORKDIRS were made on, each once, in the runs' order."""
  return recorded_once(workdirs, lambda record: machine_line(record.get("machine") or {}))


def invocation_lines(workdirs) -> list[str]:
  """The `python -m sslax.reproduce` commands that made the runs in WORKDIRS, each once: a
  table rebuilt with --table_only, or grown seed by seed, says which commands ran its cells."""
  return recorded_once(workdirs, lambda record: record.get("invocation", ""))


def markdown(name: str, table: Table, agg: dict, seeds: list[int], *, command: str,
             machines: list[str], settings: list[str], outdir: str = "OUTDIR",
             invocations: list[str] = ()) -> str:
  """table.md: what made it and where, the table, each column's protocol, the missing cells
  and why, and the published numbers of the rows' paper-scale configs."""
  n = len(seeds)
  # Short headers, each naming its protocol; the protocol's every setting in a note below.
  headers = ["row"] + [f"{measured}{f' ({column.unit})' if column.unit else ''} [{i}]"
                       for i, (column, _, measured, _) in enumerate(agg["columns"], 1)]
  lines = [f"# {name}: {table.title}", "",
           f"Made by `{command}` on {datetime.date.today().isoformat()}.",
           *([f"Its runs made by: {'; '.join(f'`{c}`' for c in invocations)}."]
             if list(invocations) not in ([], [command]) else []),
           "Runs made on: " + ("; ".join(machines) if machines else "unknown (no reproduce.json)") + ".",
           f"Settings of every row: {', '.join(settings) or 'each config file as written'}; "
           f"pretraining steps in the eval.json files: {', '.join(map(str, agg['steps'])) or MISSING}.",
           *([f"Wall time of the {agg['wall_seconds'][1]} runs (each one `sslax.main` process: "
              f"pretraining and evaluation): {agg['wall_seconds'][0] / 60:.1f} min."]
             if agg.get("wall_seconds") else []),
           f"Each cell: mean ± std over n = {n} seed{'s' * (n != 1)} ({', '.join(map(str, seeds))}; "
           "std with ddof=1), "
           f"fewer where marked (n=k); {MISSING}: not measured. Test-split top-1 accuracy in %, "
           "time in seconds. The online probe is trained alongside pretraining and is not a "
           "frozen-encoder evaluation.", ""]
  if table.note:
    lines += [table.note, ""]
  lines += ["| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
  for row in agg["rows"]:
    cells = [format_cell(*cell, n, column.unit) for (column, *_), cell in zip(agg["columns"], row["cells"])]
    label = row["label"] if row["kind"] == "method" else f"{row['label']} {row['config']}"
    lines.append("| " + " | ".join([label] + cells) + " |")
  lines += [""] + [f"[{i}] {measured}: {protocol}."
                   for i, (_, _, measured, protocol) in enumerate(agg["columns"], 1)]
  lines += ["", f"Runs: {outdir}/ROW/seedS (eval.json, run.log, reproduce.json); rows' configs: "
            + ", ".join(f"{r['label']} `{r['config']}`" for r in agg["rows"] if r["kind"] == "method") + "."]
  if agg["problems"]:
    lines += ["", "Missing cells:", *[f"- {p}" for p in agg["problems"]]]
  entries = published.for_methods([r["label"] for r in agg["rows"] if r["kind"] == "method"])
  lines += ["", "## Published numbers for the paper-scale configs", ""]
  if entries:
    lines += ["What each row's paper-scale recipe reaches at the scale it was written for "
              "(ImageNet-1k or CIFAR-10, from sslax/published.py); not comparable with the CPU numbers above.", "",
              published.markdown(entries)]
  else:
    lines.append("No paper-scale config of these rows has a published number in sslax/published.py.")
  return "\n".join(lines) + "\n"


def csv_text(agg: dict) -> str:
  """table.csv: one line per row, every column's mean, std (4 decimals) and n."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  header = ["row", "kind", "config"]
  for column, _, name, _ in agg["columns"]:  # the protocols are spelt out in table.md
    h = f"{name} ({column.unit})"
    header += [f"{h} mean", f"{h} std", f"{h} n"]
  writer.writerow(header)
  for row in agg["rows"]:
    cells = []
    for mean, std, n in row["cells"]:
      cells += ["" if mean is None else round(mean, 4), "" if std is None else round(std, 4), n]
    writer.writerow([row["label"], row["kind"], row["config"]] + cells)
  return out.getvalue()


def write_table(name: str, table: Table, agg: dict, seeds: list[int], outdir: str, *, command: str,
                machines: list[str], settings: list[str], invocations: list[str] = ()) -> str:
  """Writes OUTDIR/table.md and OUTDIR/table.csv; -> the Markdown."""
  text = markdown(name, table, agg, seeds, command=command, machines=machines, settings=settings,
                  outdir=outdir, invocations=invocations)
  os.makedirs(outdir, exist_ok=True)
  with open(os.path.join(outdir, "table.md"), "w") as f:
    f.write(text)
  with open(os.path.join(outdir, "table.csv"), "w") as f:
    f.write(csv_text(agg))
  return text
