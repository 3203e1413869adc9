"""The layering of methods: a method module imports no other method module (shared pieces
live in sslax/methods/common or sslax/models), and the registry finds methods by module,
sslax's own and any importable one."""

from __future__ import annotations

import ast
import glob
import os

import pytest

from sslax.errors import ConfigError
from sslax.methods import available_methods, get_method

METHODS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sslax", "methods")


def defines_method(tree: ast.Module) -> bool:
  return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "METHOD" for t in node.targets)
             for node in tree.body)


def imported_modules(tree: ast.Module) -> set[str]:
  """Every module an `import` names, and for `from X import a, b` both X and X.a, X.b (a name
  imported from a package may be a submodule)."""
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f"{node.module}.{alias.name}" for alias in node.names)
  return names


def test_no_method_imports_another_method():
  trees = {os.path.splitext(os.path.basename(p))[0]: ast.parse(open(p).read())
           for p in glob.glob(os.path.join(METHODS_DIR, "*.py"))}
  methods = {name for name, tree in trees.items() if defines_method(tree)}
  assert {"simclr", "mae", "masked_token", "skipgram"} <= methods
  offenders = {name: sorted(imported_modules(trees[name]) & {f"sslax.methods.{m}" for m in methods - {name}})
               for name in methods}
  assert not {name: bad for name, bad in offenders.items() if bad}
  # The shared modules are not methods, so importing them is allowed.
  for path in glob.glob(os.path.join(METHODS_DIR, "common", "*.py")):
    assert not defines_method(ast.parse(open(path).read())), path


def test_available_methods_are_the_modules_that_define_method():
  names = available_methods()
  assert "simclr" in names and "supervised" in names
  assert "base" not in names and "common" not in names
  for name in names:
    method = get_method(name)
    assert method.name == name == method.defaults().name


def test_a_method_outside_the_package_runs_by_import_path(tmp_path, monkeypatch):
  package = tmp_path / "my_package"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "my_method.py").write_text(
      "import dataclasses\n"
      "from sslax.methods import simclr\n"
      "METHOD = dataclasses.replace(simclr.METHOD, num_views=3)\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  method = get_method("my_package.my_method")
  assert method.name == "my_package.my_method"
  assert method.num_views == 3


def test_unknown_names_are_config_errors_naming_the_choices(tmp_path, monkeypatch):
  with pytest.raises(ConfigError, match=r"'no_such_method' is not one of \[.*'simclr'"):
    get_method("no_such_method")
  with pytest.raises(ConfigError, match=r"'no_such_package.x' is not one of \[.*'simclr'.*import path"):
    get_method("no_such_package.x")
  with pytest.raises(ConfigError, match=r"simclr.*sslax.methods.base defines no METHOD"):
    get_method("base")
  # A module that exists but fails to import for its own reasons says so, not "unknown".
  (tmp_path / "broken_package").mkdir()
  (tmp_path / "broken_package" / "__init__.py").write_text("")
  (tmp_path / "broken_package" / "method.py").write_text("import a_dependency_that_is_missing\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_missing"):
    get_method("broken_package.method")
