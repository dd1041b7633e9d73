#!/usr/bin/env bash
# In-cluster load on the loadgen node against each target over REST and gRPC. Usage:
#   scripts/kind-load.sh [experiment.yaml] [--target NAME]... [--recover]
#   scripts/kind-load.sh [experiment.yaml] --engine locust [--duration S] [--users N] [--workers N] [--locustfile NAME]
# This script checks prerequisites; the logic is servecmp.cluster.commands.load
# (`servecmp kind load`), which validates the options.
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"
cd "$ROOT"
check_prereqs
exec "$PY" -m servecmp.cli kind load "$@"
