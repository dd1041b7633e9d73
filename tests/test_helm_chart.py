"""helm/servecmp: lint, render every ci/ scenario, validate against Kubernetes 1.29 and 1.33
schemas (strict, offline), and check the rendered manifests against the generated configs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_util import (
    CHART,
    CI_DIR,
    K8S_VERSIONS,
    LIBCHART,
    SCENARIOS,
    SUBCHARTS,
    by_kind,
    helm,
    make_inputs,
    named,
    pod_specs,
    port_name,
    render,
    require_helm,
    wire_values,
)

pytestmark = pytest.mark.helm

SERVERS = ("torchserve", "tfserving", "kserve", "triton", "rayserve")
CRD_GROUPS = ("monitoring.coreos.com/",)


@pytest.fixture(scope="module", autouse=True)
def _helm() -> None:
    require_helm()


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Any, list[dict[str, Any]]]]:
    """scenario -> (inputs, rendered docs); each ci/ file with its experiment's configs."""
    out = {}
    for scenario, over in SCENARIOS.items():
        inputs = make_inputs(tmp_path_factory.mktemp(scenario), **over)
        docs = render(inputs, [CI_DIR / f"{scenario}-values.yaml"])
        out[scenario] = (inputs, docs)
    return out


def test_every_ci_file_is_a_scenario() -> None:
    files = sorted(p.name.removesuffix("-values.yaml") for p in CI_DIR.glob("*-values.yaml"))
    assert files == sorted(SCENARIOS), (
        "ci/*.yaml and tests/helm_util.SCENARIOS must list the same scenarios"
    )


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_strict(scenario: str, tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path, **SCENARIOS[scenario])
    proc = helm(
        "lint",
        str(CHART),
        "--strict",
        "-f",
        str(inputs.wire_file),
        "-f",
        str(inputs.values_file),
        "-f",
        str(CI_DIR / f"{scenario}-values.yaml"),
        *inputs.set_file_args(),
    )
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_manifests_validate_against_kubernetes_schema(
    rendered, scenario: str, version: str
) -> None:
    import kubernetes_validate

    _, docs = rendered[scenario]
    skipped, checked = [], 0
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            # Custom resources: kubernetes-validate ships no CRD schemas (checked structurally below).
            skipped.append(doc["kind"])
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(
                f"{doc['kind']}/{doc['metadata']['name']} invalid for {version}: {err.message}"
            )
        checked += 1
    assert checked >= 5


def _containers(spec: dict[str, Any], server: str) -> dict[str, Any]:
    return next(c for c in spec["containers"] if c["name"] == server)


def _deployment(docs, server):
    return named(docs, "Deployment", f"servecmp-{server}")


def _enabled(docs) -> list[str]:
    return [
        s
        for s in SERVERS
        if any(d["metadata"]["name"] == f"servecmp-{s}" for d in by_kind(docs, "Deployment"))
    ]


def test_scenarios_deploy_what_they_say(rendered) -> None:
    assert _enabled(rendered["default"][1]) == list(SERVERS)
    assert _enabled(rendered["tfserving-only"][1]) == ["tfserving"]
    assert _enabled(rendered["torchserve-only"][1]) == ["torchserve"]
    assert _enabled(rendered["kserve-only"][1]) == ["kserve"]
    for s in SERVERS:
        assert _deployment(rendered["two-replicas"][1], s)["spec"]["replicas"] == 2


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_probes_present(rendered, scenario: str) -> None:
    _, docs = rendered[scenario]
    for server in _enabled(docs):
        c = _containers(_deployment(docs, server)["spec"]["template"]["spec"], server)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in c, f"{server}: no {probe}"
        # every GET probe asks the wire's ready path on the REST port
        wire = wire_values(server)
        ready = wire["readyPath"].replace("{model}", "resnet")
        rest = next(n for n, p in wire["ports"].items() if p["role"] == "rest")
        assert c["startupProbe"]["httpGet"] == {"path": ready, "port": rest}, server
        # a TCP connect: a predict holding KServe's event loop, or requests queued ahead of the
        # GET in Ray's router (max_ongoing_requests per replica), cannot fail it
        if server in ("kserve", "rayserve"):
            assert c["livenessProbe"]["tcpSocket"] == {"port": rest}
        else:
            assert c["livenessProbe"]["httpGet"] == {"path": ready, "port": rest}, server
        if server != "torchserve":
            assert c["readinessProbe"]["httpGet"] == {"path": ready, "port": rest}
        else:
            # readiness = a worker of the model is READY in the management API, not just /ping
            cmd = " ".join(c["readinessProbe"]["exec"]["command"])
            assert "/models/resnet" in cmd and "READY" in cmd and "/dev/tcp/127.0.0.1/8081" in cmd
            assert c["startupProbe"]["httpGet"]["path"] == "/ping"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_resources_equal_and_requests_equal_limits(rendered, scenario: str) -> None:
    inputs, docs = rendered[scenario]
    budgets = {}
    for server in _enabled(docs):
        res = _containers(_deployment(docs, server)["spec"]["template"]["spec"], server)[
            "resources"
        ]
        assert res["requests"] == res["limits"], f"{server}: requests != limits"
        budgets[server] = res["limits"]
    assert len({json.dumps(b, sort_keys=True) for b in budgets.values()}) == 1, budgets
    (limits,) = {json.dumps(b, sort_keys=True) for b in budgets.values()}
    limits = json.loads(limits)
    assert float(limits["cpu"]) == inputs.exp.resources.cpus
    assert limits["memory"] == f"{inputs.exp.resources.memory_mib}Mi"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_thread_env_matches_generated_configs(rendered, scenario: str) -> None:
    """OMP/MKL threads come from the CPU budget (via the generator), not the node's cores."""
    inputs, docs = rendered[scenario]
    intra = str(inputs.exp.intra_op_threads)
    for server in _enabled(docs):
        c = _containers(_deployment(docs, server)["spec"]["template"]["spec"], server)
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["OMP_NUM_THREADS"] == intra
        if not (inputs.config_dir / server / "env").is_file():
            # a server whose adapter renders no env file has none to mount
            assert server == "kserve"
            continue
        for k, v in inputs.env(server).items():
            assert env.get(k) == v, f"{server}: env {k}={env.get(k)!r}, generator says {v!r}"
        if server == "tfserving":
            assert f"--tensorflow_intra_op_parallelism={intra}" in c["args"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_torchserve_ports_and_mounts_match_config_properties(rendered, scenario: str) -> None:
    from servecmp.configgen import Placement
    from servecmp.servers.torchserve.config import parse_properties

    inputs, docs = rendered[scenario]
    if "torchserve" not in _enabled(docs):
        pytest.skip("TorchServe not deployed in this scenario")
    props = parse_properties(inputs.file("torchserve", "config.properties"))
    spec = _deployment(docs, "torchserve")["spec"]["template"]["spec"]
    c = _containers(spec, "torchserve")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}

    def port(role: str) -> int:
        return ports[port_name("torchserve", role)]

    assert port("rest") == int(props["inference_address"].rsplit(":", 1)[1])
    assert port("management") == int(props["management_address"].rsplit(":", 1)[1])
    assert port("metrics") == int(props["metrics_address"].rsplit(":", 1)[1])
    assert port("grpc") == int(props["grpc_inference_port"])
    assert port("grpc-management") == int(props["grpc_management_port"])
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    k8s = Placement.kubernetes()
    config_arg = c["args"][c["args"].index("--ts-config") + 1]
    assert config_arg == f"{k8s.path('torchserve', 'config')}/config.properties"
    assert mounts[k8s.path("torchserve", "config")] == "config"
    store = k8s.path("torchserve", "models")
    assert props["model_store"] == store and mounts[store] == "model-store"
    cm = named(docs, "ConfigMap", "servecmp-torchserve-config")
    assert (
        cm["data"]["config.properties"].strip()
        == inputs.file("torchserve", "config.properties").strip()
    )


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_tfserving_args_ports_and_mounts_match_flags(rendered, scenario: str) -> None:
    from servecmp.configgen import Placement

    inputs, docs = rendered[scenario]
    if "tfserving" not in _enabled(docs):
        pytest.skip("TF Serving not deployed in this scenario")
    flags = [ln for ln in inputs.file("tfserving", "flags.txt").splitlines() if ln.strip()]
    spec = _deployment(docs, "tfserving")["spec"]["template"]["spec"]
    c = _containers(spec, "tfserving")
    assert c["command"] == ["tensorflow_model_server"] and c["args"] == flags
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    grpc, rest = ports[port_name("tfserving", "grpc")], ports[port_name("tfserving", "rest")]
    assert f"--port={grpc}" in flags and f"--rest_api_port={rest}" in flags
    k8s = Placement.kubernetes()
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    tfs_cfg, tfs_models = k8s.path("tfserving", "config"), k8s.path("tfserving", "models")
    assert mounts[tfs_cfg] == "config" and mounts[tfs_models] == "models"
    cm = named(docs, "ConfigMap", "servecmp-tfserving-config")
    for flag in flags:  # every file a flag names is a key of the mounted ConfigMap
        m = re.match(r"--\w+_file=(.+)$", flag)
        if m:
            path = Path(m.group(1))
            assert (
                str(path.parent) == k8s.path("tfserving", "config") and path.name in cm["data"]
            ), flag
    batching = SCENARIOS[scenario].get("tuning", {}).get("batching", {}).get("enabled", False)
    assert ("--enable_batching=true" in flags) == batching
    assert f'base_path: "{tfs_models}/resnet"' in cm["data"]["models.config"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_servicemonitors_select_their_metrics_service(rendered, scenario: str) -> None:
    _, docs = rendered[scenario]
    services = by_kind(docs, "Service")
    sms = by_kind(docs, "ServiceMonitor")
    assert len(sms) == len(_enabled(docs))
    for sm in sms:
        assert sm["metadata"]["labels"]["release"] == "kps"
        sel = sm["spec"]["selector"]["matchLabels"]
        matches = [s for s in services if sel.items() <= s["metadata"]["labels"].items()]
        assert len(matches) == 1, (
            f"{sm['metadata']['name']} selects {[s['metadata']['name'] for s in matches]}"
        )
        svc = matches[0]
        port_names = {p["name"] for p in svc["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            assert ep["port"] in port_names
        server = svc["metadata"]["labels"]["servecmp.io/server"]
        wire = wire_values(server)
        (ep,) = sm["spec"]["endpoints"]
        assert (ep["port"], ep["path"]) == (wire["metricsPort"], wire["metricsPath"])
        assert [p["port"] for p in svc["spec"]["ports"]] == [
            wire["ports"][wire["metricsPort"]]["port"]
        ]
        # the Service's target port is a named container port of the server pod
        c = _containers(_deployment(docs, server)["spec"]["template"]["spec"], server)
        assert svc["spec"]["ports"][0]["targetPort"] in {p["name"] for p in c["ports"]}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_service_selectors_match_pods_and_ports(rendered, scenario: str) -> None:
    _, docs = rendered[scenario]
    pods = {s: _deployment(docs, s)["spec"]["template"] for s in _enabled(docs)}
    for svc in by_kind(docs, "Service"):
        server = svc["metadata"]["labels"]["servecmp.io/server"]
        tmpl = pods[server]
        assert svc["spec"]["selector"].items() <= tmpl["metadata"]["labels"].items()
        names = {p["name"] for p in _containers(tmpl["spec"], server)["ports"]}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in names


def test_management_never_exposed_by_nodeport(rendered) -> None:
    _, docs = rendered["two-replicas"]
    nodeports = [s for s in by_kind(docs, "Service") if s["spec"].get("type") == "NodePort"]
    assert nodeports, "the two-replicas scenario uses NodePort inference Services"
    for svc in nodeports:
        wire = wire_values(svc["metadata"]["labels"]["servecmp.io/server"])
        roles = {wire["ports"][p["name"]]["role"] for p in svc["spec"]["ports"]}
        assert roles <= {"rest", "grpc"}, (svc["metadata"]["name"], roles)
    kserve = named(docs, "Service", "servecmp-kserve")
    assert [p.get("nodePort") for p in kserve["spec"]["ports"]] == [30880, None]
    mgmt = named(docs, "Service", "servecmp-torchserve-management")
    assert mgmt["spec"]["type"] == "ClusterIP"


def test_grpc_headless_services_for_round_robin(rendered) -> None:
    _, docs = rendered["two-replicas"]
    for server, port in (("torchserve", 7070), ("tfserving", 8500), ("kserve", 8081)):
        svc = named(docs, "Service", f"servecmp-{server}-grpc")
        assert svc["spec"]["clusterIP"] == "None"
        assert [p["port"] for p in svc["spec"]["ports"]] == [port]


def test_rest_only_scenario_has_no_grpc_service(rendered) -> None:
    _, docs = rendered["torchserve-only"]
    names = {s["metadata"]["name"] for s in by_kind(docs, "Service")}
    assert "servecmp-torchserve-grpc" not in names
    inference = named(docs, "Service", "servecmp-torchserve")
    assert [p["name"] for p in inference["spec"]["ports"]] == [port_name("torchserve", "rest")]
    (np,) = by_kind(docs, "NetworkPolicy")
    mgmt_rule = next(r for r in np["spec"]["ingress"] if "from" in r)
    assert {p["port"] for p in mgmt_rule["ports"]} == {
        port_name("torchserve", r) for r in ("management", "grpc-management")
    }
    # hostPath artifacts: read-only model store, no init container
    spec = _deployment(docs, "torchserve")["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    vol = next(v for v in spec["volumes"] if v["name"] == "model-store")
    assert vol["hostPath"]["path"] == "/servecmp/artifacts/torchserve"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_security_settings(rendered, scenario: str) -> None:
    _, docs = rendered[scenario]
    for name, spec in pod_specs(docs):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec.get("automountServiceAccountToken") is False, name
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert not sc.get("privileged", False)
            writable = {m["mountPath"] for m in c.get("volumeMounts", []) if not m.get("readOnly")}
            if c["name"] in SERVERS:
                assert "/tmp" in writable, (name, c["name"])
            if c["name"] == "torchserve":
                assert "/home/model-server/logs" in writable


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_images_pinned(rendered, scenario: str) -> None:
    _, docs = rendered[scenario]
    for name, spec in pod_specs(docs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            image = c["image"]
            last = image.rsplit("/", 1)[-1]
            assert ":" in last or "@sha256:" in image, f"{name}/{c['name']}: untagged image {image}"
            assert not image.endswith(":latest"), f"{name}/{c['name']}: {image}"
    images = {c["image"] for _, s in pod_specs(docs) for c in s["containers"]}
    if "torchserve" in _enabled(docs):
        # built from deploy/kind/torchserve.Dockerfile (the project's pins), not the upstream image
        assert "servecmp/torchserve:0.12.0-py3.11-torch2.13.0" in images
    if "tfserving" in _enabled(docs):
        assert any(re.fullmatch(r"tensorflow/serving:2\.\d+\.\d+", i) for i in images)
    if "kserve" in _enabled(docs):
        # built from deploy/kind/kserve.Dockerfile (the project's pins)
        assert "servecmp/kserve:kserve0.21.0-py3.11-torch2.13.0" in images


def test_helm_test_pod_posts_a_valid_body(rendered) -> None:
    _, docs = rendered["default"]
    body_cm = named(docs, "ConfigMap", "servecmp-test-body")
    assert body_cm["metadata"]["annotations"]["helm.sh/hook"] == "test"
    body = json.loads(body_cm["data"]["body.json"])
    arr = body["instances"]
    assert (len(arr), len(arr[0]), len(arr[0][0]), len(arr[0][0][0])) == (1, 3, 64, 64)
    pod = named(docs, "Pod", "servecmp-test-inference")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "http://servecmp-torchserve:8080/predictions/resnet" in script
    assert "http://servecmp-tfserving:8501/v1/models/resnet:predict" in script
    assert "http://servecmp-kserve:8080/v1/models/resnet:predict" in script
    # only the enabled server is tested
    script_tf = named(rendered["tfserving-only"][1], "Pod", "servecmp-test-inference")["spec"][
        "containers"
    ][0]["args"][0]
    assert "torchserve" not in script_tf and "kserve" not in script_tf


def test_checksum_annotation_rolls_pods_on_config_change(rendered) -> None:
    a = _deployment(rendered["default"][1], "tfserving")["spec"]["template"]["metadata"][
        "annotations"
    ]
    b = _deployment(rendered["batching"][1], "tfserving")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert a["checksum/config"] != b["checksum/config"]


# ---- dashboards and recording rules (files owned by the observability work) -------------------
def test_dashboards_in_repo_render_as_configmaps(rendered) -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    if not files:
        pytest.skip("no helm/servecmp/dashboards/*.json yet (written by the observability work)")
    _, docs = rendered["default"]
    cms = [
        d
        for d in by_kind(docs, "ConfigMap")
        if d["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    keys = {k for cm in cms for k in cm["data"]}
    assert keys == {f.name for f in files}
    for cm in cms:
        for content in cm["data"].values():
            json.loads(content)


def test_recording_rules_in_repo_render_unchanged(rendered) -> None:
    src = CHART / "files" / "recording-rules.yaml"
    if not src.is_file():
        pytest.skip(
            "no helm/servecmp/files/recording-rules.yaml yet (written by the observability work)"
        )
    _, docs = rendered["default"]
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["spec"]["groups"] == yaml.safe_load(src.read_text())["groups"]


def test_dashboard_and_rule_mechanism(tmp_path: Path) -> None:
    """With a fake dashboard and rules file in a copy of the chart: one labelled ConfigMap per
    dashboard, one PrometheusRule carrying the groups verbatim."""
    chart = tmp_path / "servecmp"
    shutil.copytree(CHART, chart)
    for f in (chart / "dashboards").glob("*.json"):
        f.unlink()
    (chart / "dashboards" / "Latency Overview.json").write_text(
        json.dumps({"title": "x", "panels": []})
    )
    groups = [
        {"name": "servecmp", "rules": [{"record": "servecmp:x:rate1m", "expr": "rate(x[1m])"}]}
    ]
    (chart / "files").mkdir(exist_ok=True)
    (chart / "files" / "recording-rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    inputs = make_inputs(tmp_path / "in")
    docs = render(inputs, chart=chart)
    cms = [
        d
        for d in by_kind(docs, "ConfigMap")
        if d["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    assert [cm["metadata"]["name"] for cm in cms] == ["servecmp-dashboard-latency-overview"]
    assert json.loads(cms[0]["data"]["Latency Overview.json"])["title"] == "x"
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == groups and rule["metadata"]["labels"]["release"] == "kps"
    # disabling monitoring drops the CRs (a cluster without the Prometheus Operator)
    docs = render(inputs, chart=chart, extra=["--set", "global.monitoring.serviceMonitors=false"])
    assert not by_kind(docs, "ServiceMonitor") and not by_kind(docs, "PrometheusRule")


# ---- documentation --------------------------------------------------------------------------
def _leaf_paths(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict) and data:
        out = []
        for k, v in data.items():
            out += _leaf_paths(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [prefix]


@pytest.mark.parametrize("chart", [CHART, *SUBCHARTS.values()], ids=lambda p: p.name)
def test_every_value_has_a_param_comment(chart: Path) -> None:
    text = (chart / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*## @param (\S+)", text, re.M))
    leaves = set(_leaf_paths(yaml.safe_load(text)))
    # a map-valued parameter (e.g. nodeSelector) is documented once, at its own path
    missing = sorted(
        leaf
        for leaf in leaves
        if not any(leaf == d or leaf.startswith(d + ".") for d in documented)
    )
    stale = sorted(
        d for d in documented if not any(leaf == d or leaf.startswith(d + ".") for leaf in leaves)
    )
    assert not missing, f"{chart.name}/values.yaml: values without a '## @param' line: {missing}"
    assert not stale, (
        f"{chart.name}/values.yaml: '## @param' lines for values that do not exist: {stale}"
    )


def test_helpers_are_commented() -> None:
    for tpl in [
        CHART / "templates" / "_helpers.tpl",
        LIBCHART / "templates" / "_helpers.tpl",
        *(c / "templates" / "_helpers.tpl" for c in SUBCHARTS.values()),
    ]:
        text = tpl.read_text()
        for m in re.finditer(r'\{\{-? define "([^"]+)"', text):
            before = text[: m.start()].rstrip()
            assert before.endswith("*/}}"), f"{tpl}: helper {m.group(1)} has no comment above it"


def test_readme_documents_the_set_file_keys() -> None:
    from servecmp.cluster.helmvalues import set_file_keys

    readme = (CHART / "README.md").read_text()
    for key in set_file_keys():
        assert key in readme
    for sub in SUBCHARTS.values():  # and each key exists in its subchart's values
        vals = yaml.safe_load((sub / "values.yaml").read_text())
        for key in set_file_keys():
            server, *path = key.split(".")
            if server == sub.name:
                node = vals
                for part in path:
                    node = node[part]


def test_grpc_only_kserve_scenario(rendered) -> None:
    _, docs = rendered["kserve-only"]
    inference = named(docs, "Service", "servecmp-kserve")
    assert [(p["name"], p["appProtocol"]) for p in inference["spec"]["ports"]] == [
        (port_name("kserve", "grpc"), "grpc")
    ]
    assert named(docs, "Service", "servecmp-kserve-grpc")["spec"]["clusterIP"] == "None"
    # metrics stay scrapeable on the REST port's number even when REST inference is not exposed
    assert [
        p["port"] for p in named(docs, "Service", "servecmp-kserve-metrics")["spec"]["ports"]
    ] == [8080]
    assert not by_kind(docs, "Pod")  # the helm test posts REST: nothing to test without it
    spread = _deployment(docs, "kserve")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == "kserve"


def test_every_template_renders_in_some_scenario(tmp_path: Path) -> None:
    """No dead template: each file under templates/ of the umbrella and of every server chart
    renders at least one object in some ci/ scenario (and so meets the checks above)."""
    from helm_util import template_args

    sources: set[str] = set()
    for scenario, over in SCENARIOS.items():
        inputs = make_inputs(tmp_path / scenario, **over)
        out = helm(*template_args(inputs, [CI_DIR / f"{scenario}-values.yaml"])).stdout
        sources |= set(re.findall(r"^# Source: (\S+)$", out, re.M))
    expected = {
        f"servecmp/templates/{p.relative_to(CHART / 'templates')}"
        for p in (CHART / "templates").rglob("*.yaml")
    }
    for name, sub in SUBCHARTS.items():
        expected |= {
            f"servecmp/charts/{name}/templates/{p.name}" for p in (sub / "templates").glob("*.yaml")
        }
    assert expected - sources == set(), f"templates that never render: {sorted(expected - sources)}"
