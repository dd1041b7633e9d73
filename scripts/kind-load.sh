#!/usr/bin/env bash
# In-cluster load on the loadgen node against each target over REST and gRPC. Default engine
# "steps": the same step engine and profile as a local run (the experiment's own load section);
# its steps are merged into runs/<id>/steps.jsonl (same format, so `servecmp report runs/<id>`
# works). --engine locust runs Locust master + workers instead (CSV/HTML under runs/<id>/kind/<target>/);
# --duration/--users/--workers/--locustfile apply to it only. Usage:
#   scripts/kind-load.sh [experiment.yaml] [--target NAME]... [--recover]
#   scripts/kind-load.sh [experiment.yaml] --engine locust [--duration S] [--users N] [--workers N] [--locustfile NAME]
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"
cd "$ROOT"
EXPERIMENT="experiments/quick.yaml"; TARGETS=(); RECOVER=0; ENGINE=steps; LOCUST_ARGS=()
while (($#)); do
  case "$1" in
    --duration|--users|--workers|--locustfile) LOCUST_ARGS+=("$1" "$2"); shift 2;;
    --target) TARGETS+=("$2"); shift 2;;
    --recover) RECOVER=1; shift;;
    --engine) ENGINE="$2"; shift 2;;
    -*) die "unknown option $1";;
    *) EXPERIMENT="$1"; shift;;
  esac
done
[[ "$ENGINE" == steps || "$ENGINE" == locust ]] || die "--engine: expected steps or locust, got '$ENGINE'"
if [[ "$ENGINE" == steps ]] && ((${#LOCUST_ARGS[@]})); then
  die "${LOCUST_ARGS[0]} applies to --engine locust only (the steps engine runs the experiment's load profile)"
fi
[[ -f "$EXPERIMENT" ]] || die "experiment file not found: $EXPERIMENT"
check_prereqs
cluster_exists || die "no cluster '$KIND_CLUSTER_NAME': run make kind-up first"
LOADGEN_CPU=1  # one steps Job; Locust: a master + --workers workers, one core each
for ((i = 0; i < ${#LOCUST_ARGS[@]}; i += 2)); do
  [[ "${LOCUST_ARGS[i]}" == --workers ]] && LOADGEN_CPU=$((1 + LOCUST_ARGS[i + 1]))
done
[[ "$ENGINE" == locust && "$LOADGEN_CPU" == 1 ]] && LOADGEN_CPU=2
"$PY" -m servecmp.deploy.kind.preflight "$EXPERIMENT" --loadgen-cpu "$LOADGEN_CPU" || exit 3

RUN_ID="kind-$(date -u +%Y%m%dT%H%M%SZ)"
RUN_DIR="$ROOT/runs/$RUN_ID"
mkdir -p "$RUN_DIR/kind"
cp "$EXPERIMENT" "$RUN_DIR/experiment.yaml"

# Load generator image: the installed wheel of this working tree, tagged by what it copies.
GEN_IMAGE="servecmp/loadgen:$("$PY" -m servecmp.deploy.kind.images tag deploy/kind/loadgen.Dockerfile --context .)"
if ! docker image inspect "$GEN_IMAGE" >/dev/null 2>&1; then
  log "building $GEN_IMAGE"
  docker build -q -f deploy/kind/loadgen.Dockerfile -t "$GEN_IMAGE" . >/dev/null
fi
"$PY" -m servecmp.deploy.kind.images load "$GEN_IMAGE" --cluster "$KIND_CLUSTER_NAME" --role loadgen

# meta.json: server images (tag + digest), the runtimes the servers report, kind placement truth.
"$PY" -m servecmp.deploy.kind.provenance --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" \
  meta "$EXPERIMENT" --run-id "$RUN_ID" --run-dir "$RUN_DIR" --loadgen-image "$GEN_IMAGE"

# target name -> in-cluster address (REST: the ClusterIP Service; gRPC: the headless Service).
mapfile -t PLAN < <("$PY" -m servecmp.deploy.kind.provenance --namespace "$SERVECMP_NAMESPACE" \
  addresses "$EXPERIMENT" --release "$SERVECMP_RELEASE" "${TARGETS[@]/#/--target=}")
((${#PLAN[@]})) || die "no REST/gRPC targets selected in $EXPERIMENT"

rc=0
for line in "${PLAN[@]}"; do
  read -r target address <<<"$line"
  args=(--run-id "$RUN_ID" --target "$target" --address "$address" --image "$GEN_IMAGE"
        --namespace "$SERVECMP_NAMESPACE" --experiment "$EXPERIMENT" --engine "$ENGINE" "${LOCUST_ARGS[@]}")
  name="$("$PY" -m servecmp.deploy.kind.loadgen render "${args[@]}" --print-name)"
  manifest="$RUN_DIR/kind/$target.yaml"
  "$PY" -m servecmp.deploy.kind.loadgen render "${args[@]}" > "$manifest"
  deadline="$("$PY" -c 'import sys, yaml; print(max(d["spec"]["activeDeadlineSeconds"] for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Job"))' "$manifest")"
  log "load: $target -> $address ($ENGINE engine, Job deadline ${deadline}s)"
  "${KUBECTL[@]}" apply -f "$manifest" >/dev/null
  # Follow the log while the Job runs: each finished step lands here at once, so a Job killed at
  # its deadline (its pod deleted with its log) loses no finished step. `kubectl logs -f` exits at
  # once with "is waiting to start: ContainerCreating" on a container not started yet, so wait
  # for it first (cluster.py wait-started; it fails fast on a stuck pod).
  mlog="$RUN_DIR/kind/$target.master.log"
  { "$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" \
      wait-started "$name-master" --timeout 300 >/dev/null \
    && "${KUBECTL[@]}" -n "$SERVECMP_NAMESPACE" logs -f "job/$name-master"; } > "$mlog" 2>&1 &
  follower=$!
  if [[ "$RECOVER" == 1 ]]; then
    sleep 20
    "$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" recover \
      --server "${target%%-*}" --out "$RUN_DIR/kind/$target/recovery.json" || rc=1
  fi
  "$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" \
    wait-job "$name-master" --timeout $((deadline + 60)) || { log "$target: load Job did not complete"; rc=1; }
  wait "$follower" || true
  if ! "$PY" -m servecmp.deploy.kind.loadgen extract "$RUN_DIR/kind/$target" < "$mlog" >/dev/null 2>&1; then
    # the follower may have been cut off (API server or kubelet restart): the finished pod's
    # whole log once more, kept only when it carries the results tar
    "${KUBECTL[@]}" -n "$SERVECMP_NAMESPACE" logs "job/$name-master" > "$mlog.full" 2>/dev/null || true
    if "$PY" -m servecmp.deploy.kind.loadgen extract "$RUN_DIR/kind/$target" < "$mlog.full" >/dev/null 2>&1; then
      mv "$mlog.full" "$mlog"
    else
      rm -f "$mlog.full"
      log "$target: no results tar in the log (Job killed?); keeping the steps it printed"
    fi
  fi
  if [[ "$ENGINE" == steps ]]; then
    "$PY" -m servecmp.deploy.kind.loadgen merge "$RUN_DIR" "$RUN_DIR/kind/$target/run" --log "$mlog" || rc=1
  fi
  "${KUBECTL[@]}" -n "$SERVECMP_NAMESPACE" delete job,service,configmap -l "servecmp.io/load-job=$name" --wait=false >/dev/null || true
done
"$PY" -m servecmp.deploy.kind.cluster --context "$KCTX" --namespace "$SERVECMP_NAMESPACE" report --out "$RUN_DIR/kind/cluster-report.json" >/dev/null
recoveries=(); for f in "$RUN_DIR"/kind/*/recovery.json; do [[ -f "$f" ]] && recoveries+=(--recovery "$f"); done
"$PY" -m servecmp.deploy.kind.cluster friction --report "$RUN_DIR/kind/cluster-report.json" --run-dir "$RUN_DIR" "${recoveries[@]}"
log "results: $RUN_DIR"
[[ "$ENGINE" == steps ]] && { "$PY" -m servecmp.cli report "$RUN_DIR" || rc=1; }
exit "$rc"
