#!/usr/bin/env bash
# Set up (if needed) and run the checks CI runs: ruff lint, ruff format check, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
