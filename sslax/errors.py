"""Errors a user can cause and fix: a leaf that every module may import.

Each message names what was wrong and what to do; the command line (sslax/cli.py) prints it
as one line instead of a traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
  """A config key holds a value that cannot work; the message names the key and the fix."""


def require(condition: bool, key: str, message: str) -> None:
  """Raises ConfigError("config.KEY: MESSAGE") unless `condition`."""
  if not condition:
    raise ConfigError(f"config.{key}: {message}")


class WorkdirError(Exception):
  """The workdir cannot be used as it is (in use by another process, read-only, full, or
  holding another run); the message names it and what to do. Nothing in it was changed."""


class TrainingDiverged(FloatingPointError):
  """A step produced a non-finite value; the message names the step and the last good
  checkpoint (the only kind ever saved)."""


class DataError(RuntimeError):
  """Data on disk that cannot be read (a truncated download, a damaged prepared dataset); the
  message names the file and the command that rebuilds it."""
