#!/usr/bin/env bash
# In-cluster load on the loadgen node against each target over REST and gRPC. Default engine
# "steps": the same step engine and profile as a local run; its steps are merged into
# runs/<id>/steps.jsonl (same format, so `servecmp report runs/<id>` works). --engine locust runs
# Locust master + workers instead (CSV/HTML under runs/<id>/kind/<target>/). Usage:
#   scripts/kind-load.sh [experiment.yaml] [--engine steps|locust] [--duration S] [--users N] [--workers N] [--target NAME]... [--recover]
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"
cd "$ROOT"
EXPERIMENT="experiments/quick.yaml"; DURATION=30; USERS=4; WORKERS=1; TARGETS=(); RECOVER=0; ENGINE=steps
while (($#)); do
  case "$1" in
    --duration) DURATION="$2"; shift 2;;
    --users) USERS="$2"; shift 2;;
    --workers) WORKERS="$2"; shift 2;;
    --target) TARGETS+=("$2"); shift 2;;
    --recover) RECOVER=1; shift;;
    --engine) ENGINE="$2"; shift 2;;
    -*) die "unknown option $1";;
    *) EXPERIMENT="$1"; shift;;
  esac
done
check_prereqs
cluster_exists || die "no cluster '$KIND_CLUSTER_NAME': run make kind-up first"
LOCUSTFILE="${LOCUSTFILE:-loadtests/locustfiles/concurrency_sweep.py}"
[[ -f "$LOCUSTFILE" ]] || die "$LOCUSTFILE not found (set LOCUSTFILE=loadtests/locustfiles/<file>.py)"

RUN_ID="kind-$(date -u +%Y%m%dT%H%M%SZ)"
RUN_DIR="$ROOT/runs/$RUN_ID"
mkdir -p "$RUN_DIR/kind"
cp "$EXPERIMENT" "$RUN_DIR/experiment.yaml"
"$PY" - "$EXPERIMENT" "$RUN_ID" "$RUN_DIR" <<'PYEOF'
import sys
from servecmp.experiment import load_experiment
from servecmp.results.provenance import build_meta
from servecmp.results.store import RunStore
exp = load_experiment(sys.argv[1])
RunStore(sys.argv[3]).write_meta(build_meta(exp, sys.argv[2], placement={"kind": "kind cluster: servers and loadgen on separate nodes"}))
PYEOF

# Load generator image: this checkout's code, tagged by its content.
GEN_TAG="$(git ls-files -s pyproject.toml servecmp models deploy loadtests experiments | sha256sum | cut -c1-12)"
GEN_IMAGE="servecmp/loadgen:$GEN_TAG"
if ! docker image inspect "$GEN_IMAGE" >/dev/null 2>&1; then
  log "building $GEN_IMAGE"
  docker build -q -f deploy/kind/loadgen.Dockerfile -t "$GEN_IMAGE" . >/dev/null
fi
kind load docker-image --name "$KIND_CLUSTER_NAME" "$GEN_IMAGE"

# target name -> in-cluster address (REST: the ClusterIP Service; gRPC: the headless Service).
mapfile -t PLAN < <("$PY" - "$EXPERIMENT" "$SERVECMP_RELEASE" "$SERVECMP_NAMESPACE" "${TARGETS[@]}" <<'PYEOF'
import sys
from servecmp.experiment import load_experiment
exp = load_experiment(sys.argv[1]); rel, ns = sys.argv[2], sys.argv[3]; only = set(sys.argv[4:])
ports = {("torchserve", "rest"): ("", 8080), ("torchserve", "grpc"): ("-grpc", 7070),
         ("tfserving", "rest"): ("", 8501), ("tfserving", "grpc"): ("-grpc", 8500)}
for t in exp.targets:
    key = (t.server.value, t.protocol.value)
    if key in ports and (not only or t.name in only):
        suffix, port = ports[key]
        print(f"{t.name} {rel}-{t.server.value}{suffix}.{ns}.svc:{port} {exp.model}")
PYEOF
)
((${#PLAN[@]})) || die "no REST/gRPC targets selected in $EXPERIMENT"

rc=0
for line in "${PLAN[@]}"; do
  read -r target address model <<<"$line"
  log "load: $target -> $address ($USERS users, ${DURATION}s, $WORKERS worker(s))"
  args=(--run-id "$RUN_ID" --target "$target" --address "$address" --image "$GEN_IMAGE"
        --namespace "$SERVECMP_NAMESPACE" --locustfile "$LOCUSTFILE" --experiment "$EXPERIMENT"
        --model "$model" --users "$USERS" --duration "$DURATION" --workers "$WORKERS" --engine "$ENGINE")
  name="$("$PY" -m servecmp.deploy.kind.loadgen render "${args[@]}" --print-name)"
  "$PY" -m servecmp.deploy.kind.loadgen render "${args[@]}" | "${KUBECTL[@]}" apply -f - >/dev/null
  if [[ "$RECOVER" == 1 ]]; then
    sleep $((DURATION / 3))
    "$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" recover \
      --server "${target%%-*}" --out "$RUN_DIR/kind/$target/recovery.json" || rc=1
  fi
  "${KUBECTL[@]}" -n "$SERVECMP_NAMESPACE" wait --for=condition=complete "job/$name-master" \
    --timeout=$((DURATION + 300))s || { log "$target: master job did not complete"; rc=1; }
  "${KUBECTL[@]}" -n "$SERVECMP_NAMESPACE" logs "job/$name-master" > "$RUN_DIR/kind/$target.master.log" || true
  "$PY" -m servecmp.deploy.kind.loadgen extract "$RUN_DIR/kind/$target" < "$RUN_DIR/kind/$target.master.log" >/dev/null \
    || { log "$target: no results in the master log"; rc=1; }
  if [[ "$ENGINE" == steps && -d "$RUN_DIR/kind/$target/run" ]]; then
    "$PY" -m servecmp.deploy.kind.loadgen merge "$RUN_DIR" "$RUN_DIR/kind/$target/run" || rc=1
  fi
  "${KUBECTL[@]}" -n "$SERVECMP_NAMESPACE" delete job,service -l "servecmp.io/load-job=$name" --wait=false >/dev/null || true
done
"$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" report --out "$RUN_DIR/kind/cluster-report.json" >/dev/null
recoveries=(); for f in "$RUN_DIR"/kind/*/recovery.json; do [[ -f "$f" ]] && recoveries+=(--recovery "$f"); done
"$PY" -m servecmp.deploy.kind.cluster friction --report "$RUN_DIR/kind/cluster-report.json" --run-dir "$RUN_DIR" "${recoveries[@]}"
log "results: $RUN_DIR"
[[ "$ENGINE" == steps ]] && { "$PY" -m servecmp.cli report "$RUN_DIR" || rc=1; }
exit "$rc"
