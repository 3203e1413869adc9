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
