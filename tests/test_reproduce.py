"""sslax/results.py: the table from fabricated run directories (mean ± std against the
statistics module, protocols in the headers, published rows). sslax/reproduce.py: resuming
without rerunning (the subprocess faked), the messages for an unknown table or a missing
config file, the published numbers' configs, and the planned commands against sslax.main's
key check. One real table: a tiny SimCLR row run by the real `python -m sslax.main` (2 steps,
1 seed), its table checked against the eval.json and run.log the run wrote (about 40 s on
this project's 2-core CPU machine, most of it imports and compilation)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import statistics

import pytest

from sslax import presets, published, reproduce, results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVNET = {"name": "convnet", "widths": [64, 128, 256]}
VIT = {"name": "vit", "patch_size": 4, "hidden_dim": 128, "depth": 4}


def write(path: str, payload) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(payload if isinstance(payload, str) else json.dumps(payload))


def fake_eval(step, probe, knn, *, online=None, few=None, random_init=None, raw=None, raw_key="raw_features"):
  """An eval.json of the schema the evaluation writes; absent arguments leave fields out."""
  pretrained = {"linear_probe": {"accuracy": probe, "protocol": "L-BFGS logistic regression (fake)"},
                "knn": {"accuracy": knn, "protocol": "weighted kNN, k=200, T=0.07"}, "feature_dim": 256}
  if few:
    pretrained["few_label"] = {k: {"accuracy": v, "std": 0.01, "draws": 5, "protocol": f"probe on {k}, 5 draws"}
                               for k, v in few.items()}
  result = {"step": step, "dataset": "fashion_mnist", "pretrained": pretrained}
  if online is not None:
    result["online_probe"] = {"accuracy": online, "step": step, "protocol": "online linear probe (fake)"}
  if random_init is not None:
    result["random_init"] = {"linear_probe": {"accuracy": random_init[0]}, "knn": {"accuracy": random_init[1]}}
  if raw is not None:  # the newer raw_features entry names its input
    result[raw_key] = {"linear_probe": {"accuracy": raw},
                       **({"input": "pixels / 255"} if raw_key == "raw_features" else {})}
  return result


def cells_of(markdown: str, label: str) -> list[str]:
  line = next(l for l in markdown.splitlines() if l.startswith(f"| {label}"))
  return [c.strip() for c in line.strip().strip("|").split("|")]


def header_of(markdown: str) -> list[str]:
  line = next(l for l in markdown.splitlines() if l.startswith("| row |"))
  return [c.strip() for c in line.strip().strip("|").split("|")]


def test_table_from_fabricated_runs(tmp_path):
  out = str(tmp_path)
  probes, knns, onlines = [0.80, 0.82, 0.87], [0.70, 0.71, 0.75], [0.60, 0.62, 0.64]
  raws = [0.843, 0.841, 0.845]
  for seed in range(3):
    d = f"{out}/simclr/seed{seed}"
    write(f"{d}/eval.json", fake_eval(
        100, probes[seed], knns[seed], online=onlines[seed],
        few={"1%": 0.5 + 0.05 * seed, **({"10%": 0.7} if seed else {})},
        random_init=(0.78 + 0.01 * seed, 0.70), raw=raws[seed],
        raw_key="raw_pixels" if seed == 0 else "raw_features"))  # older runs wrote raw_pixels
    write(f"{d}/config.json", {"model": CONVNET, "total_steps": 100, "batch_size": 256})
    # A resumed run: two segments of the trainer's line add up.
    write(f"{d}/run.log", "INFO sslax.train: trained steps 0..60 in 6.0 s\nstep ...\n"
                          f"INFO sslax.train: trained steps 60..100 in {4.0 + seed} s\n")
  for seed in range(2):  # mae seed 2 never finished
    d = f"{out}/mae/seed{seed}"
    write(f"{d}/eval.json", fake_eval(100, 0.70, 0.60, random_init=(0.65, 0.55)))
    write(f"{d}/config.json", {"model": VIT, "total_steps": 100, "batch_size": 256})
  # No run.log: the time comes from metrics.jsonl (intervals of 50 steps at 256 images);
  # the monitors' record without a rate is not an interval.
  write(f"{out}/mae/seed0/metrics.jsonl", "\n".join(json.dumps(r) for r in (
      {"step": 50, "loss": 1.0, "images_per_second": 256 * 50 / 10.0}, {"step": 75, "rankme": 3.0},
      {"step": 100, "loss": 0.9, "images_per_second": 256 * 50 / 5.0})))
  table = results.Table("test", (results.Row("simclr", "configs/simclr_fashion_mnist.py"),
                                 results.Row("mae", "configs/mae_fashion_mnist.py")))
  agg = results.aggregate(table, list(table.rows), [0, 1, 2], out)
  text = results.markdown("test", table, agg, [0, 1, 2], command="python -m sslax.reproduce --table=test",
                          machines=["platform TestOS, cpus 2, jax 9.9"], settings=["total_steps=100"])

  headers = header_of(text)
  assert headers == ["row", "online probe (%) [1]", "linear probe (%) [2]", "kNN (%) [3]", "few-label 1% (%) [4]",
                     "few-label 10% (%) [5]", "pretraining time (s) [6]"]  # no fine-tune: no finetune.json
  for note in ("[1] online probe: online linear probe (fake).", "[2] linear probe: L-BFGS logistic regression (fake).",
               "[3] kNN: weighted kNN, k=200, T=0.07.", "[4] few-label 1%: probe on 1%, 5 draws.",
               "[6] pretraining time: the trainer's own time: compilation included, data preparation "
               "and evaluation not."):
    assert note in text.splitlines()

  def pm(values, digits=2):
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

  simclr = cells_of(text, "simclr")
  assert simclr[1:] == [pm([60, 62, 64]), pm([80, 82, 87]), pm([70, 71, 75]), pm([50, 55, 60]),
                        "70.00 ± 0.00 (n=2)", pm([10, 11, 12], 0)]
  assert cells_of(text, "mae")[1:] == ["–", "70.00 ± 0.00 (n=2)", "60.00 ± 0.00 (n=2)", "–", "–", "15 (n=1)"]
  # One random-init row per encoder, from the first run of that encoder; raw inputs once,
  # from raw_pixels and raw_features alike.
  convnet = cells_of(text, "random-init ConvNet (64, 128, 256) (from the simclr runs)")
  assert convnet[1:4] == ["–", pm([78, 79, 80]), "70.00 ± 0.00"]
  vit = cells_of(text, "random-init ViT (4px patches, 128 wide, 4 deep) (from the mae runs)")
  assert vit[1:4] == ["–", "65.00 ± 0.00 (n=2)", "55.00 ± 0.00 (n=2)"]
  assert cells_of(text, "raw inputs (pixels / 255) (from the simclr runs)")[1:4] == ["–", pm([84.3, 84.1, 84.5]), "–"]
  assert "mae seed 2: no eval.json" in text
  assert "Each cell: mean ± std over n = 3 seeds (0, 1, 2; std with ddof=1)" in text
  assert "`python -m sslax.reproduce --table=test`" in text and "platform TestOS, cpus 2" in text

  # The papers' numbers for these rows' paper-scale configs, with their sources.
  assert "## Published numbers for the paper-scale configs" in text
  assert ("| simclr | `configs/simclr_imagenet.py` (100) | ResNet-50 | linear probe | 1000 | ImageNet-1k | "
          "69.3% | Chen et al. 2020, SimCLR, Table 6, arXiv:2002.05709 |  |") in text
  assert ("| simclr | `configs/simclr_cifar10.py` (1000) | ResNet-18 (CIFAR stem) | linear (solo-learn) | "
          "1000 | CIFAR-10 | 90.74% |") in text
  assert "| mae | `configs/mae_imagenet.py` (800) | ViT-B/16 | fine-tune | 1600 | ImageNet-1k | 83.6% |" in text
  assert "byol" not in text.split("## Published")[1]  # only the table's rows

  rows = {r["row"]: r for r in csv.DictReader(io.StringIO(results.csv_text(agg)))}
  probe = "linear probe (%)"
  assert float(rows["simclr"][f"{probe} mean"]) == pytest.approx(83.0)
  assert float(rows["simclr"][f"{probe} std"]) == pytest.approx(statistics.stdev([80, 82, 87]), abs=1e-4)
  assert rows["simclr"][f"{probe} n"] == "3" and rows["mae"][f"{probe} n"] == "2"
  assert rows["mae"][f"{probe} std"] == "0.0" and rows["mae"]["online probe (%) mean"] == ""
  assert rows["raw inputs (pixels / 255)"]["kind"] == "raw"
  assert rows["simclr"]["config"] == "configs/simclr_fashion_mnist.py"


def test_one_seed_has_no_std():
  assert results.mean_std([0.5]) == (0.5, None, 1)
  assert results.format_cell(50.0, None, 1, 1, "%") == "50.00"
  assert results.format_cell(None, None, 0, 3, "%") == "–"


class FakeRuns:
  """Stands in for subprocess.call of `python -m sslax.main`: writes the eval.json a finished
  run would (baselines as the flags ask), or fails where told."""

  def __init__(self, fail=()):
    self.calls, self.fail, self.envs = [], set(fail), []

  def __call__(self, cmd, stdout=None, stderr=None, env=None):
    flags = dict(a.removeprefix("--").split("=", 1) for a in cmd[3:])
    workdir, seed = flags["workdir"], int(flags["config.seed"])
    self.calls.append(cmd)
    self.envs.append(env)
    stdout.write("INFO sslax.train: trained steps 0..7 in 3.0 s\n")
    label = os.path.basename(os.path.dirname(workdir))
    if (label, seed) in self.fail:
      return 1
    if flags.get("mode") == "finetune":
      random = flags["config.finetune.init"] == "random"
      write(f"{workdir}/finetune{'_random_init' * random}.json",
            {"steps": int(flags["config.finetune.total_steps"]), "accuracy": 0.5 if random else 0.9})
      return 0
    steps = int(flags["config.total_steps"])
    write(f"{workdir}/config.json", {"model": CONVNET, "total_steps": steps, "batch_size": 16})
    raw = any(k.startswith("config.eval.raw") and k.endswith("_baseline") and v == "True"
              for k, v in flags.items())
    write(f"{workdir}/eval.json", fake_eval(
        steps, 0.8 + 0.01 * seed, 0.7, raw=0.84 if raw else None,
        random_init=(0.75, 0.65) if flags["config.eval.random_init_baseline"] == "True" else None))
    return 0


@pytest.fixture
def fake(monkeypatch):
  runs = FakeRuns(fail={("jigsaw", 1)})
  monkeypatch.setattr(reproduce.subprocess, "call", runs)
  monkeypatch.setattr(reproduce, "machine_info", lambda python, env=None: {"platform": "TestOS", "cpus": 2, "jax": "9.9"})
  return runs


def test_runs_then_resumes_without_rerunning(tmp_path, fake, capsys):
  out = str(tmp_path / "pretext")
  table = reproduce.TABLES["pretext"]
  go = lambda steps, **kw: reproduce.reproduce(  # noqa: E731
      "pretext", table, rows=list(table.rows), seeds=[0, 1], outdir=out, overrides=[f"total_steps={steps}"],
      command="python -m sslax.reproduce --table=pretext", python="python", **kw)

  assert go(7) == 1  # jigsaw seed 1 failed
  assert len(fake.calls) == 6
  flags = [" ".join(c) for c in fake.calls]
  # Baselines only in each seed's first run of the (shared) encoder: rotation's.
  assert [("random_init_baseline=True" in f, bool(re.search(r"eval\.raw\w*_baseline=True", f)))
          for f in flags] == [
      (True, True), (True, True), (False, False), (False, False), (False, False), (False, False)]
  assert all("--config.total_steps=7" in f and "--config.batch_size=256" in f for f in flags)
  assert "--config.seed=1" in flags[1] and f"--workdir={out}/rotation/seed1" in flags[1]
  with open(f"{out}/jigsaw/seed1/run.log") as f:
    assert f.read().startswith("$ python -m sslax.main --config=")
  with open(f"{out}/rotation/seed0/reproduce.json") as f:
    saved = json.load(f)
  assert saved["returncode"] == 0 and saved["machine"]["platform"] == "TestOS"
  with open(f"{out}/table.md") as f:
    text = f.read()
  assert "jigsaw seed 1: failed (exit 1" in text
  assert cells_of(text, "jigsaw")[1] == "80.00 (n=1)"  # linear probe (no online probe in these runs)
  assert "Settings of every row: total_steps=7, batch_size=256;" in text
  assert cells_of(text, "rotation")[-1] == "3 ± 0"  # the trainer's time from run.log
  assert sum(l.startswith("| random-init") for l in text.splitlines()) == 1
  assert "No paper-scale config of these rows has a published number" in text

  capsys.readouterr()
  fake.fail.clear()
  assert go(7) == 0  # only the failed run runs again
  assert len(fake.calls) == 7 and f"--workdir={out}/jigsaw/seed1" in fake.calls[-1]
  assert capsys.readouterr().err.count("done already") == 5
  assert go(7) == 0 and len(fake.calls) == 7  # everything done: only the table is rebuilt
  assert go(7, dry_run=True) == 0 and len(fake.calls) == 7
  assert capsys.readouterr().out.count("# done already: python -m sslax.main") == 6

  # Other settings in the same workdirs: an error for each cell, never a silent mix.
  assert go(9) == 1 and len(fake.calls) == 7
  assert "holds a run with other settings" in capsys.readouterr().err
  with open(f"{out}/table.csv") as f:
    assert sum(1 for _ in f) == 1 + 3 + 2  # header, 3 rows, random-init and raw


def test_a_table_grown_seed_by_seed_names_the_commands_that_ran_its_cells(tmp_path, fake):
  out = str(tmp_path / "pretext")
  table = reproduce.TABLES["pretext"]
  fake.fail.clear()
  first, more = "python -m sslax.reproduce --table=pretext --seeds=0", \
      "python -m sslax.reproduce --table=pretext --seeds=0,1 --methods rotation"
  for seeds, rows, command in (([0], list(table.rows), first), ([0, 1], [table.rows[0]], more)):
    assert reproduce.reproduce("pretext", table, rows=rows, seeds=seeds, outdir=out, overrides=["total_steps=7"],
                               command=command, python="python") == 0
  assert len(fake.calls) == len(table.rows) + 1
  rebuild = "python -m sslax.reproduce --table=pretext --seeds=0,1 --table_only"
  assert reproduce.reproduce("pretext", table, rows=list(table.rows), seeds=[0, 1], outdir=out,
                             overrides=["total_steps=7"], command=rebuild, table_only=True) == 0
  lines = (tmp_path / "pretext" / "table.md").read_text().splitlines()
  assert lines[2].startswith(f"Made by `{rebuild}` on ")
  assert lines[3] == f"Its runs made by: `{first}`; `{more}`."
  assert cells_of("\n".join(lines), table.rows[1].label)[1] == "80.00 (n=1)"
  # A table whose runs its own command made says so once.
  assert reproduce.reproduce("pretext", table, rows=[table.rows[0]], seeds=[1], outdir=out,
                             overrides=["total_steps=7"], command=more) == 0
  assert not any(l.startswith("Its runs made by") for l in (tmp_path / "pretext" / "table.md").read_text().splitlines())


def test_fine_tuning_every_encoder_and_its_random_init(tmp_path, fake):
  table = reproduce.TABLES["pretext"]
  go = lambda: reproduce.reproduce(  # noqa: E731
      "pretext", table, rows=list(table.rows[:2]), seeds=[0], outdir=str(tmp_path), python="python",
      overrides=["total_steps=3"], command="c", finetune_steps=5)
  assert go() == 0
  modes = [(c[4].split("/")[-2], next((a for a in c if a.startswith("--config.finetune.init=")), "-"))
           for c in fake.calls]
  assert modes == [("rotation", "-"), ("rotation", "--config.finetune.init=pretrained"),
                   ("rotation", "--config.finetune.init=random"), ("jigsaw", "-"),
                   ("jigsaw", "--config.finetune.init=pretrained")]
  assert all("--config.finetune.total_steps=5" in c for c in fake.calls if "--mode=finetune" in c)
  with open(tmp_path / "table.md") as f:
    text = f.read()
  column = header_of(text).index("fine-tune (%) [3]")
  assert cells_of(text, "rotation")[column] == "90.00" and cells_of(text, "random-init")[column] == "50.00"
  assert go() == 0 and len(fake.calls) == 5  # done: nothing runs again


def test_unknown_table_row_and_missing_config(tmp_path, fake, capsys):
  assert reproduce.main(["--table=nope"]) == 2
  assert "unknown table 'nope'; tables: fashion_mnist, self_prediction, pretext" in capsys.readouterr().err
  with pytest.raises(SystemExit, match="has no row 'mae'; its rows: rotation, jigsaw, relative_patch"):
    reproduce.main(["--table=pretext", "--methods", "mae", "--dry_run"])

  missing = results.Row("no_such", "configs/no_such_method_fashion_mnist.py")
  only_missing = results.Table("t", (missing,))
  assert reproduce.reproduce("t", only_missing, rows=[missing], seeds=[0], outdir=str(tmp_path / "a"),
                             overrides=[], command="c") == 2
  assert ("error: table 't': no config file exists yet: configs/no_such_method_fashion_mnist.py"
          in capsys.readouterr().err)

  rotation = results.Row("rotation", "configs/rotation_fashion_mnist.py")
  mixed = results.Table("t", (rotation, missing))
  assert reproduce.reproduce("t", mixed, rows=[rotation, missing], seeds=[0], outdir=str(tmp_path / "b"),
                             overrides=["total_steps=3"], command="c") == 1
  assert "configs/no_such_method_fashion_mnist.py does not exist yet" in capsys.readouterr().err
  with open(tmp_path / "b" / "table.md") as f:
    text = f.read()
  assert "no_such seed 0: no config file configs/no_such_method_fashion_mnist.py (not written yet)" in text
  assert len(fake.calls) == 1


def test_published_numbers_name_existing_configs_and_their_length():
  """Every entry's config exists and pretrains for the epochs the entry says; the ImageNet
  configs without an entry are the two no paper number is listed for."""
  listed = set()
  for entry in published.PUBLISHED:
    path = os.path.join(REPO, entry.config)
    spec = importlib.util.spec_from_file_location("_published_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    examples = {"ImageNet-1k": presets.IMAGENET_TRAIN_EXAMPLES,
                "CIFAR-10": presets.CIFAR10_TRAIN_EXAMPLES}[entry.dataset]
    per_epoch = examples // config.batch_size
    assert config.total_steps / per_epoch == entry.config_epochs, entry
    assert re.fullmatch(r"\d{4}\.\d{5}", entry.arxiv) and 0 < entry.top1 < 100
    listed.add(os.path.basename(entry.config))
  imagenet = {f for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith("_imagenet.py")}
  assert imagenet - listed == {"supervised_imagenet.py", "colorization_imagenet.py"}
  cifar = {f for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith("_cifar10.py")}
  assert cifar - listed == {"supervised_cifar10.py", "colorization_cifar10.py", "mae_cifar10.py"}
  assert {e.method for e in published.PUBLISHED} <= {r.label for t in reproduce.TABLES.values() for r in t.rows}


def test_planned_commands_name_only_existing_config_keys(tmp_path):
  """Every flag of every planned command names a key of its config file, as sslax.main's own
  check sees it (a renamed eval key would otherwise fail every run of a table)."""
  from sslax.main import unknown_config_overrides

  for name, table in reproduce.TABLES.items():
    rows = [r for r in table.rows if os.path.exists(os.path.join(REPO, r.config))]
    for run in reproduce.plan(table, rows, [0], str(tmp_path / name), ["total_steps=3"])[:2]:
      cmd = run.command("python")
      cmd[3] = f"--config={os.path.join(REPO, run.row.config)}"  # sslax.main's cwd is not ours
      finetune = ["--mode=finetune", "--config.finetune.init=random", "--config.finetune.total_steps=3"]
      assert unknown_config_overrides(cmd[3:] + finetune) == [], cmd
      assert "--config.seed=0" in cmd and "--config.total_steps=3" in cmd


# ----------------------------------------------------------------------------
# One real run: `python -m sslax.main` as a subprocess, nothing faked
# ----------------------------------------------------------------------------

# tests/helpers.py's tiny SimCLR, as command-line overrides; the probes and kNN only, one
# weight decay; both baselines (random init, raw pixels) as the first run of a seed has them.
TINY_SIMCLR = ["total_steps=2", "batch_size=16", "checkpoint_every_steps=2", "async_checkpoints=False",
               "log_every_steps=1", "model.widths=(8,16)", "method.projector_hidden=(32,)",
               "method.projector_dim=16", "optimizer.warmup_steps=1", "eval.batch_size=32",
               "eval.probe_weight_decays=(0.0001,)", "eval.knn_k=5", "eval.protocols=('linear_probe','knn')",
               "online_probe.enabled=False", "diagnostics.enabled=False"]


def test_a_real_tiny_table_holds_the_runs_numbers(tiny_fashion_mnist, tmp_path, monkeypatch, capsys):
  """reproduce runs the real sslax.main (2 steps of a tiny SimCLR on the conftest's tiny
  Fashion-MNIST, 1 seed): the run ends, and table.md / table.csv hold the accuracies of the
  eval.json it wrote (read here, x 100) and the trainer's time from its run.log."""
  monkeypatch.chdir(REPO)
  row = results.Row("simclr", "configs/simclr_fashion_mnist.py")
  table = results.Table("tiny", (row,))
  out = str(tmp_path / "tiny")
  code = reproduce.reproduce("tiny", table, rows=[row], seeds=[0], outdir=out,
                             overrides=TINY_SIMCLR + [f"data.data_dir={tiny_fashion_mnist}"],
                             command="python -m sslax.reproduce (test)")
  with open(f"{out}/simclr/seed0/run.log") as f:
    log = f.read()
  assert code == 0, log[-3000:]
  with open(f"{out}/simclr/seed0/eval.json") as f:
    saved = json.load(f)
  assert saved["step"] == 2
  pretrained = saved["pretrained"]
  random_init = saved["random_init"]
  raw = saved.get("raw_features") or saved["raw_pixels"]
  seconds = sum(float(s) for s in re.findall(r"trained steps \d+\.\.\d+ in ([\d.]+) s", log))
  assert seconds > 0

  with open(f"{out}/table.md") as f:
    text = f.read()
  headers = header_of(text)
  probe = next(i for i, h in enumerate(headers) if h.startswith("linear probe (%)"))
  knn = next(i for i, h in enumerate(headers) if h.startswith("kNN (%)"))
  time_column = next(i for i, h in enumerate(headers) if h.startswith("pretraining time (s)"))
  simclr = cells_of(text, "simclr")
  assert simclr[probe] == f"{100 * pretrained['linear_probe']['accuracy']:.2f}"
  assert simclr[knn] == f"{100 * pretrained['knn']['accuracy']:.2f}"
  assert simclr[time_column] == f"{seconds:.0f}"
  random_row = cells_of(text, "random-init ConvNet (8, 16)")
  assert random_row[probe] == f"{100 * random_init['linear_probe']['accuracy']:.2f}"
  assert random_row[knn] == f"{100 * random_init['knn']['accuracy']:.2f}"
  assert cells_of(text, "raw inputs")[probe] == f"{100 * raw['linear_probe']['accuracy']:.2f}"
  assert "Settings of every row:" in text and "total_steps=2" in text
  assert text in capsys.readouterr().out  # and printed

  with open(f"{out}/table.csv") as f:
    rows = {r["row"]: r for r in csv.DictReader(f)}
  assert float(rows["simclr"]["linear probe (%) mean"]) == pytest.approx(
      100 * pretrained["linear_probe"]["accuracy"], abs=1e-4)
  assert rows["simclr"]["linear probe (%) n"] == "1"


# ----------------------------------------------------------------------------
# The teaching tables (sslax/lessons.py).
# ----------------------------------------------------------------------------

def test_lesson_rows_see_the_same_number_of_images_and_validate():
  from sslax import config as config_lib
  from sslax import lessons

  for name, table in lessons.TABLES.items():
    for row in table.rows:
      config = reproduce.load_config(os.path.join(REPO, row.config), list(table.settings) + list(row.overrides))
      config_lib.validate(config)  # every switch a row sets exists and is accepted
      assert config.batch_size * config.total_steps == lessons.IMAGES, (name, row.label)
      assert config.optimizer.warmup_steps == config.total_steps // 10, (name, row.label)
  batches = {dict(r.params)["global batch"] for r in lessons.BATCH_SIZE.rows}
  assert batches == {32, 64, 128, 256, 512, 1024}
  assert {r.label for r in lessons.FEATURE_BANK.rows} >= {"moco_q0", "moco_q16384", "moco_m0", "simclr_b64"}


def test_a_table_on_several_devices_runs_in_their_environment_and_draws(tmp_path, fake, monkeypatch):
  from sslax import lessons

  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1 --xla_force_host_platform_device_count=2")
  table = lessons.BATCH_SIZE
  rows = [r for r in table.rows if r.label in ("global_b32", "global_b64", "per_device_b64")]
  assert reproduce.reproduce("batch_size", table, rows=rows, seeds=[0], outdir=str(tmp_path),
                             overrides=[], command="c", python="python") == 0
  assert [e["XLA_FLAGS"] for e in fake.envs] == [
      "--xla_cpu_foo=1 --xla_force_host_platform_device_count=8"] * 3
  with open(tmp_path / "global_b32" / "seed0" / "reproduce.json") as f:
    assert json.load(f)["settings"]["devices"] == 8
  with open(tmp_path / "table.md") as f:
    assert "Wall time of the 3 runs" in f.read()
  with open(tmp_path / "table.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  # A table without devices leaves the environment alone.
  fake.envs.clear()
  pretext = reproduce.TABLES["pretext"]
  reproduce.reproduce("pretext", pretext, rows=list(pretext.rows[:1]), seeds=[0], outdir=str(tmp_path / "p"),
                      overrides=["total_steps=3"], command="c", python="python")
  assert fake.envs == [None]


def test_final_metrics_are_each_keys_last_logged_value(tmp_path):
  write(f"{tmp_path}/metrics.jsonl", "\n".join([
      json.dumps({"step": 10, "loss": 3.0, "z_std": 0.05}),
      json.dumps({"step": 20, "loss": 2.0, "diagnostics/rankme": 40.0, "diagnostics/collapsed": False}),
      json.dumps({"step": 30, "loss": 1.5}),
      '{"step": 40, "loss": 0.']))  # a run still writing
  assert results.final_metrics(str(tmp_path)) == {"loss": 1.5, "z_std": 0.05, "diagnostics/rankme": 40.0}
  assert results.format_cell(0.0123456, 0.00123, 3, 3, "") == "0.0123 ± 0.0012"
  assert results.format_cell(41.26, None, 1, 3, "") == "41.3 (n=1)"


def test_curves_figure_from_the_runs_metrics(tmp_path):
  from sslax import lessons, plot

  rows = lessons.COLLAPSE.rows[:2]
  for i, row in enumerate(rows):
    write(f"{tmp_path}/{row.label}/seed0/metrics.jsonl",
          "\n".join(json.dumps({"step": s, "z_std": 0.05 / (1 + i * s), "loss": -s}) for s in range(1, 5)))
    write(f"{tmp_path}/{row.label}/seed0/eval.json", fake_eval(4, 0.8, 0.7))
  agg = results.aggregate(lessons.COLLAPSE, list(rows), [0], str(tmp_path))
  text = results.markdown("collapse", lessons.COLLAPSE, agg, [0], command="c", machines=[], settings=[])
  assert cells_of(text, rows[1].label)[3] == "0.01"  # final z std, step 4: 0.05 / (1 + 4)
  out = plot.draw_table(lessons.COLLAPSE.figure, agg, str(tmp_path), [0], str(tmp_path / "c.png"))
  assert os.path.getsize(out) > 1000
