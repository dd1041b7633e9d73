"""Cluster measurements for the kind path, with the official ``kubernetes`` client.

What it records (``python -m servecmp.cluster.cluster report``, a child process of ``servecmp kind up|load``): per server, install -> Ready
seconds, pod restarts, and the image sizes the nodes report (``node.status.images``); and
(``recover``) the seconds from deleting a server pod under load until the Deployment is back to
full strength with Ready pods (readiness = model loaded, see the chart's probes).

The pure parts (parsing API objects) take plain client model objects and are unit-tested with
fakes; everything that talks to a cluster goes through a ``CoreV1Api``/``AppsV1Api`` passed in.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SERVER_LABEL = "servecmp.io/server"


def chart_servers() -> tuple[str, ...]:
    """Servers deployed by the chart (label ``servecmp.io/server`` = the registry name)."""
    from servecmp.servers import registry

    return tuple(a.name for a in registry.servers() if a.chart is not None)


def _container(server: str) -> str:
    from servecmp.servers import registry

    wire = registry.get(server).wire
    return wire.service if wire is not None else server


# ---- pure: parsing API objects ----------------------------------------------------------------
def normalize_image(ref: str) -> str:
    """``pytorch/torchserve:0.12.0-cpu`` and ``docker.io/pytorch/torchserve:0.12.0-cpu`` are one
    image; ``busybox:1`` is ``docker.io/library/busybox:1``. Digests (``@sha256:``) are dropped."""
    ref = ref.split("@", 1)[0]
    first, _, rest = ref.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        ref = f"docker.io/{ref}" if rest else f"docker.io/library/{ref}"
    if ref.startswith("docker.io/") and ref.count("/") == 1:
        ref = ref.replace("docker.io/", "docker.io/library/", 1)
    return ref


def node_image_sizes(nodes: Iterable[Any]) -> dict[str, int]:
    """Image reference (normalized) -> size in bytes, from every node's ``status.images``.

    A node lists each image once with all its names (tags and digests); the same image on two
    nodes has the same size, so the largest seen is kept."""
    sizes: dict[str, int] = {}
    for node in nodes:
        for img in getattr(getattr(node, "status", None), "images", None) or []:
            size = int(getattr(img, "size_bytes", 0) or 0)
            for name in getattr(img, "names", None) or []:
                if "@" in name:  # digest-only names carry no tag
                    continue
                key = normalize_image(name)
                sizes[key] = max(size, sizes.get(key, 0))
    return sizes


def image_size(nodes: Iterable[Any], image: str) -> int | None:
    return node_image_sizes(nodes).get(normalize_image(image))


def _condition_time(pod: Any, kind: str) -> datetime | None:
    for c in getattr(pod.status, "conditions", None) or []:
        if c.type == kind and c.status == "True":
            return c.last_transition_time
    return None


def pod_ready(pod: Any) -> bool:
    return (
        _condition_time(pod, "Ready") is not None
        and getattr(pod.metadata, "deletion_timestamp", None) is None
    )


def pod_restarts(pod: Any) -> int:
    statuses = (getattr(pod.status, "container_statuses", None) or []) + (
        getattr(pod.status, "init_container_statuses", None) or []
    )
    return sum(int(s.restart_count or 0) for s in statuses)


def pod_ready_seconds(pod: Any) -> float | None:
    """Seconds from the pod's creation to its Ready condition (None while not Ready)."""
    ready = _condition_time(pod, "Ready")
    if ready is None:
        return None
    return (ready - pod.metadata.creation_timestamp).total_seconds()


@dataclass(frozen=True)
class ServerStatus:
    server: str
    pods: int
    ready: int
    restarts: int
    install_to_ready_s: float | None  # first pod created -> last pod Ready
    images: dict[str, int | None]  # image -> bytes on the node (None: not reported)
    server_image: str | None = None  # the server container's own image (Wire.service = its name)


def server_status(server: str, pods: list[Any], nodes: list[Any]) -> ServerStatus:
    sizes = node_image_sizes(nodes)
    images: dict[str, int | None] = {}
    own: str | None = None
    container = _container(server)
    for pod in pods:
        for c in list(getattr(pod.spec, "init_containers", None) or []) + list(pod.spec.containers):
            images[c.image] = sizes.get(normalize_image(c.image))
        own = own or next((c.image for c in pod.spec.containers if c.name == container), None)
    readies = [_condition_time(p, "Ready") for p in pods]
    install: float | None = None
    if pods and all(r is not None for r in readies):
        first = min(p.metadata.creation_timestamp for p in pods)
        install = (max(r for r in readies if r is not None) - first).total_seconds()
    return ServerStatus(
        server=server,
        pods=len(pods),
        ready=sum(1 for p in pods if pod_ready(p)),
        restarts=sum(pod_restarts(p) for p in pods),
        install_to_ready_s=install,
        images=images,
        server_image=own,
    )


# ---- pure: is a pod stuck? (on `kubectl get pod -o json` dicts) ------------------------------
# Waiting reasons that never clear by themselves (kubelet: images, config, crash loops).
FATAL_WAITING = {
    "CrashLoopBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}
# A failed pull may be a registry hiccup: the kubelet retries it with a back-off from 10 s,
# doubling up to 300 s (kubernetes pkg/kubelet/kubelet.go: imageBackOff). Fatal only once the pod
# has been pulling this long (10 + 20 + 40 + 80 s: about five attempts).
PULL_WAITING = {"ErrImagePull", "ImagePullBackOff"}
IMAGE_PULL_GRACE_S = 150.0
# A pod the scheduler cannot place may be waiting for a terminating pod to free CPU (a rolling
# update): give it this long before calling it stuck.
UNSCHEDULABLE_GRACE_S = 30.0


def pod_problem(pod: dict[str, Any], now: datetime) -> str | None:
    """Why ``pod`` will not become Ready by waiting (None: keep waiting)."""
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name", "?")
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            since = cond.get("lastTransitionTime")
            age = (
                (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
                if since
                else 1e9
            )
            if age >= UNSCHEDULABLE_GRACE_S:
                return f"pod {name} is Pending, unschedulable for {age:.0f}s: {cond.get('message', '')}"
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    since = status.get("startTime") or (pod.get("metadata") or {}).get("creationTimestamp")
    age = (
        (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
        if since
        else 1e9
    )
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FATAL_WAITING or (reason in PULL_WAITING and age >= IMAGE_PULL_GRACE_S):
            last = (cs.get("lastState") or {}).get("terminated") or {}
            extra = (
                f"; last exit code {last.get('exitCode')} ({last.get('reason')})" if last else ""
            )
            return (
                f"pod {name} container {cs.get('name')}: {reason} "
                f"(restarts {cs.get('restartCount', 0)}){extra}: {waiting.get('message', '')}"
            ).rstrip(": ")
    if status.get("phase") == "Failed":
        return f"pod {name} Failed: {status.get('reason', '')} {status.get('message', '')}".strip()
    return None


def container_started(pod: dict[str, Any], container: str | None = None) -> bool:
    """True once the pod's (main) container has started: running or already terminated.

    ``kubectl logs -f`` does not wait for that: on a container still waiting (image pull,
    ContainerCreating, PodInitializing) the API server answers 400 "container ... is waiting to
    start" and kubectl exits at once (kubernetes/kubernetes#28746, kubernetes/kubectl#1227; still
    so with the kubectl >= 1.29 we support), so a follower started right after ``kubectl apply``
    would capture nothing. ``servecmp kind load`` (commands.py) waits for this first."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if container is not None and cs.get("name") != container:
            continue
        state = cs.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False


def format_events(events: Iterable[dict[str, Any]], limit: int = 15) -> str:
    rows = sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))[
        -limit:
    ]
    return "\n".join(
        f"  {e.get('lastTimestamp') or e.get('eventTime') or ''} {e.get('type', '')} {e.get('reason', '')}: "
        f"{(e.get('message') or '').strip()}"
        for e in rows
    )


class PodStuck(RuntimeError):
    """A pod will not become Ready by waiting; the message carries its events."""


# ---- talking to the cluster -------------------------------------------------------------------
def load_clients(context: str | None = None) -> tuple[Any, Any]:
    from kubernetes import client, config

    config.load_kube_config(context=context)
    return client.CoreV1Api(), client.AppsV1Api()


def server_pods(core: Any, namespace: str, server: str) -> list[Any]:
    return list(
        core.list_namespaced_pod(namespace, label_selector=f"{SERVER_LABEL}={server}").items
    )


def wait_rollout(
    apps: Any,
    namespace: str,
    name: str,
    timeout_s: float = 600,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait until Deployment ``name`` has all replicas updated and available; returns seconds."""
    t0 = clock()
    while True:
        d = apps.read_namespaced_deployment(name, namespace)
        want = d.spec.replicas or 0
        st = d.status
        if (
            (st.observed_generation or 0) >= (d.metadata.generation or 0)
            and (st.updated_replicas or 0) == want
            and (st.available_replicas or 0) == want
            and (st.replicas or 0) == want
        ):
            return clock() - t0
        if clock() - t0 > timeout_s:
            raise TimeoutError(
                f"deployment {namespace}/{name}: {st.available_replicas or 0}/{want} available "
                f"after {timeout_s:.0f}s (kubectl -n {namespace} describe deploy/{name})"
            )
        sleep(1.0)


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


def check_pods(
    core: Any,
    namespace: str,
    selector: str = "",
    *,
    finished: bool = True,
    now: Callable[[], datetime] | None = None,
) -> None:
    """Raise PodStuck (with the pod's events) when a pod matching ``selector`` is stuck.
    ``finished=False`` ignores pods that already ended (an old load Job's or helm test's pod)."""
    from datetime import UTC

    when = now() if now else datetime.now(UTC)
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        d = _as_dict(pod)
        if not finished and (d.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        problem = pod_problem(d, when)
        if problem:
            name = d["metadata"]["name"]
            events = core.list_namespaced_event(
                namespace, field_selector=f"involvedObject.name={name}"
            ).items
            raise PodStuck(
                f"{problem}\nevents of pod {namespace}/{name}:\n{format_events(_as_dict(e) for e in events)}\n"
                f"(kubectl -n {namespace} describe pod {name})"
            )


def wait_namespace(
    core: Any,
    apps: Any,
    namespace: str,
    timeout_s: float = 600,
    *,
    selector: str = "",
    min_statefulsets: int = 0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait for every Deployment in ``namespace`` to roll out; fail fast on a stuck pod.

    ``min_statefulsets``: also wait until at least that many StatefulSets exist and all are
    ready. kube-prometheus-stack's Prometheus is a StatefulSet the operator creates only after
    its own Deployment is up, so a Deployments-only wait returned while Prometheus was not even
    scheduled (a Pending or crash-looping Prometheus then showed up as empty dashboards)."""
    t0 = clock()
    while True:
        deps = apps.list_namespaced_deployment(namespace, label_selector=selector).items
        pending = []
        for d in deps:
            want, st = d.spec.replicas or 0, d.status
            if not (
                (st.observed_generation or 0) >= (d.metadata.generation or 0)
                and (st.updated_replicas or 0) == want
                and (st.available_replicas or 0) == want
            ):
                pending.append(f"{d.metadata.name} {st.available_replicas or 0}/{want}")
        if min_statefulsets:
            sets = apps.list_namespaced_stateful_set(namespace, label_selector=selector).items
            if len(sets) < min_statefulsets:
                pending.append(f"{len(sets)}/{min_statefulsets} StatefulSets created")
            for ss in sets:
                want, st = ss.spec.replicas or 0, ss.status
                if (st.ready_replicas or 0) < want:
                    pending.append(f"{ss.metadata.name} {st.ready_replicas or 0}/{want}")
        if deps and not pending:
            return clock() - t0
        check_pods(core, namespace, selector, finished=False)
        if clock() - t0 > timeout_s:
            raise TimeoutError(
                f"{namespace}: not rolled out after {timeout_s:.0f}s: {', '.join(pending) or 'no Deployments'}"
            )
        sleep(2.0)


def job_state(job: dict[str, Any]) -> str | None:
    """ "complete", "failed: <reason>: <message>" or None (still running), from a Job's conditions."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("status") != "True":
            continue
        if c.get("type") == "Complete":
            return "complete"
        if c.get("type") == "Failed":
            return f"failed: {c.get('reason', '')}: {c.get('message', '')}"
    return None


def wait_job(
    core: Any,
    batch: Any,
    namespace: str,
    name: str,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Wait for Job ``name``; returns "complete" or raises (failed, stuck pod, timeout)."""
    t0 = clock()
    while True:
        state = job_state(_as_dict(batch.read_namespaced_job(name, namespace)))
        if state == "complete":
            return state
        if state is not None:
            raise RuntimeError(f"job {namespace}/{name} {state}")
        check_pods(core, namespace, f"job-name={name}")
        if clock() - t0 > timeout_s:
            raise TimeoutError(f"job {namespace}/{name} not finished after {timeout_s:.0f}s")
        sleep(2.0)


def wait_started(
    core: Any,
    namespace: str,
    job: str,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Wait until a pod of Job ``job`` has its container started (its log can be followed);
    returns the pod name. Fails fast (PodStuck) on a stuck pod, TimeoutError after ``timeout_s``."""
    t0 = clock()
    selector = f"job-name={job}"
    while True:
        for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
            d = _as_dict(pod)
            if container_started(d):
                return str(d["metadata"]["name"])
        check_pods(core, namespace, selector)
        if clock() - t0 > timeout_s:
            raise TimeoutError(
                f"job {namespace}/{job}: no pod with a started container after {timeout_s:.0f}s"
            )
        sleep(1.0)


def recover(
    core: Any,
    namespace: str,
    server: str,
    replicas: int,
    timeout_s: float = 600,
    *,
    answering: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Delete one Ready pod of ``server`` and return the seconds until its replacement (a pod
    that did not exist before the delete) is Ready and ``replicas`` pods other than the deleted
    one are Ready (and, if given, ``answering()`` is true). With replicas > 1 the surviving pods
    are Ready all along: only the new pod says the server recovered."""
    if replicas < 1:
        raise ValueError(f"replicas: expected >= 1, got {replicas}")
    existing = server_pods(core, namespace, server)
    pods = [p for p in existing if pod_ready(p)]
    if not pods:
        raise RuntimeError(f"{server}: no Ready pod to delete in namespace {namespace}")
    before = {p.metadata.name for p in existing}
    victim = sorted(pods, key=lambda p: p.metadata.name)[0].metadata.name
    t0 = clock()
    core.delete_namespaced_pod(victim, namespace, grace_period_seconds=0)
    while True:
        ready = [
            p
            for p in server_pods(core, namespace, server)
            if p.metadata.name != victim and pod_ready(p)
        ]
        new = [p for p in ready if p.metadata.name not in before]
        if new and len(ready) >= replicas and (answering is None or answering()):
            return clock() - t0
        if clock() - t0 > timeout_s:
            raise TimeoutError(
                f"{server}: {len(ready)}/{replicas} Ready ({len(new)} new) {timeout_s:.0f}s "
                f"after deleting {victim}"
            )
        sleep(0.5)


def report(core: Any, namespace: str) -> dict[str, Any]:
    nodes = list(core.list_node().items)
    out: dict[str, Any] = {"namespace": namespace, "servers": {}}
    for server in chart_servers():
        pods = server_pods(core, namespace, server)
        if pods:
            out["servers"][server] = asdict(server_status(server, pods, nodes))
    return out


def server_image(status: dict[str, Any]) -> tuple[str, int | None] | None:
    """The server's own image (its container's, not the artifacts init image) and its size on
    the node, from a ``server_status`` record."""
    image = status.get("server_image")
    if image is None:
        return None
    return image, status.get("images", {}).get(image)


def to_friction(report_data: dict[str, Any], run_dir: Path, recoveries: Sequence[Path] = ()) -> int:
    """Append the cluster measurements to ``run_dir/friction.jsonl`` (placement ``kubernetes``):
    install -> Ready, the server image's size on the node, and pod-delete recovery."""
    from servecmp.results.friction import append_friction, record, unavailable

    n = 0
    for server in chart_servers():
        st = report_data.get("servers", {}).get(server)
        if st is None:
            for metric in ("install_ready_s", "image_bytes"):
                append_friction(
                    run_dir,
                    unavailable(
                        server, metric, "not deployed in this cluster", placement="kubernetes"
                    ),
                )
                n += 1
            continue
        append_friction(
            run_dir,
            record(
                server,
                "install_ready_s",
                st["install_to_ready_s"],
                details={"pods": st["pods"], "restarts": st["restarts"]},
                placement="kubernetes",
            ),
        )
        img = server_image(st)
        append_friction(
            run_dir,
            record(
                server,
                "image_bytes",
                None if img is None or img[1] is None else float(img[1]),
                details={"image": img[0] if img else None},
                placement="kubernetes",
            ),
        )
        n += 2
    for path in recoveries:
        data = json.loads(Path(path).read_text())
        append_friction(
            run_dir,
            record(
                data["server"],
                "recovery_s",
                float(data["recovery_s"]),
                details={"how": "kubectl delete pod (grace 0); a new pod Ready"},
                placement="kubernetes",
            ),
        )
        n += 1
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="servecmp kind cluster measurements")
    p.add_argument("--namespace", default="servecmp")
    p.add_argument("--context", default="kind-servecmp")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser(
        "wait", help="wait for the namespace's Deployments; fail fast on a stuck pod"
    )
    w.add_argument("--release", default="servecmp")
    w.add_argument("--timeout", type=float, default=600)
    w.add_argument("--selector", default="", help="label selector of the Deployments and pods")
    w.add_argument(
        "--min-statefulsets",
        type=int,
        default=0,
        help="also wait for at least this many ready StatefulSets (kube-prometheus-stack: Prometheus)",
    )
    wj = sub.add_parser(
        "wait-job", help="wait for a Job; fail fast when it fails or a pod is stuck"
    )
    wj.add_argument("name")
    wj.add_argument("--timeout", type=float, required=True)
    ws = sub.add_parser(
        "wait-started",
        help="wait until a Job's pod has started (so `kubectl logs -f` can follow it)",
    )
    ws.add_argument("name")
    ws.add_argument("--timeout", type=float, required=True)
    r = sub.add_parser("report", help="install->Ready, restarts, image sizes (JSON)")
    r.add_argument("--out", type=Path)
    rc = sub.add_parser("recover", help="delete a server pod, print seconds until Ready again")
    rc.add_argument("--server", choices=chart_servers(), required=True)
    rc.add_argument(
        "--replicas", type=int, required=True, help="the server Deployment's replica count"
    )
    rc.add_argument("--timeout", type=float, default=600)
    rc.add_argument("--out", type=Path)
    fr = sub.add_parser("friction", help="append report/recovery JSON to a run's friction.jsonl")
    fr.add_argument("--report", type=Path, required=True)
    fr.add_argument("--run-dir", type=Path, required=True)
    fr.add_argument("--recovery", type=Path, action="append", default=[])
    return p


# Entry point of the child process servecmp.cluster.commands and servecmp.tune.cluster run (waits, report, recover).
def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.cmd == "friction":
        n = to_friction(json.loads(args.report.read_text()), args.run_dir, args.recovery)
        print(f"{n} friction record(s) appended to {args.run_dir}")
        return 0

    core, apps = load_clients(args.context)
    try:
        if args.cmd == "wait":
            secs = wait_namespace(
                core,
                apps,
                args.namespace,
                args.timeout,
                selector=args.selector,
                min_statefulsets=args.min_statefulsets,
            )
            print(f"{args.namespace}: every Deployment rolled out in {secs:.1f}s")
            return 0
        if args.cmd == "wait-started":
            print(wait_started(core, args.namespace, args.name, args.timeout))
            return 0
        if args.cmd == "wait-job":
            from kubernetes import client

            print(wait_job(core, client.BatchV1Api(), args.namespace, args.name, args.timeout))
            return 0
    except (PodStuck, RuntimeError, TimeoutError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.cmd == "report":
        data = report(core, args.namespace)
    else:
        secs = recover(core, args.namespace, args.server, args.replicas, args.timeout)
        data = {"server": args.server, "recovery_s": round(secs, 3)}
    text = json.dumps(data, indent=2, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
