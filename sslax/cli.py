"""What every command-line entry point shares: logging to stderr with the libraries' chatter
at WARNING, and errors the user can fix printed as one line instead of a traceback."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

from sslax.data.pipeline import DatasetNotFoundError
from sslax.errors import ConfigError, DataError, TrainingDiverged, WorkdirError

# A bad config value, missing or damaged data, a missing checkpoint, a workdir in the way (busy,
# read-only, full), a diverged run: the message says how to fix each, and a traceback would
# bury it.
USER_ERRORS = (ConfigError, DatasetNotFoundError, DataError, FileNotFoundError, FileExistsError,
               WorkdirError, TrainingDiverged)


def setup_logging() -> None:
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
  for noisy in ("absl", "orbax", "jax", "tensorflow", "tensorflow_datasets"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def run_tool(action: Callable[[], Any], *, user_errors: tuple[type[Exception], ...] = ()) -> Any:
  """The body of a command-line tool (python -m sslax.export, sslax.reconstruct, ...):
  logging set up, then `action()` -> its result; a user error (USER_ERRORS or one of
  `user_errors`) exits with its message."""
  setup_logging()
  try:
    return action()
  except (*USER_ERRORS, *user_errors) as error:
    sys.exit(f"error: {error}")
