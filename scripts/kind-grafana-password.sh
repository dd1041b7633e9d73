#!/usr/bin/env bash
# Print the Grafana admin password kind-up.sh generated (user: admin).
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"
"${KUBECTL[@]}" -n "$KPS_NAMESPACE" get secret servecmp-grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d
echo
