"""The methods, found by module: a method is a module that defines `METHOD = Method(...)`.

`get_method("simclr")` loads sslax.methods.simclr; `get_method("my_package.my_method")`
imports that module, so a method in another package runs with no edit to sslax. The
method's name is its module's (the import path for one outside sslax), set here: adding a
method is adding its file, nothing else.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from sslax.errors import ConfigError
from sslax.methods.base import Method

__all__ = ["Method", "available_methods", "get_method"]


def _module_path(name: str) -> str:
  return name if "." in name else f"{__name__}.{name}"


def _unknown(name: str, why: str = "") -> ConfigError:
  return ConfigError(
      f"config.method.name: {name!r} is not one of {available_methods()}{why}, nor the import "
      "path of a module that defines METHOD = Method(...) (e.g. my_package.my_method)")


def get_method(name: str) -> Method:
  """The method of module sslax.methods.NAME, or of module NAME when NAME is a dotted import
  path, with its `name` set; a ConfigError naming the choices for anything else."""
  path = _module_path(name)
  try:
    module = importlib.import_module(path)
  except ModuleNotFoundError as e:
    # Only a missing module (or package) of the path itself means an unknown name: a missing
    # dependency inside the method's module is that module's error and must surface as is.
    if e.name is None or not (path == e.name or path.startswith(e.name + ".")):
      raise
    raise _unknown(name) from None
  method = getattr(module, "METHOD", None)
  if not isinstance(method, Method):
    raise _unknown(name, f" (module {path} defines no METHOD)")
  return dataclasses.replace(method, name=name)


def available_methods() -> list[str]:
  """The names of sslax's own methods: the modules of this package that define METHOD."""
  names = []
  for info in pkgutil.iter_modules(__path__):
    if info.ispkg or info.name.startswith("_") or info.name == "base":
      continue
    if isinstance(getattr(importlib.import_module(f"{__name__}.{info.name}"), "METHOD", None), Method):
      names.append(info.name)
  return sorted(names)
