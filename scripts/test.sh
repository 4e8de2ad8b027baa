#!/usr/bin/env bash
# Set up (if needed) and run the checks CI runs: ruff lint, ruff format check, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# numpy's bundled OpenBLAS once hung in its thread pool (inner_thread) mid-suite on a loaded
# 2-core machine; the tests' matrices are small, so single-threaded BLAS costs nothing here.
OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
