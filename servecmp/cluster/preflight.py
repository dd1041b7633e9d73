"""Preflight for the kind path: will every pod of the experiment fit on its node?

kind nodes are containers on one host. Their allocatable CPU is every host core: kind's kubelet
config reserves nothing (kind v0.27.0 pkg/cluster/internal/kubeadm/config.go: no
systemReserved/kubeReserved, only evictionHard), and the scheduler compares *requests* with it.
kindnetd, a DaemonSet on every node, requests 100m CPU / 50Mi (kind v0.27.0
pkg/build/nodeimage/const_cni.go). So on a 2-core host the server node (TorchServe 1 CPU +
TF Serving 1 CPU + kindnetd 0.1) needs 2.1 CPUs, a server pod stays Pending and `helm --wait`
used to sit out its 10 minutes. This module does the sum in milliseconds and names the fix.

``servecmp kind preflight loadtests/experiments/quick.yaml`` (``servecmp kind up`` and ``load`` run
it too): exit 0 and a one-line summary per node, or exit 3 with the numbers.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from servecmp.cluster import KIND_DIR, ROOT
from servecmp.experiment import Experiment

CHART = ROOT / "helm" / "servecmp"
# kind v0.27.0 pkg/build/nodeimage/const_cni.go: kindnetd requests cpu "100m" (DaemonSet: every node)
KINDNETD_CPU = 0.1
# The server node is tainted (deploy/kind/kind-config.yaml), so what else the cluster schedules
# lands on the loadgen node and must fit there beside the load: kubeadm's CoreDNS, 2 replicas of
# cpu 100m (kubernetes cmd/kubeadm/app/phases/addons/dns/manifests.go; it tolerates the
# control-plane taint, so it may also go there: counted where it costs most), and the chart's
# helm test pod (helm/servecmp/templates/tests/test-inference.yaml: cpu 100m).
COREDNS_CPU = 0.2
HELM_TEST_CPU = 0.1


@dataclass
class NodeBudget:
    name: str  # servecmp.io/role of the node
    allocatable: float  # CPUs the scheduler sees (= host cores on kind)
    requests: dict[str, float] = field(default_factory=dict)  # pod -> CPUs requested

    @property
    def requested(self) -> float:
        return round(sum(self.requests.values()), 3)

    @property
    def fits(self) -> bool:
        return self.requested <= self.allocatable + 1e-9

    def describe(self) -> str:
        parts = " + ".join(f"{k} {v:g}" for k, v in self.requests.items())
        return f"{self.name} node: {parts} = {self.requested:g} CPU of {self.allocatable:g} allocatable"


def host_cpus() -> tuple[float, str]:
    """CPUs a kind node sees: Docker's NCPU (a VM's CPUs on Docker Desktop), else this host's."""
    if shutil.which("docker"):
        try:
            out = subprocess.run(
                ["docker", "info", "--format", "{{.NCPU}}"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
            if out.isdigit() and int(out) > 0:
                return float(out), "docker info NCPU"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return float(os.cpu_count() or 1), "os.cpu_count()"


def _chart_replicas(chart: Path = CHART) -> int:
    vals: dict[str, Any] = yaml.safe_load((chart / "values.yaml").read_text())
    return int(vals["global"]["replicas"])


def _nodes_per_role(kind_config: Path) -> dict[str, int]:
    cfg = yaml.safe_load(kind_config.read_text())
    out: dict[str, int] = {}
    for n in cfg["nodes"]:
        role = (n.get("labels") or {}).get("servecmp.io/role", n.get("role", "worker"))
        out[role] = out.get(role, 0) + 1
    return out


def budgets(
    exp: Experiment,
    allocatable: float,
    *,
    replicas: int | None = None,
    loadgen_cpu: float | None = None,
    kind_config: Path = KIND_DIR / "kind-config.yaml",
) -> list[NodeBudget]:
    """CPU requests per worker node for this experiment (server node, loadgen node)."""
    from servecmp.cluster.loadgen import job_cpu

    replicas = _chart_replicas() if replicas is None else replicas
    per_role = _nodes_per_role(kind_config)
    from servecmp.servers import registry

    # one pod per server with a chart that the experiment targets (registry order)
    servers = [
        a.name
        for a in registry.servers()
        if a.chart and any(t.server == a.name for t in exp.targets)
    ]
    out = []
    server = NodeBudget("server", allocatable, {"kindnetd": KINDNETD_CPU})
    # pods spread over the server nodes; the fullest one decides
    per_node = math.ceil(replicas / max(1, per_role.get("server", 1)))
    for s in servers:
        key = s if per_node == 1 else f"{s} x{per_node}"
        server.requests[key] = round(exp.resources.cpus * per_node, 3)
    out.append(server)
    gen = NodeBudget(
        "loadgen",
        allocatable,
        {"kindnetd": KINDNETD_CPU, "coredns x2": COREDNS_CPU, "helm test pod": HELM_TEST_CPU},
    )
    gen.requests["load Job"] = job_cpu(exp) if loadgen_cpu is None else loadgen_cpu
    out.append(gen)
    return out


def check(
    exp: Experiment,
    allocatable: float,
    source: str,
    experiment_path: str = "the experiment",
    **kw: Any,
) -> tuple[bool, str]:
    nodes = budgets(exp, allocatable, **kw)
    lines = [n.describe() for n in nodes]
    bad = [n for n in nodes if not n.fits]
    if not bad:
        return True, "preflight ok: " + "; ".join(lines)
    msg = [
        f"preflight: the experiment does not fit on this host's kind nodes "
        f"({allocatable:g} CPUs each, from {source}; kind reserves nothing, kindnetd requests 0.1 per node):"
    ]
    msg += [f"  {'TOO MUCH' if not n.fits else 'ok'}: {n.describe()}" for n in nodes]
    n_srv = sum(1 for k in nodes[0].requests if k != "kindnetd")
    for n in bad:
        if n.name == "server" and n_srv:
            fixed = n.requested - sum(v for k, v in n.requests.items() if k != "kindnetd")
            room = n.allocatable - fixed
            per_node = max(v for k, v in n.requests.items() if k != "kindnetd") / exp.resources.cpus
            max_cpus = math.floor(room / (n_srv * per_node) * 20) / 20  # 0.05 steps
            need = math.ceil(n.requested)
            msg.append(
                f"  fix: set resources.cpus <= {max_cpus:g} in {experiment_path} (now {exp.resources.cpus:g}; "
                f"each server gets the same), or use a machine with >= {need} cores "
                f"(Docker Desktop: raise the VM's CPUs)"
            )
        elif n.name == "loadgen":
            msg.append(
                f"  fix: fewer Locust workers (--workers), "
                f"or use a machine with >= {math.ceil(n.requested)} cores"
            )
    msg.append(
        "  (a pod that does not fit stays Pending: helm --wait would wait out its whole timeout)"
    )
    return False, "\n".join(msg)


# ---- host ports -----------------------------------------------------------------------------------
def mapped_ports(kind_config: Path = KIND_DIR / "kind-config.yaml") -> list[tuple[str, int]]:
    """(listen address, host port) of every extraPortMappings entry of the kind config. kind
    v0.27.0 pkg/cluster/internal/providers/docker/provision.go: an empty listenAddress binds 0.0.0.0
    ("::" for IPv6 clusters)."""
    cfg = yaml.safe_load(Path(kind_config).read_text())
    out = []
    for node in cfg.get("nodes") or []:
        for m in node.get("extraPortMappings") or []:
            if m.get("hostPort"):
                out.append((str(m.get("listenAddress") or "0.0.0.0"), int(m["hostPort"])))
    return out


def _listeners(port: int) -> list[Any]:
    return [
        c
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    ]


def port_holder(address: str, port: int) -> str | None:
    """None when ``address:port`` can be bound (kind's node container will get it), else who
    holds it: the process (psutil), or why it cannot be named."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
            return None
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                return f"cannot bind: {err.strerror}"
    try:
        conns = _listeners(port)
    except psutil.AccessDenied:  # macOS: other processes' sockets need root
        conns = []
    for c in conns:
        if c.pid is None:
            continue
        try:
            proc = psutil.Process(c.pid)
            return f"pid {c.pid} ({proc.name()}: {' '.join(proc.cmdline())[:120]})"
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return f"pid {c.pid}"
    return f"a process this user cannot see (try: sudo ss -ltnp 'sport = :{port}')"


def check_ports(kind_config: Path = KIND_DIR / "kind-config.yaml") -> tuple[bool, str]:
    """Every host port the kind config maps must be free before the cluster is created: Docker
    cannot publish a taken one, and ``kind create cluster`` dies late with a bare bind error."""
    taken = [(a, p, h) for a, p in mapped_ports(kind_config) if (h := port_holder(a, p))]
    if not taken:
        return (
            True,
            f"preflight ok: host ports {', '.join(str(p) for _, p in mapped_ports(kind_config))} free",
        )
    lines = [f"preflight: host ports that {kind_config.name} maps are taken:"]
    for address, port, holder in taken:
        hint = (
            " (Debian's prometheus.service? `sudo systemctl disable --now prometheus`)"
            if port == 9090
            else ""
        )
        lines.append(f"  {address}:{port} held by {holder}{hint}")
    lines.append(f"  fix: stop that process, or change hostPort in {kind_config}")
    return False, "\n".join(lines)
