#!/usr/bin/env bash
# Install openmm-cgml and what it needs into the current Python environment, building the plugin
# against the OpenMM that is installed there.  Usage: scripts/install.sh [EXTRAS], e.g. "test".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# torch first and pinned: an unpinned torch (or a package asking for a newer one) pulls several GB
# of CUDA packages, while 2.13.0 has a CPU build.
"$PYTHON" -m pip install -q "torch==2.13.0"
# The plugin must be compiled against the OpenMM it runs with, so the build uses this environment
# (no build isolation) and its build tools are installed here.
"$PYTHON" -m pip install -q "openmm>=8.6,<8.7" "scikit-build-core>=0.10" "swig>=4.1" "numpy>=1.24"
target="."
if [ -n "${1:-}" ]; then
    target=".[$1]"
fi
"$PYTHON" -m pip install -q --no-build-isolation "$target"
# pyenv only sees new console scripts (cgml) after a rehash.
if command -v pyenv >/dev/null 2>&1; then
    pyenv rehash || true
fi
# pip -q hides CMake's lines about platforms it skipped: say what was built, and why not the rest
# (fails only if the Reference platform has no kernels, i.e. the plugin is unusable).
(cd / && "$PYTHON" -m openmmcgml.cli status)
