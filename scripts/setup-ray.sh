#!/usr/bin/env bash
# Ray Serve in its own venv (.venv-ray): ray[serve] pins its own grpcio/protobuf ranges, kept apart
# from our stack. Pins: servecmp/versions.py RAY_VERSION (tests/test_versions.py checks this file).
# grpcio-tools compiles the OIP stubs the gRPC proxy serves, against this venv's protobuf.
# Idempotent: a stamp holds the hash of this script and the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RVENV=${RAY_VENV:-.venv-ray}
RSTAMP="$RVENV/.servecmp-setup"
RHASH=$(cat scripts/setup-ray.sh servecmp/versions.py | sha256sum | cut -c1-16)
if [ -f "$RSTAMP" ] && [ "$(cat "$RSTAMP")" = "$RHASH" ]; then
  echo "==> ray environment up to date ($RVENV)"
  exit 0
fi
echo "==> ray environment in $RVENV"
[ -x "$RVENV/bin/python" ] || "$PY" -m venv "$RVENV"
"$RVENV/bin/pip" install -q --upgrade pip
"$RVENV/bin/pip" install -q torch==2.13.0  # the CPU wheel: any other pin pulls CUDA builds
"$RVENV/bin/pip" install -q "ray[serve]==2.60.0" numpy grpcio-tools onnxruntime==1.23.0
echo "$RHASH" >"$RSTAMP"
