"""The package's structure, read from its source with `ast`: no import cycle, imports only go
down the layers below (or sideways within one), and no private name crosses a module.

Every import counts, including those inside functions: a late import hides a cycle from
Python, not from a reader.
"""

from __future__ import annotations

import ast
import fnmatch
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "sslax")

# Lowest first. A module may import modules of its own layer or of a lower one.
LAYERS = (
    ("errors", ("sslax.errors",)),
    ("parts", ("sslax.parallel", "sslax.optim", "sslax.metrics", "sslax.checkpoint",
               "sslax.preemption", "sslax.workdir", "sslax.published", "sslax.recipe", "sslax.budget",
               "sslax.cli", "sslax.losses",
               "sslax.losses.*",
               "sslax.models", "sslax.models.*", "sslax.data", "sslax.data.*")),
    ("methods", ("sslax.methods", "sslax.methods.*")),
    ("protocols", ("sslax.evaluate", "sslax.evaluate.knn", "sslax.evaluate.linear_probe",
                   "sslax.evaluate.sgd_probe", "sslax.evaluate.few_label", "sslax.evaluate.diagnostics",
                   "sslax.evaluate.protocols", "sslax.evaluate.features", "sslax.online_probe",
                   "sslax.accumulate", "sslax.evaluate.linear_eval_recipes")),
    ("config", ("sslax.config", "sslax.presets")),
    ("step", ("sslax.step",)),
    ("assemble", ("sslax.assemble",)),
    ("train", ("sslax.train",)),
    ("evaluation", ("sslax.evaluate.baselines", "sslax.evaluate.frozen", "sslax.evaluate.finetune",
                    "sslax.evaluate.embedding_map", "sslax.evaluate.linear_eval")),
    ("programs", ("sslax", "sslax.main", "sslax.export", "sslax.reconstruct",
                  "sslax.neighbors", "sslax.reproduce", "sslax.results", "sslax.lessons", "sslax.plot")),
)

# Imports that go up a layer on purpose: (importer, imported) -> why.
UPWARD: dict[tuple[str, str], str] = {}


def module_files() -> dict[str, str]:
  out = {}
  for folder, _, files in os.walk(ROOT):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, os.path.join(ROOT, ".."))[:-3].replace(os.sep, ".")
        out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
  return out


def imports_of(module: str, path: str, modules: dict) -> dict[str, list[str]]:
  """-> {imported sslax module: [names imported from it]} for every import in the file."""
  package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
  found: dict[str, list[str]] = {}
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name in modules:
          found.setdefault(alias.name, [])
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
      for alias in node.names:
        if f"{base}.{alias.name}" in modules:  # `from sslax import config`
          found.setdefault(f"{base}.{alias.name}", [])
        elif base in modules:
          found.setdefault(base, []).append(alias.name)
  found.pop(module, None)
  return found


def layer_of(module: str) -> int:
  for index, (_, patterns) in enumerate(LAYERS):
    if any(fnmatch.fnmatchcase(module, p) for p in patterns):
      return index
  raise AssertionError(f"{module} is in no layer of tests/test_import_graph.py: place it")


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, list[str]]]:
  modules = module_files()
  return {m: imports_of(m, path, modules) for m, path in modules.items()}


def cycles(graph: dict) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan's algorithm)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, {}):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def test_the_cycle_finder_finds_a_cycle():
  assert cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [["a", "b", "c"]]
  assert cycles({"a": {"b": []}, "b": {}}) == []


def test_no_import_cycle(graph):
  assert cycles(graph) == []


def test_every_module_has_a_layer(graph):
  for module in graph:
    layer_of(module)


def test_imports_go_down_the_layers(graph):
  upward = [(m, i) for m, imported in graph.items() for i in imported
            if layer_of(i) > layer_of(m) and (m, i) not in UPWARD]
  assert upward == [], "\n".join(f"{m} ({LAYERS[layer_of(m)][0]}) imports {i} ({LAYERS[layer_of(i)][0]})"
                                 for m, i in upward)


def private_attributes(module: str, path: str, modules: dict) -> list[str]:
  """`alias._name` where alias is a module of sslax bound by an import in the file."""
  tree = ast.parse(open(path).read())
  aliases = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      aliases.update({a.asname: a.name for a in node.names if a.asname and a.name in modules})
    elif isinstance(node, ast.ImportFrom) and node.module:
      for a in node.names:
        if f"{node.module}.{a.name}" in modules:
          aliases[a.asname or a.name] = f"{node.module}.{a.name}"
  return [f"{aliases[n.value.id]}.{n.attr}" for n in ast.walk(tree)
          if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases
          and n.attr.startswith("_") and not n.attr.startswith("__") and aliases[n.value.id] != module]


def test_no_private_name_crosses_a_module(graph):
  private = [(m, i, n) for m, imported in graph.items() for i, names in imported.items()
             for n in names if n.startswith("_")]
  modules = module_files()
  private += [(m, a) for m, path in modules.items() for a in private_attributes(m, path, modules)]
  assert private == []
