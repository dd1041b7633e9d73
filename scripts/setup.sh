#!/usr/bin/env bash
# Set up everything servecmp needs on a fresh Debian 12 machine (idempotent; re-runs are cheap).
#   system: OpenJDK 17 (TorchServe), prometheus + promtool, wrk, chromium (report screenshot test)
#   python: .venv with the pinned stack; tensorflow-serving-api with --no-deps (see README)
#   kserve: .venv-kserve with kserve + torch (its own pins, see below)
#   tools:  helm (scripts/install-helm.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.servecmp-setup"
HASH=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v chromium >/dev/null || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "==> apt-get install ${need_apt[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
# Debian's package starts prometheus.service on :9090 (systemd hosts): ours run on their own ports.
bash scripts/stop-packaged-prometheus.sh

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  echo "==> python environment up to date ($VENV)"
else
  echo "==> python environment in $VENV"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first and exactly pinned: any other version pulls a multi-GB CUDA build.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -e '.[dev]'
  # Declares `tensorflow` and would pull the full wheel over tensorflow-cpu (same package dir).
  "$VENV/bin/pip" install -q --no-deps tensorflow-serving-api==2.20.0
  echo "$HASH" >"$STAMP"
fi

# KServe's Python model server in its own venv: kserve 0.21.0 requires protobuf<7, our stack
# resolves to protobuf 7.x. Pins: servecmp/versions.py KSERVE_VERSION (tests/test_versions.py).
KVENV=${KSERVE_VENV:-.venv-kserve}
KSTAMP="$KVENV/.servecmp-setup"
KHASH=$(cat scripts/setup.sh servecmp/versions.py | sha256sum | cut -c1-16)
if [ -f "$KSTAMP" ] && [ "$(cat "$KSTAMP")" = "$KHASH" ]; then
  echo "==> kserve environment up to date ($KVENV)"
else
  echo "==> kserve environment in $KVENV"
  [ -x "$KVENV/bin/python" ] || "$PY" -m venv "$KVENV"
  "$KVENV/bin/pip" install -q --upgrade pip
  "$KVENV/bin/pip" install -q torch==2.13.0  # the CPU wheel: any other pin pulls CUDA builds
  "$KVENV/bin/pip" install -q kserve==0.21.0 numpy onnxruntime==1.23.0  # ONNX-source cards
  echo "$KHASH" >"$KSTAMP"
fi

bash scripts/setup-triton.sh
# Ray Serve in its own venv (.venv-ray): scripts/setup-ray.sh.
bash scripts/setup-ray.sh

bash scripts/setup-port.sh  # the ONNX -> TensorFlow port's own venv (.venv-port)
bash scripts/install-helm.sh >/dev/null || echo "warning: helm could not be installed; chart tests will be skipped"
echo "==> setup done"
