"""What broke or misreported on a first real `make kind-up && make kind-load`, found by review
against upstream and fixed (issue 10 review):

- scripts/kind-load.sh follows each load Job's log to keep the steps it prints. `kubectl logs -f`
  exits at once with "container ... is waiting to start: ContainerCreating" while the pod starts
  (kubernetes/kubernetes#28746, kubernetes/kubectl#1227), so the script first waits for the Job's
  container to start (cluster.py wait-started); the dry run with this behaviour in the fake
  kubectl is in tests/test_kind_scripts.py;
- load Job names unique per (run, target); the `run` label keeps the run id's case;
- kind-up waits for kube-prometheus-stack's Prometheus StatefulSet, not only its Deployments.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from servecmp.cluster import cluster

PODS = Path(__file__).parent / "kind_pods"


def _pod(name: str) -> dict:
    return json.loads((PODS / f"{name}.json").read_text())


def _running(pod: dict) -> dict:
    pod = copy.deepcopy(pod)
    pod["status"]["phase"] = "Running"
    pod["status"]["initContainerStatuses"][0]["state"] = {
        "terminated": {"exitCode": 0, "reason": "Completed"}
    }
    pod["status"]["containerStatuses"][0]["state"] = {
        "running": {"startedAt": "2026-01-01T00:00:09Z"}
    }
    return pod


def test_container_started_only_once_running_or_terminated() -> None:
    starting = _pod("starting")  # init container running, main container PodInitializing
    assert not cluster.container_started(starting)
    assert not cluster.container_started({"status": {"phase": "Pending"}})  # not even scheduled
    running = _running(starting)
    assert cluster.container_started(running)
    done = copy.deepcopy(running)
    done["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0}}
    assert cluster.container_started(done)  # a Job that already finished: its log is readable
    assert not cluster.container_started(running, container="other")


class _Core:
    """Pod of a Job that starts on the third poll."""

    def __init__(self, pods: list[dict]) -> None:
        self.pods, self.polls = pods, 0

    def list_namespaced_pod(self, ns, label_selector=""):
        assert label_selector == "job-name=locust-x-master"
        pod = self.pods[min(self.polls, len(self.pods) - 1)]
        self.polls += 1
        return SimpleNamespace(items=[pod])

    def list_namespaced_event(self, ns, field_selector=""):
        return SimpleNamespace(items=[])


def test_wait_started_polls_until_the_container_runs() -> None:
    starting = _pod("starting")
    core = _Core([starting, starting, _running(starting)])
    clock = SimpleNamespace(t=0.0)
    name = cluster.wait_started(
        core,
        "servecmp",
        "locust-x-master",
        300,
        clock=lambda: clock.t,
        sleep=lambda s: setattr(clock, "t", clock.t + s),
    )
    assert name == starting["metadata"]["name"] and core.polls == 3


def test_wait_started_fails_fast_on_a_stuck_pod() -> None:
    core = _Core([_pod("image-never-pull")])
    with pytest.raises(cluster.PodStuck, match="ErrImagePull"):
        cluster.wait_started(core, "servecmp", "locust-x-master", 300, sleep=lambda s: None)


def test_wait_started_times_out() -> None:
    core = _Core([_pod("starting")])
    clock = SimpleNamespace(t=0.0)
    with pytest.raises(TimeoutError, match="no pod with a started container"):
        cluster.wait_started(
            core,
            "servecmp",
            "locust-x-master",
            5,
            clock=lambda: clock.t,
            sleep=lambda s: setattr(clock, "t", clock.t + s),
        )


def test_load_job_names_stay_unique_and_short() -> None:
    """Two targets with a long common prefix got the same 52-character Job name (plain
    truncation): the second run would have hit the first one's Job, Service and ConfigMap."""
    from servecmp.cluster.loadgen import LoadJob

    run = "kind-20261125T215724Z"
    a = LoadJob(
        run_id=run, target="torchserve-rest-json-batching-on-b8", address="a:1", image="i:1"
    )
    b = LoadJob(
        run_id=run, target="torchserve-rest-json-batching-on-b16", address="a:1", image="i:1"
    )
    assert a.name != b.name
    for job in (a, b):
        assert len(job.name) <= 52 and len(f"{job.name}-experiment") <= 63
        assert job.name[0].isalpha() and job.name[-1].isalnum()
    short = LoadJob(run_id=run, target="tfserving-rest-json", address="a:1", image="i:1")
    assert short.name == "locust-kind-20261125t215724z-tfserving-rest-json"  # short names unchanged


def test_run_label_equals_the_run_directory_name() -> None:
    """The PodMonitor copies the pod's servecmp.io/run-id label into the series' `run` label; it
    was lowercased ("kind-20261125t215724z"), so Grafana's `run` for a kind run did not match the
    run directory (runs/kind-20261125T215724Z) the way a local run's does."""
    import re

    from servecmp.cluster.loadgen import LoadJob, manifests

    job = LoadJob(
        run_id="kind-20261125T215724Z",
        target="tfserving-rest-json",
        address="a:1",
        image="i:1",
        experiment_text="name: x\n",
    )
    value = job.labels["servecmp.io/run-id"]
    assert value == "kind-20261125T215724Z"
    # a valid Kubernetes label value (apimachinery validation.IsValidLabelValue)
    assert len(value) <= 63 and re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value)
    odd = LoadJob(run_id="my run/1.", target="t", address="a:1", image="i:1").labels[
        "servecmp.io/run-id"
    ]
    assert re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", odd) and odd == "my-run-1"
    pod_labels = next(d for d in manifests(job) if d["kind"] == "Job")["spec"]["template"][
        "metadata"
    ]["labels"]
    assert pod_labels["servecmp.io/run-id"] == "kind-20261125T215724Z"


def _deployment_ready() -> SimpleNamespace:
    return SimpleNamespace(
        metadata=SimpleNamespace(name="kps-grafana", generation=1),
        spec=SimpleNamespace(replicas=1),
        status=SimpleNamespace(observed_generation=1, updated_replicas=1, available_replicas=1),
    )


class _Apps:
    """kube-prometheus-stack after install: Deployments ready; the operator creates the
    Prometheus StatefulSet on the second poll and it is ready on the fourth."""

    def __init__(self) -> None:
        self.polls = 0

    def list_namespaced_deployment(self, ns, label_selector=""):
        self.polls += 1
        return SimpleNamespace(items=[_deployment_ready()])

    def list_namespaced_stateful_set(self, ns, label_selector=""):
        if self.polls < 2:
            return SimpleNamespace(items=[])
        ready = 1 if self.polls >= 4 else 0
        return SimpleNamespace(
            items=[
                SimpleNamespace(
                    metadata=SimpleNamespace(
                        name="prometheus-kps-kube-prometheus-stack-prometheus"
                    ),
                    spec=SimpleNamespace(replicas=1),
                    status=SimpleNamespace(ready_replicas=ready),
                )
            ]
        )


class _NoPods:
    def list_namespaced_pod(self, ns, label_selector=""):
        return SimpleNamespace(items=[])


def test_monitoring_wait_covers_the_prometheus_statefulset() -> None:
    clock = SimpleNamespace(t=0.0)
    tick = {"clock": lambda: clock.t, "sleep": lambda s: setattr(clock, "t", clock.t + s)}
    apps = _Apps()
    cluster.wait_namespace(_NoPods(), apps, "monitoring", 600, min_statefulsets=1, **tick)
    assert apps.polls == 4  # returned only once Prometheus was ready, not on the first poll
    apps = _Apps()
    cluster.wait_namespace(_NoPods(), apps, "monitoring", 600, **tick)
    assert apps.polls == 1  # Deployments only (the servecmp namespace)


def test_wait_takes_a_statefulset_minimum() -> None:
    # that `kind up` passes it for the monitoring namespace: tests/test_kind_commands.py
    args = cluster.build_parser().parse_args(["wait", "--min-statefulsets", "1"])
    assert args.min_statefulsets == 1
