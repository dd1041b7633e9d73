#!/usr/bin/env bash
# Create (or reuse) the servecmp kind cluster and install monitoring + both servers. Idempotent:
# re-running upgrades in place. Usage: scripts/kind-up.sh [experiment.yaml]
# The logic lives in Python (servecmp.deploy.kind.*); this script checks prerequisites and calls it.
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"
EXPERIMENT="${1:-${EXPERIMENT:-experiments/quick.yaml}}"
cd "$ROOT"
[[ -f "$EXPERIMENT" ]] || die "experiment file not found: $EXPERIMENT"

check_prereqs
# 0. does the experiment fit on this host's kind nodes? (seconds, before anything is created)
"$PY" -m servecmp.deploy.kind.preflight "$EXPERIMENT" || exit 3
mkdir -p "$BUILD/artifacts"

# 1. cluster -----------------------------------------------------------------------------------
if cluster_exists; then
  log "cluster '$KIND_CLUSTER_NAME' exists; reusing it"
else
  log "creating cluster '$KIND_CLUSTER_NAME' ($KIND_NODE_IMAGE)"
  # extraMounts need absolute host paths: render the config with this checkout's build dir
  # (through YAML, not sed: a checkout path with '#', '&' or ': ' broke the substitution or the YAML).
  "$PY" -c 'import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
for node in cfg["nodes"]:
    for m in node.get("extraMounts") or []:
        if m["hostPath"] == "build/kind/artifacts":
            m["hostPath"] = sys.argv[2]
yaml.safe_dump(cfg, open(sys.argv[3], "w"), sort_keys=False)' deploy/kind/kind-config.yaml "$BUILD/artifacts" "$BUILD/kind-config.yaml"
  kind create cluster --name "$KIND_CLUSTER_NAME" --image "$KIND_NODE_IMAGE" \
    --config "$BUILD/kind-config.yaml" --wait 180s
fi
"${KUBECTL[@]}" wait --for=condition=Ready nodes --all --timeout=180s

# 2. model artifacts (the measured version only) + generated configs ------------------------------
MODEL="$("$PY" -c 'import sys; from servecmp.experiment import load_experiment; print(load_experiment(sys.argv[1]).model)' "$EXPERIMENT")"
log "exporting model '$MODEL' (servecmp export) and generating configs for $EXPERIMENT"
"$PY" -m servecmp.cli export --model "$MODEL" --out build/models
"$PY" -m servecmp.deploy.kind.helmvalues "$EXPERIMENT" --out "$BUILD"
# one staged tree (v1 only) is both the artifacts image's context and the hostPath copy
"$PY" -m servecmp.deploy.kind.artifacts stage "build/models/$MODEL" "$BUILD/artifacts" --model "$MODEL" >/dev/null

# 3. images built here, tagged by content, loaded onto the server node only -----------------------
ART_TAG="${MODEL}-$("$PY" -m servecmp.deploy.kind.images tag deploy/kind/artifacts.Dockerfile --context "$BUILD/artifacts")"
ART_IMAGE="servecmp/model-artifacts:$ART_TAG"
TS_TAG="$("$PY" -m servecmp.deploy.kind.images tag deploy/kind/torchserve.Dockerfile --context . \
  --prefix "$("$PY" -c 'import yaml; print(yaml.safe_load(open("helm/servecmp/charts/torchserve/values.yaml"))["image"]["tag"])')")"
TS_IMAGE="servecmp/torchserve:$TS_TAG"
docker image inspect "$ART_IMAGE" >/dev/null 2>&1 || { log "building $ART_IMAGE"; docker build -q -f deploy/kind/artifacts.Dockerfile -t "$ART_IMAGE" "$BUILD/artifacts" >/dev/null; }
docker image inspect "$TS_IMAGE" >/dev/null 2>&1 || { log "building $TS_IMAGE (a few minutes the first time)"; docker build -q -f deploy/kind/torchserve.Dockerfile -t "$TS_IMAGE" . >/dev/null; }
for image in "$ART_IMAGE" "$TS_IMAGE"; do
  "$PY" -m servecmp.deploy.kind.images load "$image" --cluster "$KIND_CLUSTER_NAME" --role server
done

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
  -f deploy/kind/kube-prometheus-stack-values.yaml
# our wait stops at a stuck pod (Pending, crash loop, image pull) with its events; Prometheus is
# a StatefulSet the operator creates later (alertmanager is off: exactly one)
"$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$KPS_NAMESPACE" wait --timeout 600 \
  --min-statefulsets 1

# 5. our chart, in a namespace that enforces Pod Security "restricted" -----------------------------
# (global.modelArtifacts.source=hostPath needs SERVECMP_POD_SECURITY=privileged: PSS forbids hostPath)
"${KUBECTL[@]}" create namespace "$SERVECMP_NAMESPACE" --dry-run=client -o yaml | "${KUBECTL[@]}" apply -f - >/dev/null
"${KUBECTL[@]}" label --overwrite namespace "$SERVECMP_NAMESPACE" \
  "pod-security.kubernetes.io/enforce=${SERVECMP_POD_SECURITY:-restricted}" \
  "pod-security.kubernetes.io/warn=restricted" >/dev/null
log "installing helm/servecmp (release $SERVECMP_RELEASE, namespace $SERVECMP_NAMESPACE)"
mapfile -t SET_FILES < <("$PY" -m servecmp.deploy.kind.helmvalues "$EXPERIMENT" --out "$BUILD" --print-set-file)
"$HELM" upgrade --install "$SERVECMP_RELEASE" helm/servecmp \
  --kube-context "$KCTX" --namespace "$SERVECMP_NAMESPACE" \
  -f "$BUILD/experiment-values.yaml" \
  --set global.monitoring.release="$KPS_RELEASE" \
  --set global.modelArtifacts.image.tag="$ART_TAG" \
  --set torchserve.image.tag="$TS_TAG" \
  "${SET_FILES[@]}" ${SERVECMP_HELM_ARGS:-}

# 6. wait (fail fast on a stuck pod) + record install -> Ready, restarts, image sizes; helm test ---
"$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" wait --timeout 600
"$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" report --out "$BUILD/cluster-report.json" >/dev/null
"$HELM" test "$SERVECMP_RELEASE" --kube-context "$KCTX" --namespace "$SERVECMP_NAMESPACE" --logs --timeout 5m
log "ready. Grafana: http://127.0.0.1:${GRAFANA_HOST_PORT} (user admin; make kind-grafana-password)  Prometheus: http://127.0.0.1:${PROMETHEUS_HOST_PORT}"
log "cluster report: $BUILD/cluster-report.json"
