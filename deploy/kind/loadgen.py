"""In-cluster load on the loadgen node, two ways:

- ``engine="steps"`` (default, what ``make kind-load`` uses): one Job runs ``servecmp steps``,
  the same step engine, Locust users and profile as a local run, with cluster mode on; its run
  directory (steps.jsonl etc.) comes back and :func:`merge_run` appends its steps to the local
  run directory, so kind results are read and reported exactly like local ones;
- ``engine="locust"``: Locust master Job + Service and a worker Job (``--workers N``) running a
  repository locustfile headless, for more load than one process makes; Locust's CSV/HTML come back.

The master runs headless for a fixed time, writes Locust's CSV/HTML into /results and then
prints them to its log as a base64 tar between two marker lines; ``scripts/kind-load.sh`` reads
the log and unpacks it into ``runs/<id>/kind/<target>/`` (:func:`extract_results`). A finished
Job pod cannot be ``kubectl cp``-ed from; the log survives it.

The locustfile is one of the repository's own (``loadtests/locustfiles/``); the target is passed
as environment (``SERVECMP_*``, see :data:`ENV_CONTRACT`).
"""

from __future__ import annotations

import argparse
import base64
import io
import re
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BEGIN = "---SERVECMP-RESULTS-BEGIN---"
END = "---SERVECMP-RESULTS-END---"
LOADGEN_ROLE = {"servecmp.io/role": "loadgen"}
# What a locustfile finds in its environment (the contract with loadtests/locustfiles/).
ENV_CONTRACT = (
    "SERVECMP_TARGET",  # target id, e.g. torchserve-grpc-bytes
    "SERVECMP_ADDRESS",  # <svc>.<ns>.svc:<port> (gRPC: the headless -grpc Service)
    "SERVECMP_CLUSTER_MODE",  # "1": cluster Service names are allowed load targets
    "SERVECMP_GRPC_LB",  # "round_robin": dial dns:///<address> and spread calls over pods
    "SERVECMP_EXPERIMENT",  # experiment file inside the image
    "SERVECMP_MODEL",
)
_NAME = re.compile(r"[^a-z0-9-]+")
# servecmp_* generator metrics, scraped by the chart's PodMonitor (port name `metrics`).
METRICS_PORT = 9646
# deploy/kind/loadgen.Dockerfile: the runtime stage's WORKDIR and the locustfiles copied into it
# (tests/test_kind_image_layout.py checks both against the Dockerfile).
IMAGE_WORKDIR = "/opt/servecmp"
LOCUSTFILE_DIR = "locustfiles"


@dataclass(frozen=True)
class LoadJob:
    run_id: str
    target: str  # Target.name
    address: str  # host:port of a cluster Service
    image: str  # servecmp/loadgen:<tag>
    namespace: str = "servecmp"
    locustfile: str = f"{LOCUSTFILE_DIR}/concurrency_sweep.py"  # relative to IMAGE_WORKDIR
    experiment: str = "experiments/quick.yaml"
    model: str = "resnet"
    users: int = 4
    spawn_rate: float = 4.0
    duration_s: int = 30
    workers: int = 1
    cpu: str = "1"
    memory: str = "1Gi"
    extra_env: dict[str, str] = field(default_factory=dict)
    engine: str = "steps"  # "steps" | "locust"

    @property
    def name(self) -> str:
        raw = f"locust-{self.run_id}-{self.target}".lower()
        return _NAME.sub("-", raw)[:52].strip("-")

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "servecmp-loadgen",
            "app.kubernetes.io/part-of": "servecmp",
            "servecmp.io/run-id": _NAME.sub("-", self.run_id.lower())[:63].strip("-"),
            "servecmp.io/load-job": self.name,
        }


def _env(job: LoadJob) -> list[dict[str, str]]:
    env = {
        "SERVECMP_TARGET": job.target,
        "SERVECMP_ADDRESS": job.address,
        "SERVECMP_CLUSTER_MODE": "1",
        "SERVECMP_GRPC_LB": "round_robin",
        "SERVECMP_EXPERIMENT": job.experiment,
        "SERVECMP_MODEL": job.model,
        "HOME": "/tmp",
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
                ],
            }
        ],
        "volumes": [{"name": "results", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
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
            "activeDeadlineSeconds": job.duration_s + 300,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(job, role, command)},
        },
    }


def _steps_manifests(job: LoadJob) -> list[dict[str, Any]]:
    cmd = [
        "sh",
        "-c",
        'servecmp steps "$0" --target "$1" --address "$SERVECMP_ADDRESS" --run-id "$2" '
        f"--cluster-mode --metrics-port {METRICS_PORT} --metrics-host 0.0.0.0 --out /results/run; rc=$?; "
        f"echo '{BEGIN}'; tar -C /results -czf - . | base64; echo '{END}'; exit $rc",
        job.experiment,
        job.target,
        job.run_id,
    ]
    return [_job(job, "master", cmd, 1)]


def manifests(job: LoadJob) -> list[dict[str, Any]]:
    """``steps``: one Job. ``locust``: Service (workers -> master bus), master Job, worker Job."""
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
        service,
        _job(job, "master", master_cmd, 1),
        _job(job, "worker", worker_cmd, job.workers),
    ]


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


def merge_run(run_dir: Path, remote_run: Path) -> int:
    """Append the in-cluster run's steps and target availability to ``run_dir`` (same format,
    re-indexed after the steps already there). Returns the number of steps merged."""
    from servecmp.results.store import RunStore

    local, remote = RunStore(run_dir), RunStore(remote_run)
    read = remote.read_steps()
    start = len(local.read_steps().steps)
    for i, step in enumerate(read.steps):
        local.append_step(step.model_copy(update={"index": start + i, "run_id": run_dir.name}))
    for t in remote.read_targets():
        local.append_target(t)
    return len(read.steps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="in-cluster Locust manifests / results")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="print the manifests (YAML) for one target")
    r.add_argument("--run-id", required=True)
    r.add_argument("--target", required=True)
    r.add_argument("--address", required=True)
    r.add_argument("--image", required=True)
    r.add_argument("--namespace", default="servecmp")
    r.add_argument("--locustfile", default=LoadJob.locustfile)
    r.add_argument("--experiment", default=LoadJob.experiment)
    r.add_argument("--model", default="resnet")
    r.add_argument("--users", type=int, default=4)
    r.add_argument("--duration", type=int, default=30)
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--print-name", action="store_true", help="print only the job name prefix")
    r.add_argument("--engine", choices=["steps", "locust"], default="steps")
    x = sub.add_parser("extract", help="unpack results from a master log on stdin")
    x.add_argument("dest", type=Path)
    m = sub.add_parser("merge", help="append an extracted in-cluster run's steps to a run dir")
    m.add_argument("run_dir", type=Path)
    m.add_argument("remote_run", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "merge":
        print(f"merged {merge_run(args.run_dir, args.remote_run)} step(s)")
        return 0
    if args.cmd == "extract":
        for path in extract_results(sys.stdin.read(), args.dest):
            print(path)
        return 0
    job = LoadJob(
        run_id=args.run_id,
        target=args.target,
        address=args.address,
        image=args.image,
        namespace=args.namespace,
        locustfile=args.locustfile,
        experiment=args.experiment,
        model=args.model,
        users=args.users,
        spawn_rate=float(args.users),
        duration_s=args.duration,
        workers=args.workers,
        engine=args.engine,
    )
    if args.print_name:
        print(job.name)
    else:
        print(yaml.safe_dump_all(manifests(job), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
