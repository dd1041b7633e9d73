"""In-cluster load on the loadgen node, two ways:

- ``engine="steps"`` (default, what ``make kind-load`` uses): one Job runs ``servecmp steps``,
  the same step engine, Locust users and profile as a local run, with cluster mode on; its run
  directory (steps.jsonl etc.) comes back and :func:`merge_run` appends its steps to the local
  run directory, so kind results are read and reported exactly like local ones;
- ``engine="locust"``: Locust master Job + Service and a worker Job (``--workers N``) running a
  repository locustfile headless, for more load than one process makes; Locust's CSV/HTML come back.

The master runs headless for a fixed time, writes Locust's CSV/HTML into /results and then
prints them to its log as a base64 tar between two marker lines; ``servecmp kind load`` (commands.py) reads
the log and unpacks it into ``runs/<id>/kind/<target>/`` (:func:`extract_results`). A finished
Job pod cannot be ``kubectl cp``-ed from; the log survives it.

The locustfile is one of the repository's own (``loadtests/locustfiles/``); the target is passed
as environment (``SERVECMP_*``, see :data:`ENV_CONTRACT`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from servecmp.experiment import Target
    from servecmp.results.store import RunStore

BEGIN = "---SERVECMP-RESULTS-BEGIN---"
END = "---SERVECMP-RESULTS-END---"
LOADGEN_ROLE = {"servecmp.io/role": "loadgen"}
# What a locustfile finds in its environment (the contract with loadtests/locustfiles/).
ENV_CONTRACT = (
    "SERVECMP_TARGET",  # target id, e.g. torchserve-grpc-bytes
    "SERVECMP_ADDRESS",  # <svc>.<ns>.svc:<port> (gRPC: the headless -grpc Service)
    "SERVECMP_CLUSTER_MODE",  # "1": cluster Service names are allowed load targets
    "SERVECMP_GRPC_LB",  # "round_robin": dial dns:///<address> and spread calls over pods
    "SERVECMP_EXPERIMENT",  # the experiment file, mounted from a ConfigMap (EXPERIMENT_MOUNT)
    "SERVECMP_MODEL",
)
_NAME = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")
# servecmp_* generator metrics, scraped by the chart's PodMonitor (port name `metrics`).
METRICS_PORT = 9646
# deploy/kind/loadgen.Dockerfile: the runtime stage's WORKDIR and the locustfiles copied into it
# (tests/test_kind_image_layout.py checks both against the Dockerfile).
IMAGE_WORKDIR = "/opt/servecmp"
LOCUSTFILE_DIR = "locustfiles"
# The experiment is passed in (a ConfigMap per Job), never expected inside the image.
EXPERIMENT_DIR = "/etc/servecmp"
EXPERIMENT_MOUNT = f"{EXPERIMENT_DIR}/experiment.yaml"
# Each finished step is printed to the Job's log as it lands (``servecmp steps``), one line:
# STEP_MARK + StepResult JSON. ``servecmp kind load`` follows the log while the Job runs, so a Job
# killed at its deadline (its pod deleted) loses no finished step.
STEP_MARK = "---SERVECMP-STEP--- "
# Seconds a Job gets beyond its steps' hard deadlines: pod start, imports, the results tar.
JOB_STARTUP_S = 120
# One step process at a time, single-threaded (gevent): one core; the parent mostly waits.
STEP_CPU = 1.0
# Peak RSS (MiB) of the step child per client class, measured on a build machine with
# `.venv/bin/python scripts/measure_step_memory.py` (resnet, VmHWM of the child, the Job's minimal
# environment, with prometheus multiprocess mode). 2026-12-07, after the steadiness rule started
# importing scipy in the step: REST clients 509-510 (concurrency 64, the lead's venv) and
# 583-598 (concurrency 16, a freshly installed venv of the same commit), TorchServe gRPC 568-583
# with the stubs cached (2026-11-25: 1545.3-1551.3 cold, protoc running in a fresh pod), TF Serving
# gRPC 937-994 -- only the TF Serving gRPC client imports TensorFlow. The parent `servecmp steps`
# process measured 36.6 MiB (2026-11-25). Each figure is the largest seen.
# tests/test_kind_loadgen.py re-measures one kind (slow).
# Keyed by the client a target's adapter names for its protocol (ProtocolSpec.client): a step's
# memory is its client's, so a server that reuses a client reuses the figure.
_C = "servecmp.load.clients."
STEP_PEAK_RSS_MIB: dict[str, float] = {
    f"{_C}torchserve_rest:TorchServeRestClient": 600.0,
    f"{_C}torchserve_grpc:TorchServeGrpcClient": 1552.0,  # protoc generating the TorchServe stubs in a fresh pod
    f"{_C}tfserving_rest:TFServingRestClient": 600.0,
    f"{_C}tfserving_grpc:TFServingGrpcClient": 1000.0,
}
PARENT_RSS_MIB = 64.0
MEMORY_HEADROOM = 1.5


@dataclass(frozen=True)
class LoadJob:
    run_id: str
    target: str  # Target.name
    address: str  # host:port of a cluster Service
    image: str  # servecmp/loadgen:<tag>
    namespace: str = "servecmp"
    locustfile: str = f"{LOCUSTFILE_DIR}/concurrency_sweep.py"  # relative to IMAGE_WORKDIR
    experiment_text: str = ""  # the experiment file's content (shipped as a ConfigMap)
    model: str = "resnet"
    users: int = 4
    spawn_rate: float = 4.0
    duration_s: int = 30
    workers: int = 1
    cpu: str = "1"
    memory: str = "1Gi"  # render: memory_for(target) (measured peak RSS x headroom)
    deadline_s: int = 0  # activeDeadlineSeconds; 0: duration_s + JOB_STARTUP_S (locust engine)
    extra_env: dict[str, str] = field(default_factory=dict)
    engine: str = "steps"  # "steps" | "locust"
    # steps engine: the server's metrics page, read at every window's edges (latency breakdown),
    # or why it is not read; each step then says so instead of carrying no breakdown
    server_metrics_url: str = ""
    server_metrics_unread: str = ""

    @property
    def name(self) -> str:
        """Job name prefix, unique per (run, target): at most 52 characters so ``-master`` /
        ``-worker`` and ``-experiment`` still fit a 63-character name. A longer one is cut and
        suffixed with a hash of the whole name: plain truncation gave two targets with a long
        common prefix the same Job, ConfigMap and Service."""
        raw = _NAME.sub("-", f"locust-{self.run_id}-{self.target}".lower()).strip("-")
        if len(raw) <= 52:
            return raw
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        return f"{raw[:43].strip('-')}-{digest}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "servecmp-loadgen",
            "app.kubernetes.io/part-of": "servecmp",
            # Case kept (label values may hold [A-Za-z0-9._-]): the chart's PodMonitor turns this
            # into the `run` label of the generator's series, which must equal the run directory
            # name, as a local run's `run` label does (observability/scrape_config.py).
            "servecmp.io/run-id": _LABEL_VALUE.sub("-", self.run_id)[:63].strip("-._"),
            "servecmp.io/load-job": self.name,
        }


def _env(job: LoadJob) -> list[dict[str, str]]:
    env = {
        "SERVECMP_TARGET": job.target,
        "SERVECMP_ADDRESS": job.address,
        "SERVECMP_CLUSTER_MODE": "1",
        "SERVECMP_GRPC_LB": "round_robin",
        "SERVECMP_EXPERIMENT": EXPERIMENT_MOUNT,
        "SERVECMP_MODEL": job.model,
        "HOME": "/tmp",
        "SERVECMP_SERVER_METRICS_URL": job.server_metrics_url,
        "SERVECMP_SERVER_METRICS_UNREAD": job.server_metrics_unread,
        **job.extra_env,
    }
    return [{"name": k, "value": str(v)} for k, v in env.items()]


def _pod_spec(job: LoadJob, role: str, command: list[str]) -> dict[str, Any]:
    res = {"cpu": job.cpu, "memory": job.memory}
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "nodeSelector": dict(LOADGEN_ROLE),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": f"locust-{role}",
                "image": job.image,
                "imagePullPolicy": "IfNotPresent",
                "workingDir": IMAGE_WORKDIR,
                "command": command,
                "env": _env(job),
                "ports": (
                    [{"name": "locust-bus", "containerPort": 5557, "protocol": "TCP"}]
                    if role == "master" and job.engine == "locust"
                    else []
                )
                + [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                "resources": {"requests": dict(res), "limits": dict(res)},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "results", "mountPath": "/results"},
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "experiment", "mountPath": EXPERIMENT_DIR, "readOnly": True},
                ],
            }
        ],
        "volumes": [
            {"name": "results", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "experiment", "configMap": {"name": f"{job.name}-experiment"}},
        ],
    }


def _job(job: LoadJob, role: str, command: list[str], completions: int) -> dict[str, Any]:
    labels = {**job.labels, "servecmp.io/locust-role": role}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{job.name}-{role}", "namespace": job.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "completions": completions,
            "parallelism": completions,
            "activeDeadlineSeconds": job.deadline_s or job.duration_s + JOB_STARTUP_S,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(job, role, command)},
        },
    }


def _steps_manifests(job: LoadJob) -> list[dict[str, Any]]:
    cmd = [
        "sh",
        "-c",
        'servecmp steps "$0" --target "$1" --address "$SERVECMP_ADDRESS" --run-id "$2" '
        f"--cluster-mode --metrics-port {METRICS_PORT} --metrics-host 0.0.0.0 --out /results/run "
        '--server-metrics-url "$SERVECMP_SERVER_METRICS_URL" '
        '--server-metrics-unread "$SERVECMP_SERVER_METRICS_UNREAD"; rc=$?; '
        f"echo '{BEGIN}'; tar -C /results -czf - . | base64; echo '{END}'; exit $rc",
        EXPERIMENT_MOUNT,
        job.target,
        job.run_id,
    ]
    return [_experiment_configmap(job), _job(job, "master", cmd, 1)]


def _experiment_configmap(job: LoadJob) -> dict[str, Any]:
    if not job.experiment_text.strip():
        raise ValueError(
            "experiment_text: the experiment file's content is required (it is mounted into the Job)"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{job.name}-experiment",
            "namespace": job.namespace,
            "labels": job.labels,
        },
        "data": {"experiment.yaml": job.experiment_text},
    }


def manifests(job: LoadJob) -> list[dict[str, Any]]:
    """``steps``: ConfigMap + Job. ``locust``: ConfigMap, Service (workers -> master bus), master
    Job, worker Job. The ConfigMap carries the experiment file."""
    if job.engine == "steps":
        return _steps_manifests(job)
    if job.engine != "locust":
        raise ValueError(f"engine: expected 'steps' or 'locust', got {job.engine!r}")
    master_cmd = [
        "sh",
        "-c",
        'locust -f "$0" --master --headless --expect-workers "$1" -u "$2" -r "$3" -t "$4"s '
        '--host "http://$SERVECMP_ADDRESS" --csv /results/locust --html /results/report.html '
        "--only-summary; rc=$?; "
        f"echo '{BEGIN}'; tar -C /results -czf - . | base64; echo '{END}'; exit $rc",
        job.locustfile,
        str(job.workers),
        str(job.users),
        str(job.spawn_rate),
        str(job.duration_s),
    ]
    worker_cmd = [
        "locust",
        "-f",
        job.locustfile,
        "--worker",
        "--master-host",
        f"{job.name}-master",
    ]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{job.name}-master",
            "namespace": job.namespace,
            "labels": job.labels,
        },
        "spec": {
            "clusterIP": "None",
            "selector": {**job.labels, "servecmp.io/locust-role": "master"},
            "ports": [{"name": "locust-bus", "port": 5557, "targetPort": 5557, "protocol": "TCP"}],
        },
    }
    return [
        _experiment_configmap(job),
        service,
        _job(job, "master", master_cmd, 1),
        _job(job, "worker", worker_cmd, job.workers),
    ]


def load_job(
    exp: Any,
    target_name: str,
    *,
    run_id: str,
    address: str,
    image: str,
    namespace: str,
    experiment_text: str,
    engine: str = "steps",
    locust_args: dict[str, Any] | None = None,
    server_metrics: tuple[str, str] = ("", ""),
) -> LoadJob:
    """The load Job for one target of ``exp``: sized from the experiment; ``locust_args``
    (users, duration, workers, locustfile) apply to the Locust engine only. ``server_metrics``:
    (the server's metrics URL, why it is not read), one of them empty (commands.py)."""
    match = [t for t in exp.targets if t.name == target_name]
    if not match:
        raise ValueError(
            f"target: {target_name!r} is not in the experiment; its targets: "
            f"{', '.join(t.name for t in exp.targets)}"
        )
    given = {k: v for k, v in (locust_args or {}).items() if v is not None}
    if engine == "steps" and given:
        raise ValueError(
            f"{', '.join('--' + k for k in given)}: only with --engine locust (the steps "
            f"engine runs the experiment's own load profile)"
        )
    users = int(given.get("users", 4))
    locustfile = (
        str(given.get("locustfile", "concurrency_sweep")).removesuffix(".py").split("/")[-1]
    )
    return LoadJob(
        run_id=run_id,
        target=target_name,
        address=address,
        image=image,
        namespace=namespace,
        locustfile=f"{LOCUSTFILE_DIR}/{locustfile}.py",
        experiment_text=experiment_text,
        model=exp.model,
        users=users,
        spawn_rate=float(users),
        duration_s=int(given.get("duration", 30)),
        workers=int(given.get("workers", 1)),
        engine=engine,
        cpu=f"{job_cpu(exp):g}",
        memory=f"{memory_mib_for(match[0])}Mi",
        deadline_s=job_deadline_s(exp, target_name) if engine == "steps" else 0,
        server_metrics_url=server_metrics[0],
        server_metrics_unread=server_metrics[1],
    )


# ---- sizing from the experiment ---------------------------------------------------------------
def job_cpu(exp: Any = None) -> float:
    """CPU request = limit of a load Job (the preflight adds it to the loadgen node)."""
    return STEP_CPU


def job_deadline_s(exp: Any, target_name: str) -> int:
    """activeDeadlineSeconds of a steps Job: the sum of each step's hard deadline, from the same
    plan and StepSpec the engine uses (servecmp.load.engine.sweep.run_target), plus the burn-in's
    (``servecmp steps`` burns the server in first) and JOB_STARTUP_S."""
    from servecmp.load.engine.burnin import burn_in_spec
    from servecmp.load.engine.spec import make_spec, plan_steps

    (target,) = [t for t in exp.targets if t.name == target_name]
    burn = burn_in_spec(
        exp, target, "svc.ns.svc:1", run_id="deadline", after="start", number=0, cluster_mode=True
    )
    total = burn.hard_deadline_s() if burn is not None else 0.0
    for i, param in enumerate(plan_steps(exp.load)):
        spec = make_spec(
            run_id="deadline",
            index=i,
            target=target,
            address="svc.ns.svc:1",
            load=exp.load,
            param=param,
            model=exp.model,
            payload=exp.payload,
            seed=exp.seed,
            cluster_mode=True,
        )
        total += spec.hard_deadline_s()
    return int(total + JOB_STARTUP_S + 0.999)


def client_of(target: Target) -> str:
    """``module:Class`` of the client a target's steps use (its server adapter's ProtocolSpec)."""
    from servecmp.servers import registry

    return next(
        s.client for s in registry.get(target.server).protocols if s.protocol == target.protocol
    )


def memory_mib_for(target: Target) -> int:
    """Memory request = limit of a steps Job for one target: the measured peak RSS of the step
    child with its client (STEP_PEAK_RSS_MIB; the largest for a client not measured) plus the
    parent ``servecmp steps`` process, with headroom."""
    step = STEP_PEAK_RSS_MIB.get(client_of(target))
    if step is None:
        step = max(STEP_PEAK_RSS_MIB.values())
    return int(math.ceil((step + PARENT_RSS_MIB) * MEMORY_HEADROOM / 64.0) * 64)


def extract_results(log_text: str, dest: Path) -> list[Path]:
    """Unpack the base64 tar the master printed between the markers into ``dest``."""
    start = log_text.rfind(BEGIN)
    stop = log_text.find(END, start + 1) if start >= 0 else -1
    if start < 0 or stop < 0:
        raise ValueError(
            "no Locust results in the master log (markers missing: did the Job finish?)"
        )
    blob = base64.b64decode("".join(log_text[start + len(BEGIN) : stop].split()))
    dest.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(f"unsafe path in results tar: {member.name}")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            fh = tar.extractfile(member)
            assert fh is not None
            target.write_bytes(fh.read())
            out.append(target)
    return sorted(out)


def steps_from_log(log_text: str) -> list[Any]:
    """The StepResults ``servecmp steps`` printed as they landed (STEP_MARK lines), in order."""
    from servecmp.results.schema import StepResult

    out = []
    for line in log_text.splitlines():
        if line.startswith(STEP_MARK):
            out.append(StepResult.model_validate(json.loads(line[len(STEP_MARK) :])))
    return out


def merge_run(run_dir: Path, remote_run: Path | None, log_text: str = "") -> int:
    """Append the in-cluster run's steps and target availability to ``run_dir`` (same format,
    re-indexed after the steps already there). The steps come from the extracted run directory
    when the Job finished, else from the step lines of the followed log (a Job killed at its
    deadline). Returns the number of steps merged."""
    from servecmp.results.store import RunStore

    local = RunStore(run_dir)
    remote = (
        RunStore(remote_run)
        if remote_run is not None and (remote_run / "steps.jsonl").is_file()
        else None
    )
    steps = list(remote.read_steps().steps) if remote is not None else steps_from_log(log_text)
    start = len(local.read_steps().steps)
    for i, step in enumerate(steps):
        local.append_step(step.model_copy(update={"index": start + i, "run_id": run_dir.name}))
    if remote is not None:
        for t in remote.read_targets():
            local.append_target(t)
        _merge_burn_ins(local, remote)
    return len(steps)


def _merge_burn_ins(local: RunStore, remote: RunStore) -> None:
    """The Job's burn-in records join the local run's provenance (meta.json ``burn_in``)."""
    if not (local.dir / "meta.json").is_file() or not (remote.dir / "meta.json").is_file():
        return
    records = remote.read_meta().burn_in
    if records:
        meta = local.read_meta()
        meta.burn_in.extend(records)
        local.write_meta(meta)
