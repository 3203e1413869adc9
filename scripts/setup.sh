#!/usr/bin/env bash
# Idempotent set-up: a Python >= 3.12 virtual environment at .venv with sslax and its
# dependencies, and (unless SSLAX_SKIP_DATA=1) the offline data: Fashion-MNIST's idx files and
# the fortunes texts from Debian, and aeon's JapaneseVowels .ts files (pip, without aeon's deps).
set -euo pipefail
cd "$(dirname "$0")/.."

ok_python() {  # a candidate that runs and is >= 3.12 (pyenv shims exist for versions that are not active)
  [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

find_python() {
  local root="${PYENV_ROOT:-$HOME/.pyenv}" c
  # pyenv installs are not on PATH unless pyenv is initialised (the case for CI).
  for c in "${SSLAX_PYTHON:-}" python3.12 "$root"/versions/3.12*/bin/python3 \
           python3.13 "$root"/versions/3.13*/bin/python3 python3; do
    if ok_python "$c"; then "$c" -c 'import sys; print(sys.executable)'; return; fi
  done
  echo "sslax needs Python >= 3.12 (jax >= 0.11 does). Install one (e.g. 'pyenv install 3.12') or set SSLAX_PYTHON=/path/to/python3.12." >&2
  return 1
}

if ! ok_python .venv/bin/python; then
  py=$(find_python)
  echo "[setup] creating .venv with $py ($("$py" --version))"
  rm -rf .venv
  "$py" -m venv .venv
fi
stamp=.venv/.sslax-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing sslax and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi

if [ "${SSLAX_SKIP_DATA:-0}" != 1 ]; then
  # Data from Debian packages: Fashion-MNIST's idx files, and the fortunes texts (sslax/data/text.py).
  debs=()
  [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || debs+=(dataset-fashion-mnist)
  [ -f /usr/share/games/fortunes/fortunes ] || debs+=(fortunes)
  if [ ${#debs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "[setup] installing the Debian package(s) ${debs[*]}"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null
    else
      echo "[setup] data missing: run 'sudo apt-get install ${debs[*]}' (or see README: Data)." >&2
    fi
  fi
  # JapaneseVowels (sslax/data/sequences.py) is read from the .ts files that ship in the PyPI
  # package aeon; --no-deps because only those files are read, aeon itself is never imported.
  if ! .venv/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("aeon") is None)'; then
    echo "[setup] installing aeon's data files (pip install --no-deps aeon)"
    .venv/bin/python -m pip install -q --no-deps aeon
  fi
fi
