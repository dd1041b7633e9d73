"""Blocker 3 of issue 10: on a 2-core host the server node cannot hold two 1-CPU servers plus
kindnetd; the preflight says so in seconds with the numbers and the fix, and the waits stop at a
stuck pod (Pending/unschedulable, crash loop, image pull) with its events instead of sitting out
a 10-minute timeout."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from helm_util import ROOT

from servecmp.cluster import cluster, preflight
from servecmp.experiment import load_experiment, parse_experiment

QUICK = ROOT / "loadtests" / "experiments" / "quick.yaml"
PODS = Path(__file__).parent / "kind_pods"


def _exp(**over):
    data = yaml.safe_load(QUICK.read_text())
    data.update(over)
    return parse_experiment(data, "<preflight test>")


def test_two_core_host_fails_with_numbers_and_fix() -> None:
    ok, msg = preflight.check(
        load_experiment(QUICK), 2.0, "test", "loadtests/experiments/quick.yaml"
    )
    assert not ok
    # quick.yaml targets three servers: one pod each on the server node
    assert "torchserve 1 + tfserving 1 + kserve 1" in msg and "kindnetd 0.1" in msg
    assert "= 3.1 CPU of 2 allocatable" in msg
    assert "resources.cpus <= 0.6 in loadtests/experiments/quick.yaml" in msg
    assert ">= 4 cores" in msg


def test_fix_it_suggests_actually_fits() -> None:
    ok, _ = preflight.check(_exp(resources={"cpus": 0.6, "memory_mib": 2048}), 2.0, "test")
    assert ok
    ok, _ = preflight.check(_exp(resources={"cpus": 1.0, "memory_mib": 2048}), 4.0, "test")
    assert ok


def test_one_server_or_more_replicas() -> None:
    ts_only = _exp(targets=[{"server": "torchserve", "protocol": "rest"}])
    assert preflight.check(ts_only, 2.0, "test")[0]
    (srv, gen) = preflight.budgets(load_experiment(QUICK), 4.0, replicas=2)
    assert srv.requested == pytest.approx(6.1) and not srv.fits  # 3 servers x 2 replicas + kindnetd
    assert (
        gen.requested == pytest.approx(1.4) and gen.fits
    )  # kindnetd + coredns x2 + helm test pod + 1 Job


def test_every_networked_server_gets_a_pod_budget() -> None:
    """A third server (KServe) counts like the others; an in-process baseline gets no pod."""
    from types import SimpleNamespace as NS

    def target(server: str, protocol: str) -> NS:
        return NS(server=server, protocol=NS(value=protocol))

    exp = NS(
        targets=[
            target("torchserve", "rest"),
            target("kserve", "grpc"),
            target("kserve", "rest"),
            target("pytorch", "inprocess"),
        ],
        resources=NS(cpus=1.0),
    )
    (srv, _) = preflight.budgets(exp, 8.0, replicas=1)  # type: ignore[arg-type]
    assert srv.requests == {"kindnetd": 0.1, "kserve": 1.0, "torchserve": 1.0}


def test_cli_fails_in_seconds_with_exit_3() -> None:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "servecmp.cli", "kind", "preflight", str(QUICK), "--cpus", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3 and "TOO MUCH: server node" in proc.stderr
    assert time.monotonic() - t0 < 30
    ok = subprocess.run(
        [sys.executable, "-m", "servecmp.cli", "kind", "preflight", str(QUICK), "--cpus", "8"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and "preflight ok" in ok.stdout


# ---- the server node holds the servers only -------------------------------------------------------
def test_server_node_is_tainted_and_only_server_pods_tolerate_it() -> None:
    from helm_util import CHART, KIND_DIR

    cfg = yaml.safe_load((KIND_DIR / "kind-config.yaml").read_text())
    (server,) = [
        n for n in cfg["nodes"] if (n.get("labels") or {}).get("servecmp.io/role") == "server"
    ]
    patches = [yaml.safe_load(p) for p in server.get("kubeadmConfigPatches") or []]
    (join,) = [p for p in patches if p.get("kind") == "JoinConfiguration"]
    taints = join["nodeRegistration"]["taints"]
    assert taints == [{"key": "servecmp.io/role", "value": "server", "effect": "NoSchedule"}]
    chart = yaml.safe_load((CHART / "values.yaml").read_text())
    tol = chart["global"]["tolerations"]

    def tolerates(t: dict, taint: dict) -> bool:
        return (
            t.get("effect") in (None, taint["effect"])
            and t.get("key") in (None, taint["key"])
            and (t.get("operator") == "Exists" or t.get("value") == taint["value"])
        )

    assert all(any(tolerates(t, taint) for t in tol) for taint in taints)
    test_pod = (CHART / "templates" / "tests" / "test-inference.yaml").read_text()
    assert "tolerations" not in test_pod  # the helm test pod goes elsewhere


def test_loadgen_node_keeps_room_for_what_the_tainted_server_node_refuses() -> None:
    (srv, gen) = preflight.budgets(load_experiment(QUICK), 4.0)
    assert set(srv.requests) == {"kindnetd", "torchserve", "tfserving", "kserve"}
    assert gen.requests["coredns x2"] == pytest.approx(0.2) and gen.requests[
        "helm test pod"
    ] == pytest.approx(0.1)
    assert gen.requested == pytest.approx(0.1 + 0.2 + 0.1 + gen.requests["load Job"])
    # a loadgen node that fits the Job alone but not CoreDNS and the test pod beside it
    ok, msg = preflight.check(load_experiment(QUICK), 4.0, "test", loadgen_cpu=3.8)
    assert not ok and "TOO MUCH: loadgen node" in msg


# ---- host ports the kind config maps --------------------------------------------------------------
def test_every_mapped_host_port_is_checked() -> None:
    from helm_util import KIND_DIR, load_env_file

    env = load_env_file(KIND_DIR / "versions.env")
    assert preflight.mapped_ports(KIND_DIR / "kind-config.yaml") == [
        ("127.0.0.1", int(env["GRAFANA_HOST_PORT"])),
        ("127.0.0.1", int(env["PROMETHEUS_HOST_PORT"])),
    ]


def test_a_taken_port_is_named_with_its_process(tmp_path: Path) -> None:
    import os
    import socket

    with socket.socket() as held, socket.socket() as probe:
        held.bind(("127.0.0.1", 0))
        held.listen()
        probe.bind(("127.0.0.1", 0))
        taken, free = held.getsockname()[1], probe.getsockname()[1]
        probe.close()
        cfg = tmp_path / "kind-config.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "nodes": [
                        {
                            "role": "control-plane",
                            "extraPortMappings": [
                                {
                                    "containerPort": 30300,
                                    "hostPort": free,
                                    "listenAddress": "127.0.0.1",
                                },
                                {
                                    "containerPort": 30090,
                                    "hostPort": taken,
                                    "listenAddress": "127.0.0.1",
                                },
                            ],
                        }
                    ]
                }
            )
        )
        ok, msg = preflight.check_ports(cfg)
    assert not ok
    import psutil

    assert f"127.0.0.1:{taken} held by pid {os.getpid()} ({psutil.Process().name()}:" in msg
    assert f":{free} held" not in msg
    ok, msg = preflight.check_ports(cfg)  # released: free again
    assert ok, msg


# ---- stuck pods -----------------------------------------------------------------------------------
def _pod(name: str) -> dict:
    return json.loads((PODS / f"{name}.json").read_text())


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_pending_unschedulable_is_stuck_after_a_grace() -> None:
    pod = _pod("pending-unschedulable")
    assert cluster.pod_problem(pod, T0 + timedelta(seconds=5)) is None  # may be a rolling update
    msg = cluster.pod_problem(pod, T0 + timedelta(seconds=cluster.UNSCHEDULABLE_GRACE_S + 1))
    assert msg and "unschedulable" in msg and "Insufficient cpu" in msg


def test_crash_loop_is_stuck_at_once() -> None:
    msg = cluster.pod_problem(_pod("crashloop"), T0)
    assert msg and "CrashLoopBackOff" in msg and "restarts 3" in msg and "exit code 1" in msg


def test_a_failed_pull_is_stuck_only_after_the_kubelets_retries() -> None:
    pod = _pod("image-never-pull")
    pod["status"]["startTime"] = "2026-01-01T00:00:00Z"
    (cs,) = pod["status"]["containerStatuses"]
    for reason, after_s in (("ErrImagePull", 1), ("ImagePullBackOff", 40), ("ErrImagePull", 120)):
        cs["state"]["waiting"]["reason"] = reason
        assert cluster.pod_problem(pod, T0 + timedelta(seconds=after_s)) is None, (reason, after_s)
    msg = cluster.pod_problem(pod, T0 + timedelta(seconds=cluster.IMAGE_PULL_GRACE_S + 1))
    assert msg and "ErrImagePull" in msg and "pull access denied" in msg
    cs["state"]["waiting"]["reason"] = (
        "ErrImageNeverPull"  # a kind-loaded image missing: no retry helps
    )
    assert cluster.pod_problem(pod, T0 + timedelta(seconds=1))


def test_a_starting_pod_is_not_stuck() -> None:
    assert cluster.pod_problem(_pod("starting"), T0 + timedelta(minutes=5)) is None


class _Core:
    def __init__(self, pods: list[dict]) -> None:
        self.pods = pods

    def list_namespaced_pod(self, ns, label_selector=""):
        return SimpleNamespace(items=self.pods)

    def list_namespaced_event(self, ns, field_selector=""):
        name = field_selector.split("=", 1)[1]
        return SimpleNamespace(
            items=[
                {
                    "type": "Warning",
                    "reason": "FailedScheduling",
                    "lastTimestamp": "2026-01-01T00:00:01Z",
                    "message": f"0/3 nodes are available: 1 Insufficient cpu ({name})",
                }
            ]
        )


class _Apps:
    def list_namespaced_deployment(self, ns, label_selector=""):
        return SimpleNamespace(
            items=[
                SimpleNamespace(
                    metadata=SimpleNamespace(name="servecmp-tfserving", generation=1),
                    spec=SimpleNamespace(replicas=1),
                    status=SimpleNamespace(
                        observed_generation=1, updated_replicas=1, available_replicas=0, replicas=1
                    ),
                )
            ]
        )


def test_wait_fails_fast_with_the_pods_events() -> None:
    clock = SimpleNamespace(t=0.0)
    core = _Core([_pod("pending-unschedulable")])
    with pytest.raises(cluster.PodStuck) as err:
        cluster.wait_namespace(
            core,
            _Apps(),
            "servecmp",
            timeout_s=600,
            clock=lambda: clock.t,
            sleep=lambda s: setattr(clock, "t", clock.t + s),
        )
    text = str(err.value)
    assert (
        "FailedScheduling" in text
        and "Insufficient cpu" in text
        and "kubectl -n servecmp describe pod" in text
    )
    assert clock.t == 0.0  # first poll: the pod has been unschedulable since 2026-01-01


def test_wait_job_reports_a_failed_job_at_once() -> None:
    class Batch:
        def read_namespaced_job(self, name, ns):
            return {
                "status": {
                    "conditions": [
                        {
                            "type": "Failed",
                            "status": "True",
                            "reason": "DeadlineExceeded",
                            "message": "Job was active longer than specified deadline",
                        }
                    ]
                }
            }

    with pytest.raises(RuntimeError, match="DeadlineExceeded"):
        cluster.wait_job(_Core([]), Batch(), "servecmp", "j", timeout_s=600, sleep=lambda s: None)
    assert (
        cluster.job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
        == "complete"
    )
    assert cluster.job_state({"status": {}}) is None


def test_wait_ignores_pods_that_already_ended() -> None:
    """An old load Job's failed pod (kept for its TTL) does not fail a later kind-up's wait."""
    old_job = _pod("image-never-pull")
    old_job["status"]["phase"] = "Failed"
    old_job["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"exitCode": 1, "reason": "Error"}
    }
    assert cluster.pod_problem(old_job, T0) is not None  # a Job's own wait does see it

    class ReadyApps(_Apps):
        def list_namespaced_deployment(self, ns, label_selector=""):
            d = super().list_namespaced_deployment(ns).items[0]
            d.status.available_replicas = 0
            return SimpleNamespace(items=[d])

    clock = SimpleNamespace(t=0.0)
    with pytest.raises(
        TimeoutError
    ):  # keeps waiting for the Deployment instead of failing on the old pod
        cluster.wait_namespace(
            _Core([old_job]),
            ReadyApps(),
            "servecmp",
            timeout_s=10,
            clock=lambda: clock.t,
            sleep=lambda s: setattr(clock, "t", clock.t + s),
        )


def test_locust_workers_count_on_the_loadgen_node() -> None:
    ok, msg = preflight.check(load_experiment(QUICK), 4.0, "test", loadgen_cpu=5.0)
    assert not ok and "TOO MUCH: loadgen node" in msg and "--workers" in msg
