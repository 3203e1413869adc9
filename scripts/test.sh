#!/usr/bin/env bash
# Set-up, then the test suite. Tests make their own data: no dataset or network needed.
set -euo pipefail
cd "$(dirname "$0")/.."
SSLAX_SKIP_DATA=1 bash scripts/setup.sh
exec .venv/bin/python -m pytest -q tests "$@"
