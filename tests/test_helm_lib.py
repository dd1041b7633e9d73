"""The library chart (helm/servecmp/charts/servecmp-lib) and the thin server subcharts: shared
helpers live once, and every port, path, probe, Service and ServiceMonitor follows the generated
`wire` values (servecmp/servers/base.py Wire.values()); no chart keeps its own copy."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_util import (
    CHART,
    LIBCHART,
    SUBCHARTS,
    by_kind,
    make_inputs,
    named,
    port_name,
    render,
    require_helm,
    wire_values,
)

pytestmark = pytest.mark.helm

# Helpers every server chart had its own copy of before the library chart.
SHARED = ("name", "fullname", "selectorLabels", "labels", "image", "resources",
          "containerSecurityContext", "threads", "protocolEnabled")


def test_library_chart_is_a_file_dependency_of_every_server_chart() -> None:
    lib = yaml.safe_load((LIBCHART / "Chart.yaml").read_text())
    assert lib["type"] == "library"
    for name, chart in SUBCHARTS.items():
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        (dep,) = [d for d in meta.get("dependencies", []) if d["name"] == "servecmp-lib"]
        assert dep["repository"] == "file://../servecmp-lib" and dep["version"] == lib["version"], name
        # helm loads dependencies from the chart's own charts/ folder: a link to the one library
        assert (chart / "charts" / "servecmp-lib").resolve() == LIBCHART.resolve(), name


def test_server_charts_keep_no_copy_of_the_shared_helpers() -> None:
    for name, chart in SUBCHARTS.items():
        text = (chart / "templates" / "_helpers.tpl").read_text()
        defined = re.findall(r'define "([^"]+)"', text)
        copies = [d for d in defined if d.split(".", 1)[1] in SHARED]
        assert not copies, f"{name}: shared helpers redefined: {copies}"
        code = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("{{/*", "*/}}"))]
        assert len(code) < 45, f"{name}/_helpers.tpl has {len(code)} lines: shared code belongs in servecmp-lib"
    lib = (LIBCHART / "templates" / "_helpers.tpl").read_text()
    for helper in SHARED:
        assert f'define "servecmp-lib.{helper}"' in lib


# Wire facts as the charts used to hard-code them: none may appear in a server chart any more.
WIRE_LITERALS = re.compile(
    r"\b(8080|8081|8082|7070|7071|8500|8501)\b|/monitoring/prometheus|/metrics\b|/v[12]/models|/ping\b"
    r"|/config/|/mnt/models|/model-store|^\s*(modelRoot|modelStore|mountDir|metricsPath):"
)


@pytest.mark.parametrize("server", sorted(SUBCHARTS))
def test_no_chart_keeps_a_copy_of_ports_or_paths(server: str) -> None:
    chart = SUBCHARTS[server]
    files = [chart / "values.yaml", chart / "values.schema.json", *sorted((chart / "templates").glob("*"))]
    for f in files:
        # comments may name a fact (they explain); template and value code may not
        text = re.sub(r"\{\{/\*.*?\*/\}\}", lambda m: "\n" * m.group(0).count("\n"), f.read_text(), flags=re.S)
        for i, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            m = WIRE_LITERALS.search(line)
            assert not m, f"{f.relative_to(CHART)}:{i}: {m.group(0)!r} is a wire fact (comes from <chart>.wire)"
    vals = yaml.safe_load((chart / "values.yaml").read_text())
    assert vals["wire"] == {} and "ports" not in vals
    assert re.search(r"## @param wire Generated; do not edit", (chart / "values.yaml").read_text())


def test_every_server_schema_requires_and_types_the_same_wire() -> None:
    import jsonschema

    schemas = {s: json.loads((c / "values.schema.json").read_text()) for s, c in SUBCHARTS.items()}
    wires = {s: d["properties"]["wire"] for s, d in schemas.items()}
    assert len({json.dumps(w, sort_keys=True) for w in wires.values()}) == 1, "wire schemas differ"
    for server, schema in schemas.items():
        assert "wire" in schema["required"]
        wire_schema = {**wires[server], "definitions": schema["definitions"]}
        jsonschema.validate(wire_values(server), wire_schema)  # the generated block fits
        bad = wire_values(server)
        next(iter(bad["ports"].values()))["role"] = "inference"
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, wire_schema)


# ---- rendering follows the wire ---------------------------------------------------------------------
def _moved_wire() -> dict[str, Any]:
    """Every server's wire with other port numbers, metrics path, ready path and mount paths."""
    out = {}
    for server in SUBCHARTS:
        w = wire_values(server)
        for p in w["ports"].values():
            p["port"] += 1000
        w["metricsPath"] = f"/moved/{server}/metrics"
        w["readyPath"] = "/moved/ready/{model}"
        w["paths"] = {k: f"/moved{v}" for k, v in w["paths"].items()}
        out[server] = {"wire": w}
    return out


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    require_helm()
    tmp = tmp_path_factory.mktemp("moved")
    inputs = make_inputs(tmp)
    wires = _moved_wire()
    moved_file = tmp / "moved-wire.yaml"
    moved_file.write_text(yaml.safe_dump(wires))
    return wires, render(inputs, [moved_file])


@pytest.mark.parametrize("server", sorted(SUBCHARTS))
def test_ports_probes_mounts_and_scrape_follow_the_wire(moved, server: str) -> None:
    wires, docs = moved
    w = wires[server]["wire"]
    dep = named(docs, "Deployment", f"servecmp-{server}")
    spec = dep["spec"]["template"]["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == w["service"]]
    declared = {p["name"]: p["containerPort"] for p in c["ports"]}
    numbers = {p["port"] for p in w["ports"].values()}
    assert sorted(declared.values()) == sorted(numbers)  # each number once
    assert c["startupProbe"]["httpGet"]["path"] == "/moved/ready/resnet"
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {w["paths"]["config"], w["paths"]["models"]} <= mounts
    for svc in by_kind(docs, "Service"):
        if svc["metadata"]["labels"]["servecmp.io/server"] != server:
            continue
        for p in svc["spec"]["ports"]:
            assert p["port"] == w["ports"][p["name"]]["port"]
            assert declared[p["targetPort"]] == p["port"]  # the container serves that number
            assert p["appProtocol"] == w["ports"][p["name"]]["appProtocol"]
    (sm,) = [s for s in by_kind(docs, "ServiceMonitor") if s["metadata"]["name"] == f"servecmp-{server}"]
    assert sm["spec"]["endpoints"][0]["path"] == f"/moved/{server}/metrics"
    assert sm["spec"]["endpoints"][0]["port"] == w["metricsPort"]
    script = named(docs, "Pod", "servecmp-test-inference")["spec"]["containers"][0]["args"][0]
    rest = next(p["port"] for p in w["ports"].values() if p["role"] == "rest")
    assert f"http://servecmp-{server}:{rest}/" in script


def test_metrics_on_the_rest_port_is_declared_once(moved) -> None:
    """TF Serving and KServe serve metrics on the REST port: one containerPort, and the metrics
    Service targets it by the REST port's name."""
    wires, docs = moved
    for server in ("tfserving", "kserve"):
        w = wires[server]["wire"]
        rest = port_name(server, "rest")
        assert w["ports"][w["metricsPort"]]["port"] == w["ports"][rest]["port"]
        svc = named(docs, "Service", f"servecmp-{server}-metrics")
        assert [(p["name"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(w["metricsPort"], rest)]


# ---- the kserve subchart -----------------------------------------------------------------------------
def test_kserve_runs_the_image_entrypoint_with_exactly_the_generated_flags(tmp_path: Path) -> None:
    require_helm()
    inputs = make_inputs(tmp_path)
    docs = render(inputs)
    c = named(docs, "Deployment", "servecmp-kserve")["spec"]["template"]["spec"]["containers"][0]
    from servecmp.servers.kserve.config import read_flags

    flags = read_flags(inputs.file("kserve", "flags.txt"))  # the generated file's argv lines
    assert "command" not in c and c["args"] == flags  # the image's ENTRYPOINT runs model_server.py
    w = wire_values("kserve")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    rest, grpc = ports[port_name("kserve", "rest")], ports[port_name("kserve", "grpc")]
    assert f"--http_port={rest}" in flags and f"--grpc_port={grpc}" in flags
    assert f"--model_dir={w['paths']['models']}/resnet" in flags
    cm = named(docs, "ConfigMap", "servecmp-kserve-config")
    assert cm["data"]["flags.txt"].strip() == inputs.file("kserve", "flags.txt").strip()
    init = named(docs, "Deployment", "servecmp-kserve")["spec"]["template"]["spec"]["initContainers"][0]
    assert "/artifacts/kserve/resnet/." in init["command"][-1]


def test_notes_list_every_enabled_server_with_its_wire_addresses(tmp_path: Path) -> None:
    """NOTES.txt (rendered only by install/upgrade) through `helm template --show-only` on a copy
    of the chart where it is an ordinary template."""
    import shutil

    from helm_util import helm, template_args

    chart = tmp_path / "servecmp"
    shutil.copytree(CHART, chart, symlinks=True)
    notes = (chart / "templates" / "NOTES.txt").read_text().splitlines()
    # as a YAML block scalar (helm parses every template's output as YAML)
    (chart / "templates" / "notes-copy.yaml").write_text("notes: |\n" + "".join(f"  {ln}\n" for ln in notes))
    inputs = make_inputs(tmp_path / "in")
    out = helm(*template_args(inputs, chart=chart), "--show-only", "templates/notes-copy.yaml").stdout
    out = yaml.safe_load(out)["notes"]
    for server in SUBCHARTS:
        w = wire_values(server)
        rest = next(p["port"] for p in w["ports"].values() if p["role"] == "rest")
        grpc = next(p["port"] for p in w["ports"].values() if p["role"] == "grpc")
        metrics = w["ports"][w["metricsPort"]]["port"]
        assert f"http://servecmp-{server}.servecmp:{rest}/" in out
        assert f"dns:///servecmp-{server}-grpc.servecmp:{grpc}" in out
        assert f"http://servecmp-{server}-metrics.servecmp:{metrics}{w['metricsPath']}" in out


# MERGE: parametrize over [a.chart for a in registry.servers() if a.chart] once the adapters land,
# so a registered server without every piece of its chart fails here.
@pytest.mark.parametrize("server", sorted(SUBCHARTS))
def test_every_server_chart_has_every_piece(server: str) -> None:
    chart = SUBCHARTS[server]
    umbrella = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (dep,) = [d for d in umbrella["dependencies"] if d["name"] == server]
    assert dep["repository"] == f"file://charts/{server}" and dep["condition"] == f"{server}.enabled"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(values[server]["enabled"], bool)
    assert values["tests"]["predictPaths"][server].startswith("/")  # the helm test posts there
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert server in schema["required"] and server in schema["properties"]
    sub = yaml.safe_load((chart / "values.yaml").read_text())
    assert sub["image"]["tag"] not in ("", "latest") and sub["wire"] == {}
    templates = {p.name for p in (chart / "templates").iterdir()}
    assert {"deployment.yaml", "services.yaml", "servicemonitor.yaml", "configmap.yaml"} <= templates
    helpers = (chart / "templates" / "_helpers.tpl").read_text()
    assert 'include "servecmp-lib.wire"' in helpers  # the one guard, with the paths it mounts
    for name in ("services.yaml", "servicemonitor.yaml"):
        assert "servecmp-lib." in (chart / "templates" / name).read_text()
    # built here from a Dockerfile (tagged by content) or pulled: never both, never neither
    dockerfile = CHART.parents[1] / "deploy" / "kind" / f"{server}.Dockerfile"
    assert dockerfile.is_file() == sub["image"]["repository"].startswith("servecmp/"), server
