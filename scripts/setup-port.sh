#!/usr/bin/env bash
# The ONNX -> TensorFlow port's own venv (.venv-port): onnx2tf 1.29.24 is the newest release that
# installs on Python 3.11 (2.x needs >= 3.12), and it pins tensorflow 2.19.0, numpy 1.26.4 and
# protobuf 4.25.5, which clash with the main venv (TF 2.20, numpy 2.x, protobuf 7). TF 2.19 <= the
# TF Serving pin (2.20), so what it writes loads there. Pins: servecmp/versions.py (ONNX2TF_VERSION,
# PORT_TENSORFLOW_VERSION; tests/test_versions.py checks this file). Idempotent: a stamp holds the
# hash of this script and the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
PVENV=${PORT_VENV:-.venv-port}
PY=${PYTHON:-python3}
PSTAMP="$PVENV/.servecmp-setup"
PHASH=$(cat scripts/setup-port.sh servecmp/versions.py | sha256sum | cut -c1-16)
if [ -f "$PSTAMP" ] && [ "$(cat "$PSTAMP")" = "$PHASH" ]; then
  echo "==> port environment up to date ($PVENV)"
  exit 0
fi
echo "==> port environment in $PVENV"
[ -x "$PVENV/bin/python" ] || "$PY" -m venv "$PVENV"
"$PVENV/bin/pip" install -q --upgrade pip
# onnx2tf declares exact pins for all of its dependencies (tensorflow==2.19.0, onnx==1.19.1, ...).
"$PVENV/bin/pip" install -q onnx2tf==1.29.24
"$PVENV/bin/python" -c "import onnx2tf, tensorflow as tf; assert tf.__version__ == '2.19.0', tf.__version__"
echo "$PHASH" >"$PSTAMP"
