#!/usr/bin/env bash
# Create (or reuse) the servecmp kind cluster and install monitoring + every server the
# experiment targets. Idempotent. Usage: scripts/kind-up.sh [experiment.yaml]
# This script checks prerequisites; the logic is servecmp.cluster.commands.up (`servecmp kind up`).
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"
EXPERIMENT="${1:-${EXPERIMENT:-loadtests/experiments/quick.yaml}}"
cd "$ROOT"
[[ -f "$EXPERIMENT" ]] || die "experiment file not found: $EXPERIMENT"
check_prereqs
exec "$PY" -m servecmp.cli kind up "$EXPERIMENT"
