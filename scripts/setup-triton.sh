#!/usr/bin/env bash
# Triton Inference Server 2.51.0 (Python backend) in its own venv, idempotent (a stamp holds the
# hash of this script and the pins). The nvidia-pytriton 0.7.0 wheel bundles the real
# `tritonserver` binary and the Python backend; servecmp runs that binary directly. Its models need
# numpy<2 (the backend stub fails every response under numpy 2) and the CPU torch wheel.
# Pins: servecmp/versions.py PYTRITON_VERSION, TRITON_TORCH_VERSION, TRITON_NUMPY_VERSION
# (tests/test_versions.py checks this file against them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TVENV=${TRITON_VENV:-.venv-triton}
TSTAMP="$TVENV/.servecmp-setup"
THASH=$(cat scripts/setup-triton.sh servecmp/versions.py | sha256sum | cut -c1-16)
if [ -f "$TSTAMP" ] && [ "$(cat "$TSTAMP")" = "$THASH" ]; then
  echo "==> triton environment up to date ($TVENV)"
  exit 0
fi
echo "==> triton environment in $TVENV"
[ -x "$TVENV/bin/python" ] || "$PY" -m venv "$TVENV"
"$TVENV/bin/pip" install -q --upgrade pip
"$TVENV/bin/pip" install -q torch==2.13.0  # the CPU wheel: any other pin pulls CUDA builds
"$TVENV/bin/pip" install -q nvidia-pytriton==0.7.0 numpy==1.26.4 onnxruntime==1.23.0
echo "$THASH" >"$TSTAMP"
