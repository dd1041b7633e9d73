"""Provenance of a kind run (meta.json): what actually served, and where it ran.

- ``servers``: per server, the image each container ran (reference + the digest the node
  resolved, from ``status.containerStatuses[].imageID``) and the runtime versions the *server's
  own container* reports (``kubectl exec``), not this host's venv;
- ``cluster``: placement truth. kind nodes are containers on ONE host: each node's allocatable
  CPU is every host core (kind v0.27.0 pkg/cluster/internal/kubeadm/config.go reserves nothing),
  requests/limits are CFS quotas/shares, not dedicated cores, so the server and the load generator
  on "separate nodes" can still contend for the same cores.

``python -m servecmp.cluster.provenance meta ...`` is what ``servecmp kind load`` runs
(servecmp/cluster/commands.py); :func:`addresses` reads the servers' generated wire values.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from servecmp.experiment import Experiment, load_experiment

ROLE_LABEL = "servecmp.io/role"


# ---- pure ---------------------------------------------------------------------------------------
def pod_images(pod: dict[str, Any]) -> list[dict[str, str | None]]:
    """Image reference and resolved digest of each container of a pod (``kubectl get -o json``)."""
    out = []
    statuses = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
    for c in (pod.get("spec") or {}).get("containers") or []:
        st = statuses.get(c["name"], {})
        image_id = st.get("imageID") or None
        digest = image_id.split("@", 1)[1] if image_id and "@" in image_id else image_id
        out.append({"container": c["name"], "image": c["image"], "digest": digest})
    return out


def placement_truth(
    host_cpus: float, host_source: str, nodes: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    """What a reader needs to judge CPU contention on kind (``nodes``: node JSON)."""
    rows = {}
    for n in nodes:
        meta = n.get("metadata") or {}
        alloc = ((n.get("status") or {}).get("allocatable") or {}).get("cpu")
        rows[meta.get("name", "?")] = {
            "role": (meta.get("labels") or {}).get(ROLE_LABEL),
            "allocatable_cpu": _cpu(alloc) if alloc is not None else None,
        }
    allocs = [r["allocatable_cpu"] for r in rows.values() if r["allocatable_cpu"] is not None]
    shared = bool(allocs) and all(a >= host_cpus - 1e-9 for a in allocs)
    return {
        "runtime": "kind",
        "host_cpus": host_cpus,
        "host_cpus_source": host_source,
        "nodes": rows,
        "nodes_share_host_cores": True,
        "server_and_generator_can_contend": True,
        "note": (
            f"kind nodes are containers on one host with {host_cpus:g} cores"
            + (", and each node reports all of them as allocatable" if shared else "")
            + ": the server and load-generator pods sit on different nodes but share those cores "
            "(CPU requests/limits are CFS quotas and shares, not dedicated cores), so they can "
            "contend; compare against a local pinned run or a real multi-machine cluster."
        ),
    }


def _cpu(q: str) -> float:
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def addresses(
    exp: Experiment,
    release: str,
    namespace: str,
    only: Sequence[str] = (),
    wires: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[tuple[str, str]]:
    """(target, in-cluster address) per REST/gRPC target: ``<release>-<wire service>`` on the
    wire's port for the protocol; gRPC goes to the headless ``-grpc`` Service (one connection
    per pod, so the load spreads over the replicas). ``wires``: chart -> the generated wire values
    the chart rendered its Services from (default: each adapter's ``Wire.values()``, the same
    thing); a target whose server has none, or no port for its protocol, is refused."""
    from servecmp.servers import registry

    out = []
    for t in exp.targets:
        protocol = t.protocol.value
        adapter = registry.get(t.server)
        if (
            adapter.is_inprocess
            or protocol not in ("rest", "grpc")
            or (only and t.name not in only)
        ):
            continue
        if wires is None:
            assert adapter.wire is not None
            wire: Mapping[str, Any] | None = adapter.wire.values()
        else:
            wire = wires.get(adapter.chart or t.server)
        if not wire:
            raise ValueError(
                f"{t.name}: no generated wire values for server {t.server!r} "
                f"(servecmp/cluster/helmvalues.py writes <chart>.wire from the adapter)"
            )
        ports = [p["port"] for _, p in sorted(wire["ports"].items()) if p["role"] == protocol]
        if not ports:
            raise ValueError(f"{t.name}: {t.server}'s wire has no {protocol} port")
        suffix = "-grpc" if protocol == "grpc" else ""
        out.append((t.name, f"{release}-{wire['service']}{suffix}.{namespace}.svc:{ports[0]}"))
    return out


def metrics_url(
    server: str,
    release: str,
    namespace: str,
    wires: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The in-cluster URL of ``server``'s own metrics page, which the in-cluster step reads at
    every window's edges for the latency breakdown: the chart's ``<release>-<service>-metrics``
    ClusterIP Service (helm/servecmp/charts/servecmp-lib/templates/_helpers.tpl,
    ``servecmp-lib.services``) on the port named ``wire.metricsPort``, at ``wire.metricsPath``.
    Every server's NetworkPolicy, where it has one, leaves that port open to any pod
    (charts/torchserve/templates/networkpolicy.yaml). ``wires`` as in :func:`addresses`."""
    from servecmp.servers import registry

    adapter = registry.get(server)
    if wires is None:
        if adapter.wire is None:
            raise ValueError(f"{server}: an in-process baseline has no metrics page")
        wire: Mapping[str, Any] | None = adapter.wire.values()
    else:
        wire = wires.get(adapter.chart or server)
    if not wire:
        raise ValueError(
            f"{server}: no generated wire values (servecmp/cluster/helmvalues.py writes "
            f"<chart>.wire from the adapter)"
        )
    port = wire["ports"][wire["metricsPort"]]["port"]
    path = "/" + str(wire["metricsPath"]).lstrip("/")
    return f"http://{release}-{wire['service']}-metrics.{namespace}.svc:{port}{path}"


# ---- talking to the cluster ---------------------------------------------------------------------
Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def kubectl_json(kubectl: list[str], args: list[str], run: Runner = _run) -> dict[str, Any]:
    proc = run([*kubectl, *args, "-o", "json"])
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def server_provenance(kubectl: list[str], namespace: str, run: Runner = _run) -> dict[str, Any]:
    """Per server with a chart: the images its pod ran and the versions its own container
    reports (``ServerAdapter.runtime_commands``, exec'd in the server container)."""
    from servecmp.servers import registry

    out: dict[str, Any] = {}
    for adapter in registry.servers():
        if adapter.chart is None or adapter.wire is None:
            continue
        server, container = adapter.name, adapter.wire.service
        pods = kubectl_json(
            kubectl, ["-n", namespace, "get", "pods", "-l", f"servecmp.io/server={server}"], run
        )["items"]
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        if not running:
            out[server] = {"deployed": False}
            continue
        pod = sorted(running, key=lambda p: p["metadata"]["name"])[0]
        outputs = []
        for cmd in adapter.runtime_commands:
            proc = run(
                [
                    *kubectl,
                    "-n",
                    namespace,
                    "exec",
                    pod["metadata"]["name"],
                    "-c",
                    container,
                    "--",
                    *cmd,
                ]
            )
            outputs.append(proc.stdout + proc.stderr)  # java -version prints to stderr
        out[server] = {
            "deployed": True,
            "pod": pod["metadata"]["name"],
            "images": pod_images(pod),
            "runtime": adapter.parse_runtime(outputs),
        }
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="provenance of a kind run")
    p.add_argument("--context", default="kind-servecmp")
    p.add_argument("--namespace", default="servecmp")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("meta", help="write RUN_DIR/meta.json for a kind run")
    m.add_argument("experiment", type=Path)
    m.add_argument("--run-id", required=True)
    m.add_argument("--run-dir", type=Path, required=True)
    m.add_argument("--loadgen-image", required=True)
    a = sub.add_parser("addresses", help="print '<target> <address>' per REST/gRPC target")
    a.add_argument("experiment", type=Path)
    a.add_argument("--release", default="servecmp")
    a.add_argument("--target", action="append", default=[])
    return p


# Entry point of the child process `servecmp kind load` runs (meta) through servecmp.cluster.commands.Ops.module.
def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    exp = load_experiment(args.experiment)
    if args.cmd == "addresses":
        from servecmp.cluster.commands import _wires

        for name, address in addresses(exp, args.release, args.namespace, args.target, _wires(exp)):
            print(f"{name} {address}")
        return 0
    from servecmp.cluster.preflight import host_cpus
    from servecmp.results.provenance import build_meta
    from servecmp.results.store import RunStore

    kubectl = ["kubectl", "--context", args.context]
    cpus, source = host_cpus()
    nodes = kubectl_json(kubectl, ["get", "nodes"])["items"]
    truth = placement_truth(cpus, source, nodes)
    meta = build_meta(
        exp,
        args.run_id,
        placement={"kind": "kind cluster", "note": truth["note"]},
        notes=[
            f"load generator image: {args.loadgen_image}",
            "versions: this host's venv, which only orchestrates a kind run; what "
            "served is under the server image/runtime rows (reported by the pods)",
        ],
    )
    meta = meta.model_copy(
        update={"servers": server_provenance(kubectl, args.namespace), "cluster": truth}
    )
    RunStore(args.run_dir).write_meta(meta)
    print(json.dumps({"servers": meta.servers, "cluster": truth["note"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
