"""Cluster mistakes caught without a cluster (issue 10): every rendered object of the chart and of
the in-cluster load Jobs is checked against

- the Prometheus Operator CRD schemas of the kube-prometheus-stack we pin (tests/crds/, strict:
  an unknown field is an error);
- the Pod Security Standard "restricted" profile (and the namespace enforces it);
- image pinning and pull policies of locally built images;
- the places each server writes, derived from the servers' own code (pytorch/serve v0.12.0), each
  of which must be a writable emptyDir under the read-only root filesystem.
Each check also runs against a deliberately broken object, so it can fail.
"""

from __future__ import annotations

import copy
import json
import posixpath
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helm_util import CI_DIR, ROOT, SCENARIOS, by_kind, make_inputs, pod_specs, render, require_helm

from servecmp.cluster import loadgen

CRDS = Path(__file__).parent / "crds"
CRD_FILES = {
    "ServiceMonitor": "servicemonitors.json",
    "PodMonitor": "podmonitors.json",
    "PrometheusRule": "prometheusrules.json",
}
EXP_TEXT = (ROOT / "loadtests" / "experiments" / "quick.yaml").read_text()


# ---- rendered objects -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    require_helm()
    out = {}
    for scenario, over in SCENARIOS.items():
        inputs = make_inputs(tmp_path_factory.mktemp(scenario), **over)
        out[scenario] = render(inputs, [CI_DIR / f"{scenario}-values.yaml"])
    return out


def _loadgen_docs() -> list[dict[str, Any]]:
    docs = []
    for engine in ("steps", "locust"):
        job = loadgen.LoadJob(
            run_id="kind-x",
            target="torchserve-grpc-bytes",
            engine=engine,
            address="servecmp-torchserve-grpc.servecmp.svc:7070",
            image="servecmp/loadgen:0123456789ab",
            experiment_text=EXP_TEXT,
        )
        docs += loadgen.manifests(job)
    return docs


# ---- CRD schemas -------------------------------------------------------------------------------------
def strict_schema(node: Any) -> Any:
    """OpenAPI v3 (Kubernetes structural schema) -> JSON Schema that refuses unknown fields."""
    if isinstance(node, list):
        return [strict_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: strict_schema(v)
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k != "nullable"
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("format") in ("int32", "int64"):
        out.pop("format")
    if (
        node.get("type") == "object"
        and "properties" in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        out["additionalProperties"] = False
    return out


def _validator(kind: str) -> jsonschema.Draft7Validator:
    data = json.loads((CRDS / CRD_FILES[kind]).read_text())
    schema = strict_schema(data["openAPIV3Schema"])
    schema["properties"]["metadata"] = {
        "type": "object"
    }  # metadata is the API server's, not the CRD's
    return jsonschema.Draft7Validator(schema)


def crd_errors(doc: dict[str, Any]) -> list[str]:
    data = json.loads((CRDS / CRD_FILES[doc["kind"]]).read_text())
    group, version = doc["apiVersion"].split("/")
    if (group, version) != (data["group"], data["version"]):
        return [f"apiVersion {doc['apiVersion']}: the CRD serves {data['group']}/{data['version']}"]
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(doc["kind"]).iter_errors(doc)
    ]


def test_vendored_crds_are_the_pinned_operator_version() -> None:
    from helm_util import KIND_DIR, load_env_file

    kps = load_env_file(KIND_DIR / "versions.env")["KPS_CHART_VERSION"]
    for name in CRD_FILES.values():
        data = json.loads((CRDS / name).read_text())
        assert (
            f"kube-prometheus-stack-{kps}:" in data["source"]
            and data["operator_version"] == "0.79.2"
        )


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_monitoring_objects_validate_against_the_crds(rendered, scenario: str) -> None:
    docs = [d for d in rendered[scenario] if d["kind"] in CRD_FILES]
    assert docs or scenario == "never"
    for doc in docs:
        assert crd_errors(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"
    assert {d["kind"] for d in rendered["default"]} >= set(CRD_FILES)


def test_crd_check_refuses_unknown_and_mistyped_fields(rendered) -> None:
    (sm, *_) = by_kind(rendered["default"], "ServiceMonitor")
    bad = copy.deepcopy(sm)
    bad["spec"]["endpoints"][0]["scrapeInterval"] = "5s"  # the field is `interval`
    assert any("scrapeInterval" in e for e in crd_errors(bad))
    bad = copy.deepcopy(sm)
    bad["spec"]["endpoints"][0]["interval"] = "5 seconds"  # not a Prometheus duration
    assert crd_errors(bad)
    (pm,) = by_kind(rendered["default"], "PodMonitor")
    bad = copy.deepcopy(pm)
    bad["spec"]["podMetricsEndpoints"][0]["targetPort"] = "metrics"  # removed; `port` is the field
    bad["spec"]["selector"]["matchLabel"] = {}
    assert len(crd_errors(bad)) >= 1
    (rule,) = by_kind(rendered["default"], "PrometheusRule")
    bad = copy.deepcopy(rule)
    bad["spec"]["groups"][0]["rules"][0]["expression"] = "x"
    assert crd_errors(bad)


# ---- Pod Security Standard "restricted" (Kubernetes 1.32 pod-security admission) ------------------
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def pss_restricted_violations(spec: dict[str, Any]) -> list[str]:
    """The "restricted" profile's checks (https://kubernetes.io/docs/concepts/security/pod-security-standards/)."""
    out = []
    psc = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(f"{key}")
    for v in spec.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"volume {v['name']}: {sorted(kinds - RESTRICTED_VOLUMES)}")
    containers = (spec.get("initContainers") or []) + spec["containers"]
    for c in containers:
        sc = c.get("securityContext") or {}
        n = c["name"]
        if sc.get("privileged"):
            out.append(f"{n}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{n}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{n}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{n}: adds capabilities {caps.get('add')}")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{n}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{n}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{n}: seccompProfile must be RuntimeDefault or Localhost")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append(f"{n}: hostPort {p['hostPort']}")
    return out


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_pod_template_meets_pss_restricted(rendered, scenario: str) -> None:
    docs = rendered[scenario] + _loadgen_docs()
    specs = pod_specs(docs)
    assert len(specs) >= 3
    for name, spec in specs:
        problems = pss_restricted_violations(spec)
        if scenario == "torchserve-only" and name == "servecmp-torchserve":
            # the hostPath artifacts scenario is the one documented exception (SERVECMP_POD_SECURITY)
            assert problems == ["volume model-store: ['hostPath']"], problems
            continue
        assert problems == [], (scenario, name)


def test_pss_check_can_fail() -> None:
    spec = pod_specs(_loadgen_docs())[0][1]
    bad = copy.deepcopy(spec)
    bad["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    del bad["securityContext"]["seccompProfile"]
    bad["volumes"].append({"name": "h", "hostPath": {"path": "/"}})
    got = pss_restricted_violations(bad)
    assert any("allowPrivilegeEscalation" in g for g in got) and any("seccomp" in g for g in got)
    assert any("hostPath" in g for g in got)


# ---- images ------------------------------------------------------------------------------------------
LOCAL_REPOS = ("servecmp/",)  # built by scripts/kind-*.sh and `kind load`-ed, never pulled


def image_problems(docs: list[dict[str, Any]]) -> list[str]:
    out = []
    for name, spec in pod_specs(docs):
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            image, last = c["image"], c["image"].rsplit("/", 1)[-1]
            if not (":" in last or "@sha256:" in image) or image.endswith(":latest"):
                out.append(f"{name}/{c['name']}: {image} is not pinned")
            if image.startswith(LOCAL_REPOS) and c.get("imagePullPolicy") not in (
                "IfNotPresent",
                "Never",
            ):
                out.append(
                    f"{name}/{c['name']}: locally built {image} with pull policy {c.get('imagePullPolicy')}"
                )
    return out


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_images_pinned_and_local_images_never_pulled(rendered, scenario: str) -> None:
    docs = rendered[scenario] + _loadgen_docs()
    assert image_problems(docs) == []
    local = [
        c["image"]
        for _, s in pod_specs(docs)
        for c in (s.get("initContainers") or []) + s["containers"]
        if c["image"].startswith(LOCAL_REPOS)
    ]
    assert any(i.startswith("servecmp/loadgen:") for i in local)


def test_image_check_can_fail(rendered) -> None:
    docs = copy.deepcopy(rendered["default"])
    for _, spec in pod_specs(docs):
        for c in spec["containers"]:
            if c["image"].startswith("servecmp/torchserve"):
                c["imagePullPolicy"] = "Always"
            if c["image"].startswith("tensorflow/serving"):
                c["image"] = "tensorflow/serving:latest"
    got = image_problems(docs)
    assert any("pull policy Always" in g for g in got) and any(
        ":latest is not pinned" in g for g in got
    )


# ---- where each server writes --------------------------------------------------------------------------
def _env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env") or [] if "value" in e}


def _gettempdir(env: dict[str, str]) -> str:
    # Python's tempfile.gettempdir(): TMPDIR, TEMP, TMP, then /tmp
    return next((env[k] for k in ("TMPDIR", "TEMP", "TMP") if env.get(k)), "/tmp")


def server_write_paths(server: str, c: dict[str, Any]) -> dict[str, str]:
    """Directories the server writes to at run time, from its own code and this container's env."""
    env = _env(c)
    cwd = c.get("workingDir") or ("/home/model-server" if server == "torchserve" else "/")
    if server == "tfserving":
        return {"tmp (TF, $TMPDIR)": _gettempdir(env)}
    jvm_tmp = (
        env.get("TEMP") or "/tmp"
    )  # ts/model_server.py: TEMP -> -Djava.io.tmpdir; JVM default /tmp
    logs = posixpath.join(cwd, env.get("LOG_LOCATION", "logs"))
    paths = {
        # ts/model_server.py: pid_file = os.path.join(tempfile.gettempdir(), ".model_server.pid")
        "pid file": _gettempdir(env),
        "JVM tmp": jvm_tmp,
        # frontend/archive ZipUtils.createTempDir: <java.io.tmpdir>/models/<id> (the .mar unpacked)
        ".mar extraction": posixpath.join(jvm_tmp, "models"),
        # frontend/server Connector: <java.io.tmpdir>/.ts.sock.<port> (frontend <-> worker sockets)
        "worker sockets": jvm_tmp,
        # ConfigManager: LOG_LOCATION / METRICS_LOCATION, default "logs" under the cwd (log4j2.xml)
        "logs": logs,
        "metrics logs": posixpath.join(cwd, env.get("METRICS_LOCATION", "logs")),
    }
    if "--ncs" not in (c.get("args") or []) + (c.get("command") or []):
        paths["config snapshots"] = posixpath.join(logs, "config")
    return paths


def writable_problems(spec: dict[str, Any], container: str) -> list[str]:
    c = next(x for x in spec["containers"] if x["name"] == container)
    if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        return [f"{container}: root filesystem is not read-only"]
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    mounts = [(m["mountPath"].rstrip("/"), m) for m in c.get("volumeMounts") or []]
    out = []
    for what, path in server_write_paths(container, c).items():
        hit = max(
            (m for m in mounts if path == m[0] or path.startswith(m[0] + "/")),
            key=lambda m: len(m[0]),
            default=None,
        )
        if hit is None:
            out.append(f"{container}: {what} at {path} is on the read-only root filesystem")
        elif hit[1].get("readOnly") or "emptyDir" not in vols[hit[1]["name"]]:
            out.append(
                f"{container}: {what} at {path} is on {hit[1]['name']}, not a writable emptyDir"
            )
    return out


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_server_write_paths_are_writable_emptydirs(rendered, scenario: str) -> None:
    for server in ("torchserve", "tfserving"):
        deps = [
            d
            for d in by_kind(rendered[scenario], "Deployment")
            if d["metadata"]["name"] == f"servecmp-{server}"
        ]
        for d in deps:
            spec = d["spec"]["template"]["spec"]
            assert writable_problems(spec, server) == [], (scenario, server)


def test_write_path_check_can_fail(rendered) -> None:
    dep = next(
        d
        for d in by_kind(rendered["default"], "Deployment")
        if d["metadata"]["name"] == "servecmp-torchserve"
    )
    spec = copy.deepcopy(dep["spec"]["template"]["spec"])
    c = next(x for x in spec["containers"] if x["name"] == "torchserve")
    c["volumeMounts"] = [
        m for m in c["volumeMounts"] if m["mountPath"] != "/home/model-server/logs"
    ]
    assert any(
        "logs at /home/model-server/logs" in p for p in writable_problems(spec, "torchserve")
    )
    c["env"] = [e for e in c["env"] if e["name"] not in ("TEMP", "TMPDIR")]
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["mountPath"] != "/tmp"]
    assert any("pid file at /tmp" in p for p in writable_problems(spec, "torchserve"))


# ---- rollouts on a node sized for the experiment -----------------------------------------------------
def test_server_rollouts_replace_pods_instead_of_surging(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """A changed experiment or tune candidate rolls the server pods on a node that holds exactly
    the experiment's requests: a RollingUpdate's surge pod (the default: maxSurge 25% rounds up
    to 1, maxUnavailable 0) would stay Pending and the rollout would never finish."""
    for scenario, docs in rendered.items():
        deployments = by_kind(docs, "Deployment")
        assert deployments, scenario
        for d in deployments:
            assert d["spec"].get("strategy") == {"type": "Recreate"}, (
                scenario,
                d["metadata"]["name"],
            )
