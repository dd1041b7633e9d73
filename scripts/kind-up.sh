#!/usr/bin/env bash
# Create (or reuse) the servecmp kind cluster and install monitoring + both servers. Idempotent:
# re-running upgrades in place. Usage: scripts/kind-up.sh [experiment.yaml]
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"
EXPERIMENT="${1:-${EXPERIMENT:-experiments/quick.yaml}}"
cd "$ROOT"

check_prereqs
mkdir -p "$BUILD/artifacts"

# 1. cluster -----------------------------------------------------------------------------------
if cluster_exists; then
  log "cluster '$KIND_CLUSTER_NAME' exists; reusing it"
else
  log "creating cluster '$KIND_CLUSTER_NAME' ($KIND_NODE_IMAGE)"
  # extraMounts need absolute host paths: render the config with this checkout's build dir.
  sed "s#hostPath: build/kind/artifacts#hostPath: $BUILD/artifacts#" deploy/kind/kind-config.yaml > "$BUILD/kind-config.yaml"
  kind create cluster --name "$KIND_CLUSTER_NAME" --image "$KIND_NODE_IMAGE" \
    --config "$BUILD/kind-config.yaml" --wait 180s
fi
"${KUBECTL[@]}" wait --for=condition=Ready nodes --all --timeout=180s

# 2. model artifacts + generated configs (servecmp python; the only config generator) ----------
MODEL="$("$PY" -c 'import sys; from servecmp.experiment import load_experiment; print(load_experiment(sys.argv[1]).model)' "$EXPERIMENT")"
log "exporting model '$MODEL' (servecmp export) and generating configs for $EXPERIMENT"
"$PY" -m servecmp.cli export --model "$MODEL" --out build/models
"$PY" -m servecmp.deploy.kind.helmvalues "$EXPERIMENT" --out "$BUILD"
# hostPath copy (used only with global.modelArtifacts.source=hostPath)
rm -rf "$BUILD/artifacts/torchserve" "$BUILD/artifacts/tfserving"
cp -R "build/models/$MODEL/torchserve" "build/models/$MODEL/tfserving" "$BUILD/artifacts/"

# 3. artifacts image, tagged by content, loaded into the nodes -----------------------------------
ART_TAG="$(cd "build/models/$MODEL" && find torchserve tfserving -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"
ART_IMAGE="servecmp/model-artifacts:${MODEL}-${ART_TAG}"
if ! docker image inspect "$ART_IMAGE" >/dev/null 2>&1; then
  log "building $ART_IMAGE"
  docker build -q -f deploy/kind/artifacts.Dockerfile -t "$ART_IMAGE" "build/models/$MODEL" >/dev/null
fi
log "loading $ART_IMAGE into the cluster"
kind load docker-image --name "$KIND_CLUSTER_NAME" "$ART_IMAGE"

# 4. kube-prometheus-stack with our values; Grafana admin Secret with a random password ----------
"${KUBECTL[@]}" create namespace "$KPS_NAMESPACE" --dry-run=client -o yaml | "${KUBECTL[@]}" apply -f - >/dev/null
if ! "${KUBECTL[@]}" -n "$KPS_NAMESPACE" get secret servecmp-grafana-admin >/dev/null 2>&1; then
  log "creating the Grafana admin Secret (random password; make kind-grafana-password prints it)"
  "${KUBECTL[@]}" -n "$KPS_NAMESPACE" create secret generic servecmp-grafana-admin \
    --from-literal=admin-user=admin \
    --from-literal=admin-password="$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)"
fi
log "installing kube-prometheus-stack $KPS_CHART_VERSION"
"$HELM" repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
"$HELM" upgrade --install "$KPS_RELEASE" prometheus-community/kube-prometheus-stack \
  --kube-context "$KCTX" --namespace "$KPS_NAMESPACE" --version "$KPS_CHART_VERSION" \
  -f deploy/kind/kube-prometheus-stack-values.yaml --wait --timeout 10m

# 5. our chart -----------------------------------------------------------------------------------
log "installing helm/servecmp (release $SERVECMP_RELEASE, namespace $SERVECMP_NAMESPACE)"
mapfile -t SET_FILES < <("$PY" -c 'import sys; from pathlib import Path; from servecmp.deploy.kind.helmvalues import set_file_args; print("\n".join(set_file_args(Path(sys.argv[1]))))' "$BUILD/configs")
"$HELM" upgrade --install "$SERVECMP_RELEASE" helm/servecmp \
  --kube-context "$KCTX" --namespace "$SERVECMP_NAMESPACE" --create-namespace \
  -f "$BUILD/experiment-values.yaml" \
  --set global.monitoring.release="$KPS_RELEASE" \
  --set global.modelArtifacts.image.tag="${MODEL}-${ART_TAG}" \
  "${SET_FILES[@]}" ${SERVECMP_HELM_ARGS:-} --wait --timeout 10m

# 6. wait + record install -> Ready, restarts, image sizes ----------------------------------------
"$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" wait --release "$SERVECMP_RELEASE"
"$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" report --out "$BUILD/cluster-report.json" >/dev/null
"$HELM" test "$SERVECMP_RELEASE" --kube-context "$KCTX" --namespace "$SERVECMP_NAMESPACE" --logs --timeout 5m
log "ready. Grafana: http://127.0.0.1:${GRAFANA_HOST_PORT} (user admin; make kind-grafana-password)  Prometheus: http://127.0.0.1:${PROMETHEUS_HOST_PORT}"
log "cluster report: $BUILD/cluster-report.json"
