#!/usr/bin/env bash
# Delete the servecmp kind cluster (idempotent). Built images and build/kind are kept.
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"
command -v kind >/dev/null 2>&1 || die "kind not found: nothing to delete"
if cluster_exists; then
  log "deleting cluster '$KIND_CLUSTER_NAME'"
  kind delete cluster --name "$KIND_CLUSTER_NAME"
else
  log "no cluster '$KIND_CLUSTER_NAME'; nothing to do"
fi
