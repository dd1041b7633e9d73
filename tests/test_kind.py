"""deploy/kind: cluster config, kube-prometheus-stack values, in-cluster Locust manifests, the
cluster helpers (with fake API objects) and the scripts' prerequisite checks. No cluster needed."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from helm_util import CHART, K8S_VERSIONS, KIND_DIR, ROOT, load_env_file, load_yaml
from kubernetes.client import (
    V1Container,
    V1ContainerImage,
    V1ContainerStatus,
    V1Node,
    V1NodeStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodCondition,
    V1PodSpec,
    V1PodStatus,
)

from servecmp.cluster import cluster, loadgen

PINS = load_env_file(KIND_DIR / "versions.env")
EXP_TEXT = (ROOT / "loadtests" / "experiments" / "quick.yaml").read_text()


# ---- kind cluster config ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def kind_cfg() -> dict:
    return load_yaml(KIND_DIR / "kind-config.yaml")


def test_kind_config_shape(kind_cfg: dict) -> None:
    assert kind_cfg["kind"] == "Cluster" and kind_cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert kind_cfg["name"] == PINS["KIND_CLUSTER_NAME"]
    roles = [n["role"] for n in kind_cfg["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]


def test_servers_and_loadgen_get_separate_nodes(kind_cfg: dict) -> None:
    labels = [n.get("labels", {}).get("servecmp.io/role") for n in kind_cfg["nodes"]]
    assert labels.count("server") == 1 and labels.count("loadgen") == 1
    chart_selector = load_yaml(CHART / "values.yaml")["global"]["nodeSelector"]
    assert chart_selector == {"servecmp.io/role": "server"}
    job = loadgen.LoadJob(
        run_id="r",
        target="tfserving-rest-json",
        address="a.b.svc:8501",
        image="i:1",
        experiment_text=EXP_TEXT,
    )
    for m in loadgen.manifests(job):
        if m["kind"] == "Job":
            assert m["spec"]["template"]["spec"]["nodeSelector"] == {"servecmp.io/role": "loadgen"}


def test_port_mappings_match_nodeports_and_stay_on_loopback(kind_cfg: dict) -> None:
    maps = {m["containerPort"]: m for m in kind_cfg["nodes"][0]["extraPortMappings"]}
    kps = load_yaml(KIND_DIR / "kube-prometheus-stack-values.yaml")
    for svc, node_key, host_key in (
        (kps["grafana"]["service"], "GRAFANA_NODE_PORT", "GRAFANA_HOST_PORT"),
        (kps["prometheus"]["service"], "PROMETHEUS_NODE_PORT", "PROMETHEUS_HOST_PORT"),
    ):
        assert svc["type"] == "NodePort" and svc["nodePort"] == int(PINS[node_key])
        m = maps[int(PINS[node_key])]
        assert m["hostPort"] == int(PINS[host_key]) and m["listenAddress"] == "127.0.0.1"


def test_kubeadm_patches_open_control_plane_metrics(kind_cfg: dict) -> None:
    patches = [yaml.safe_load(p) for p in kind_cfg["kubeadmConfigPatches"]]
    by_version = {p.get("apiVersion"): p for p in patches if p["kind"] == "ClusterConfiguration"}
    assert set(by_version) == {"kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"}
    v3 = by_version["kubeadm.k8s.io/v1beta3"]
    assert v3["controllerManager"]["extraArgs"]["bind-address"] == "0.0.0.0"
    assert v3["scheduler"]["extraArgs"]["bind-address"] == "0.0.0.0"
    assert v3["etcd"]["local"]["extraArgs"]["listen-metrics-urls"] == "http://0.0.0.0:2381"
    v4 = by_version["kubeadm.k8s.io/v1beta4"]
    as_map = lambda args: {a["name"]: a["value"] for a in args}  # noqa: E731
    assert as_map(v4["controllerManager"]["extraArgs"]) == {"bind-address": "0.0.0.0"}
    assert as_map(v4["scheduler"]["extraArgs"]) == {"bind-address": "0.0.0.0"}
    assert as_map(v4["etcd"]["local"]["extraArgs"]) == {
        "listen-metrics-urls": "http://0.0.0.0:2381"
    }
    (proxy,) = [p for p in patches if p["kind"] == "KubeProxyConfiguration"]
    assert proxy["metricsBindAddress"] == "0.0.0.0:10249"
    kps = load_yaml(KIND_DIR / "kube-prometheus-stack-values.yaml")
    assert (
        kps["kubeEtcd"]["service"]["port"] == 2381 and kps["kubeProxy"]["service"]["port"] == 10249
    )


def test_pins() -> None:
    assert PINS["KPS_CHART_VERSION"].count(".") == 2
    image = PINS["KIND_NODE_IMAGE"]
    assert image.startswith("kindest/node:v1.") and not image.endswith(":latest")
    # the node image kind v0.27.0 was released with, by digest (kind v0.27.0
    # pkg/apis/config/defaults/image.go): a bare tag is re-pushed with each kind release
    assert image == (
        "kindest/node:v1.32.2@sha256:"
        "f226345927d7e348497136874b6d207e0b32cc52154ad8323129352923a3142f"
    )
    assert PINS["KIND_MIN_VERSION"] == "0.27.0"


def test_kube_prometheus_stack_values_select_our_objects() -> None:
    kps = load_yaml(KIND_DIR / "kube-prometheus-stack-values.yaml")
    spec = kps["prometheus"]["prometheusSpec"]
    for key in (
        "serviceMonitorSelectorNilUsesHelmValues",
        "podMonitorSelectorNilUsesHelmValues",
        "ruleSelectorNilUsesHelmValues",
    ):
        assert spec[key] is False
    chart = load_yaml(CHART / "values.yaml")
    assert chart["global"]["monitoring"]["release"] == PINS["KPS_RELEASE"]
    side = kps["grafana"]["sidecar"]["dashboards"]
    assert side["enabled"] is True and side["searchNamespace"] == "ALL"
    assert (
        side["label"] == chart["dashboards"]["label"]
        and side["labelValue"] == chart["dashboards"]["labelValue"]
    )
    admin = kps["grafana"]["admin"]
    assert admin["existingSecret"] == "servecmp-grafana-admin"
    assert "adminPassword" not in kps["grafana"]
    # `kind up` creates that Secret: tests/test_kind_commands.py (behaviour on the recording fake)


# ---- in-cluster Locust ------------------------------------------------------------------------
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_loadgen_manifests_validate(version: str) -> None:
    import kubernetes_validate

    job = loadgen.LoadJob(
        run_id="kind-20250101T000000Z",
        target="torchserve-grpc-bytes",
        address="servecmp-torchserve-grpc.servecmp.svc:7070",
        image="servecmp/loadgen:abc",
        workers=2,
        engine="locust",
        experiment_text=EXP_TEXT,
    )
    docs = loadgen.manifests(job)
    assert [d["kind"] for d in docs] == ["ConfigMap", "Service", "Job", "Job"]
    docs = docs[1:]
    for d in docs:
        kubernetes_validate.validate(d, version, strict=True)
    master, worker = docs[1], docs[2]
    assert worker["spec"]["parallelism"] == 2
    assert (
        docs[0]["spec"]["selector"].items()
        <= master["spec"]["template"]["metadata"]["labels"].items()
    )
    env = {
        e["name"]: e["value"] for e in master["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert set(loadgen.ENV_CONTRACT) <= set(env)
    assert env["SERVECMP_ADDRESS"].endswith(".svc:7070") and env["SERVECMP_CLUSTER_MODE"] == "1"
    for d in docs[1:]:
        c = d["spec"]["template"]["spec"]["containers"][0]
        assert c["resources"]["requests"] == c["resources"]["limits"]
        assert c["image"] == "servecmp/loadgen:abc"
    assert len(master["metadata"]["name"]) <= 63


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_steps_engine_job_runs_the_local_step_engine_in_cluster_mode(version: str) -> None:
    import kubernetes_validate

    job = loadgen.LoadJob(
        run_id="kind-x",
        target="tfserving-grpc-tensorproto",
        address="servecmp-tfserving-grpc.servecmp.svc:8500",
        image="servecmp/loadgen:abc",
        experiment_text=EXP_TEXT,
    )
    _, doc = loadgen.manifests(job)
    kubernetes_validate.validate(doc, version, strict=True)
    c = doc["spec"]["template"]["spec"]["containers"][0]
    script = " ".join(c["command"])
    assert "servecmp steps" in script and "--cluster-mode" in script and loadgen.BEGIN in script
    assert c["command"][-2:] == ["tfserving-grpc-tensorproto", "kind-x"]
    with pytest.raises(ValueError, match="engine"):
        loadgen.manifests(
            loadgen.LoadJob(
                run_id="r",
                target="t",
                address="a",
                image="i",
                engine="k6",
                experiment_text=EXP_TEXT,
            )
        )


def test_merge_appends_in_cluster_steps_in_the_local_format(tmp_path: Path) -> None:
    from servecmp.results.schema import StepResult, TargetAvailability
    from servecmp.results.store import RunStore

    def step(run: str, i: int, target: str) -> StepResult:
        return StepResult(
            run_id=run,
            step_id=f"{i:03d}-{target}",
            index=i,
            target=target,
            server="torchserve",
            protocol="rest",
            encoding="json",
            sweep="closed_loop",
            mode="closed_loop",
            concurrency=1,
            started_at="2026-01-01T00:00:00Z",
            warmup_s=1,
            window_s=1,
            stop_reason="stable",
            ok=10,
            requests=10,
        )

    local, remote = tmp_path / "kind-run", tmp_path / "remote"
    RunStore(local).append_step(step("kind-run", 0, "a"))
    for i in range(2):
        RunStore(remote).append_step(step("kind-run", i, "b"))
    RunStore(remote).append_target(TargetAvailability(target="b", available=True, address="svc:1"))
    assert loadgen.merge_run(local, remote) == 2
    steps = RunStore(local).read_steps().steps
    assert [(s.target, s.index) for s in steps] == [("a", 0), ("b", 1), ("b", 2)]
    assert [t.target for t in RunStore(local).read_targets()] == ["b"]


def _results_log(files: dict[str, bytes], noise: str = "") -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    b64 = base64.encodebytes(buf.getvalue()).decode()
    return f"locust output\n{noise}{loadgen.BEGIN}\n{b64}{loadgen.END}\n"


def test_extract_results_round_trip(tmp_path: Path) -> None:
    log = _results_log({"./locust_stats.csv": b"Type,Name\n", "./report.html": b"<html/>"})
    paths = loadgen.extract_results(log, tmp_path / "out")
    assert sorted(p.name for p in paths) == ["locust_stats.csv", "report.html"]
    assert (tmp_path / "out" / "locust_stats.csv").read_bytes() == b"Type,Name\n"


def test_extract_results_refuses_unsafe_paths_and_missing_markers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        loadgen.extract_results(_results_log({"../evil": b"x"}), tmp_path)
    with pytest.raises(ValueError, match="markers"):
        loadgen.extract_results("locust crashed\n", tmp_path)


# ---- cluster.py with fake API objects ---------------------------------------------------------
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _node(images: list[tuple[list[str], int]]) -> V1Node:
    return V1Node(
        status=V1NodeStatus(images=[V1ContainerImage(names=n, size_bytes=s) for n, s in images])
    )


def _pod(
    name: str,
    ready_after: float | None,
    restarts: int = 0,
    image: str = "pytorch/torchserve:0.12.0-cpu",
    created: datetime = T0,
) -> V1Pod:
    conds = [V1PodCondition(type="PodScheduled", status="True", last_transition_time=created)]
    if ready_after is not None:
        conds.append(
            V1PodCondition(
                type="Ready",
                status="True",
                last_transition_time=created + timedelta(seconds=ready_after),
            )
        )
    return V1Pod(
        metadata=V1ObjectMeta(name=name, creation_timestamp=created),
        spec=V1PodSpec(
            containers=[V1Container(name="torchserve", image=image)],
            init_containers=[
                V1Container(name="model-artifacts", image="servecmp/model-artifacts:resnet-abc")
            ],
        ),
        status=V1PodStatus(
            conditions=conds,
            container_statuses=[
                V1ContainerStatus(
                    name="torchserve",
                    image=image,
                    image_id="",
                    ready=ready_after is not None,
                    restart_count=restarts,
                )
            ],
        ),
    )


@pytest.mark.parametrize(
    ("ref", "norm"),
    [
        ("pytorch/torchserve:0.12.0-cpu", "docker.io/pytorch/torchserve:0.12.0-cpu"),
        ("docker.io/pytorch/torchserve:0.12.0-cpu", "docker.io/pytorch/torchserve:0.12.0-cpu"),
        ("busybox:1.37.0", "docker.io/library/busybox:1.37.0"),
        ("docker.io/busybox:1.37.0", "docker.io/library/busybox:1.37.0"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
    ],
)
def test_normalize_image(ref: str, norm: str) -> None:
    assert cluster.normalize_image(ref) == norm


def test_node_image_sizes() -> None:
    nodes = [
        _node(
            [
                (
                    [
                        "docker.io/pytorch/torchserve@sha256:aa",
                        "docker.io/pytorch/torchserve:0.12.0-cpu",
                    ],
                    2_500_000_000,
                ),
                (["docker.io/tensorflow/serving:2.19.0"], 480_000_000),
            ]
        ),
        _node(
            [
                (["docker.io/tensorflow/serving:2.19.0"], 480_000_000),
                (["docker.io/servecmp/model-artifacts:resnet-abc"], 9_000_000),
            ]
        ),
        V1Node(status=V1NodeStatus(images=None)),
    ]
    sizes = cluster.node_image_sizes(nodes)
    assert sizes["docker.io/pytorch/torchserve:0.12.0-cpu"] == 2_500_000_000
    assert not any("@" in k for k in sizes)
    assert cluster.image_size(nodes, "tensorflow/serving:2.19.0") == 480_000_000
    assert cluster.image_size(nodes, "tensorflow/serving:2.18.0") is None


def test_server_status_install_to_ready_and_restarts() -> None:
    nodes = [_node([(["docker.io/pytorch/torchserve:0.12.0-cpu"], 100)])]
    pods = [_pod("a", 12.5, restarts=1), _pod("b", 20.0, created=T0 + timedelta(seconds=1))]
    st = cluster.server_status("torchserve", pods, nodes)
    assert st.pods == 2 and st.ready == 2 and st.restarts == 1
    assert st.install_to_ready_s == pytest.approx(21.0)
    assert st.images == {
        "pytorch/torchserve:0.12.0-cpu": 100,
        "servecmp/model-artifacts:resnet-abc": None,
    }
    assert st.server_image == "pytorch/torchserve:0.12.0-cpu"  # the container named for the server
    assert cluster.pod_ready_seconds(pods[0]) == pytest.approx(12.5)
    not_ready = cluster.server_status("torchserve", [_pod("c", None)], nodes)
    assert not_ready.install_to_ready_s is None and not_ready.ready == 0


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_wait_rollout_polls_until_available() -> None:
    clock = FakeClock()
    states = iter([0, 0, 1, 2])

    class Apps:
        def read_namespaced_deployment(self, name, ns):
            avail = next(states)
            return SimpleNamespace(
                metadata=SimpleNamespace(generation=2),
                spec=SimpleNamespace(replicas=2),
                status=SimpleNamespace(
                    observed_generation=2, updated_replicas=2, available_replicas=avail, replicas=2
                ),
            )

    assert cluster.wait_rollout(Apps(), "ns", "d", clock=clock, sleep=clock.sleep) == pytest.approx(
        3.0
    )
    clock2 = FakeClock()
    with pytest.raises(TimeoutError, match="0/2 available"):
        cluster.wait_rollout(
            SimpleNamespace(
                read_namespaced_deployment=lambda n, ns: SimpleNamespace(
                    metadata=SimpleNamespace(generation=1),
                    spec=SimpleNamespace(replicas=2),
                    status=SimpleNamespace(
                        observed_generation=1, updated_replicas=0, available_replicas=0, replicas=2
                    ),
                )
            ),
            "ns",
            "d",
            timeout_s=5,
            clock=clock2,
            sleep=clock2.sleep,
        )


def test_recover_measures_until_replacement_ready() -> None:
    clock = FakeClock()

    class Core:
        def __init__(self) -> None:
            self.deleted: list[str] = []
            self.calls = 0

        def list_namespaced_pod(self, ns, label_selector):
            assert label_selector == "servecmp.io/server=torchserve"
            self.calls += 1
            if not self.deleted:
                return SimpleNamespace(items=[_pod("ts-a", 3.0)])
            # replacement becomes Ready on the 4th poll after the delete
            new = _pod("ts-b", 5.0 if self.calls >= 5 else None)
            return SimpleNamespace(items=[_pod("ts-a", 3.0), new])

        def delete_namespaced_pod(self, name, ns, grace_period_seconds):
            self.deleted.append(name)

    core = Core()
    secs = cluster.recover(
        core, "servecmp", "torchserve", replicas=1, clock=clock, sleep=clock.sleep
    )
    assert core.deleted == ["ts-a"]
    assert secs == pytest.approx(1.5)  # three 0.5 s sleeps before the replacement is Ready


@pytest.mark.parametrize("replicas", [1, 2])
def test_recover_with_two_replicas_waits_for_the_replacement_not_the_survivor(
    replicas: int,
) -> None:
    clock = FakeClock()

    class Core:
        def __init__(self) -> None:
            self.deleted: list[str] = []
            self.polls = 0

        def list_namespaced_pod(self, ns, label_selector):
            if not self.deleted:
                return SimpleNamespace(items=[_pod("ts-a", 3.0), _pod("ts-b", 3.0)])
            self.polls += 1
            # ts-b survives (Ready all along); the replacement ts-c is Ready from the 21st poll
            new = _pod("ts-c", 30.0 if self.polls >= 21 else None)
            return SimpleNamespace(items=[_pod("ts-b", 3.0), new])

        def delete_namespaced_pod(self, name, ns, grace_period_seconds):
            self.deleted.append(name)

    core = Core()
    secs = cluster.recover(
        core, "servecmp", "torchserve", replicas=replicas, clock=clock, sleep=clock.sleep
    )
    assert core.deleted == ["ts-a"]
    assert secs == pytest.approx(10.0)  # twenty 0.5 s sleeps: the survivor did not end the wait
    with pytest.raises(ValueError, match="replicas"):
        cluster.recover(core, "servecmp", "torchserve", replicas=0)
    assert (
        cluster.build_parser()
        .parse_args(["recover", "--server", "torchserve", "--replicas", "2"])
        .replicas
        == 2
    )


# ---- Helm inputs from an experiment -----------------------------------------------------------
def test_experiment_values(tmp_path: Path) -> None:
    from helm_util import make_inputs

    inputs = make_inputs(
        tmp_path,
        targets=[{"server": "tfserving", "protocol": "rest"}],
        resources={"cpus": 2.5, "memory_mib": 4096},
        model="tiny",
    )
    vals = load_yaml(inputs.values_file)
    assert vals["global"]["resources"] == {"cpu": 2.5, "memoryMiB": 4096}
    assert vals["global"]["model"] == {"name": "tiny", "inputShape": [3, 8, 8]}
    assert vals["global"]["protocols"] == ["rest"]
    assert vals["torchserve"]["enabled"] is False and vals["tfserving"]["enabled"] is True
    assert vals["tfserving"]["env"]["OMP_NUM_THREADS"] == "2"
    # the wire facts reach the chart as generated values, from the adapter (no copy in the chart)
    from servecmp.servers import registry

    for server in ("torchserve", "tfserving"):
        assert vals[server]["wire"] == registry.get(server).wire.values()
    assert vals["tfserving"]["wire"]["ports"]["http"] == {
        "port": 8501,
        "role": "rest",
        "appProtocol": "http",
    }
    assert vals["tfserving"]["wire"]["metricsPath"] == "/monitoring/prometheus/metrics"
    assert vals["torchserve"]["wire"]["metricsPort"] == "metrics"


# ---- scripts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "script",
    [
        "kind-up.sh",
        "kind-load.sh",
        "kind-down.sh",
        "kind-lib.sh",
        "kind-grafana-password.sh",
        "install-helm.sh",
    ],
)
def test_scripts_parse(script: str) -> None:
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], check=True)


def test_kind_up_lists_missing_prerequisites_with_hints(tmp_path: Path) -> None:
    # A PATH with bash and coreutils only: docker, kind, kubectl and helm are all missing.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname", "grep", "sort", "head", "printf", "cat"):
        src = subprocess.run(
            ["bash", "-c", f"command -v {tool}"], capture_output=True, text=True
        ).stdout.strip()
        if src.startswith("/"):
            (bindir / tool).symlink_to(src)
    env = {"PATH": str(bindir), "HOME": str(tmp_path), "SERVECMP_HELM": str(tmp_path / "no-helm")}
    proc = subprocess.run(
        [str(bindir / "bash"), str(ROOT / "scripts" / "kind-up.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    for tool, hint in (
        ("docker", "docs.docker.com"),
        ("kind", "kind.sigs.k8s.io"),
        ("helm", "install-helm.sh"),
        ("kubectl", "kubernetes.io"),
    ):
        assert f"- {tool} >= " in proc.stderr and hint in proc.stderr, proc.stderr


def test_install_helm_is_idempotent_when_present() -> None:
    helm = ROOT / ".tools" / "bin" / "helm"
    if not (helm.is_file() and os.access(helm, os.X_OK)):
        pytest.skip("helm not installed in .tools/bin (run scripts/install-helm.sh)")
    proc = subprocess.run(
        [str(ROOT / "scripts" / "install-helm.sh")], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0 and "already installed" in proc.stdout


def test_chart_podmonitor_scrapes_the_loadgen_jobs(tmp_path: Path) -> None:
    """The chart's PodMonitor selects the pods loadgen.py creates and their `metrics` port."""
    from helm_util import by_kind, make_inputs, render, require_helm

    require_helm()
    docs = render(make_inputs(tmp_path))
    (pm,) = by_kind(docs, "PodMonitor")
    assert pm["metadata"]["labels"]["release"] == "kps"
    job = loadgen.LoadJob(
        run_id="kind-x",
        target="torchserve-rest-json",
        address="servecmp-torchserve.servecmp.svc:8080",
        image="servecmp/loadgen:abc",
        experiment_text=EXP_TEXT,
    )
    _, doc = loadgen.manifests(job)
    pod = doc["spec"]["template"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert {ep["port"] for ep in pm["spec"]["podMetricsEndpoints"]} == {"metrics"}
    assert str(ports["metrics"]) in " ".join(pod["spec"]["containers"][0]["command"])


def test_cluster_report_becomes_typed_friction(tmp_path: Path) -> None:
    from servecmp.results.friction import read_friction

    report = {
        "namespace": "servecmp",
        "servers": {
            "torchserve": {
                "server": "torchserve",
                "pods": 1,
                "ready": 1,
                "restarts": 0,
                "install_to_ready_s": 41.5,
                "images": {
                    "busybox:1.37": 2_000_000,
                    "pytorch/torchserve:0.12.0-cpu": 1_500_000_000,
                },
                "server_image": "pytorch/torchserve:0.12.0-cpu",
            }
        },
    }
    rec = tmp_path / "recovery.json"
    rec.write_text('{"server": "torchserve", "recovery_s": 12.25}')
    # 2 measured + 1 recovery + 2 "not deployed" for each other chart server (tfserving, kserve)
    assert cluster.to_friction(report, tmp_path, [rec]) == 3 + 2 * (
        len(cluster.chart_servers()) - 1
    )
    recs, _ = read_friction(tmp_path)
    got = {(r.server, r.metric): r for r in recs}
    assert got[("torchserve", "install_ready_s")].value == 41.5
    assert (
        got[("torchserve", "image_bytes")].value == 1_500_000_000
    )  # the server image, not busybox
    assert got[("torchserve", "recovery_s")].placement == "kubernetes"
    assert (
        not got[("tfserving", "image_bytes")].available
        and not got[("kserve", "install_ready_s")].available
    )


def test_docs_say_kindnetd_enforces_network_policies() -> None:
    """kind v0.27.0's kindnetd runs kube-network-policies (images/kindnetd/cmd/kindnetd/main.go)."""
    for path in (
        ROOT / "helm/servecmp/charts/torchserve/values.yaml",
        ROOT / "helm/servecmp/README.md",
    ):
        text = " ".join(path.read_text().split())
        assert "does not enforce" not in text and "kind's default does not" not in text, path
        assert (
            "enforces NetworkPolicies since kind v0.27.0" in text
            or "does since kind v0.27.0" in text
        ), path
