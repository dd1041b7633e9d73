# Shared by scripts/kind-*.sh (sourced, not run): prerequisite checks only; the kind flow itself is
# servecmp.cluster.commands. Pins live in deploy/kind/versions.env.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../deploy/kind/versions.env
source "$ROOT/deploy/kind/versions.env"
PY="${SERVECMP_PYTHON:-$ROOT/.venv/bin/python}"
HELM="${SERVECMP_HELM:-}"
if [[ -z "$HELM" ]]; then
  if [[ -x "$ROOT/.tools/bin/helm" ]]; then HELM="$ROOT/.tools/bin/helm"; else HELM="$(command -v helm || true)"; fi
fi
# servecmp.cluster.commands runs helm and our own modules through these
export SERVECMP_HELM="$HELM" SERVECMP_PYTHON="$PY"
KCTX="kind-${KIND_CLUSTER_NAME}"
KUBECTL=(kubectl --context "$KCTX")

log() { printf '\033[1m[kind]\033[0m %s\n' "$*" >&2; }
die() { printf '[kind] ERROR: %s\n' "$*" >&2; exit 1; }

# version_ge A B: true when version A >= B (numeric dotted compare).
version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

need() {  # need <tool> <min> <version-cmd...>; prints an install hint when missing/too old
  local tool="$1" min="$2"; shift 2
  local hint
  case "$tool" in
    docker) hint="https://docs.docker.com/engine/install/ (and a running daemon: docker info)";;
    kind) hint="go install sigs.k8s.io/kind@v${KIND_MIN_VERSION} or https://kind.sigs.k8s.io/docs/user/quick-start/#installation";;
    helm) hint="make helm (scripts/install-helm.sh -> .tools/bin/helm) or https://helm.sh/docs/intro/install/";;
    kubectl) hint="https://kubernetes.io/docs/tasks/tools/";;
  esac
  if [[ "$tool" == helm ]]; then
    [[ -n "$HELM" && -x "$HELM" ]] || { MISSING+=("helm >= $min: $hint"); return; }
  elif ! command -v "$tool" >/dev/null 2>&1; then
    MISSING+=("$tool >= $min: $hint"); return
  fi
  local have
  have="$("$@" 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)"
  if [[ -z "$have" ]] || ! version_ge "$have" "$min"; then
    MISSING+=("$tool >= $min (found ${have:-unknown}): $hint")
  fi
}

check_prereqs() {
  MISSING=()
  need docker "$DOCKER_MIN_VERSION" docker version --format '{{.Server.Version}}'
  need kind "$KIND_MIN_VERSION" kind version
  need helm "$HELM_MIN_VERSION" "$HELM" version --short
  need kubectl "$KUBECTL_MIN_VERSION" kubectl version --client
  [[ -x "$PY" ]] || MISSING+=("python venv at $PY: make setup (or set SERVECMP_PYTHON)")
  if ((${#MISSING[@]})); then
    printf '[kind] missing prerequisites:\n' >&2
    printf '  - %s\n' "${MISSING[@]}" >&2
    exit 2
  fi
}

