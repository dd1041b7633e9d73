#!/usr/bin/env bash
# Delete the servecmp kind cluster (idempotent). Built images and build/kind are kept.
# The logic is servecmp.cluster.commands.down (`servecmp kind down`).
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"
cd "$ROOT"
command -v kind >/dev/null 2>&1 || die "kind not found: nothing to delete"
exec "$PY" -m servecmp.cli kind down
