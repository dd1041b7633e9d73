"""The ServerAdapter seam: every registered adapter carries every piece, and a new server is one
adapter (+ chart + test file) with no other code change.

A check here fails when a registered adapter lacks a piece: protocols whose client class exists
and speaks the protocol, config rendering for both placements, a chart, wire ports with REST and
metrics roles, the fairness rows of the README table, a launcher, a baseline of the same framework.
"""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servecmp.configgen import Placement, render_all
from servecmp.experiment import Encoding, ExperimentError, Protocol, parse_experiment
from servecmp.servers import registry
from servecmp.servers.base import (
    FairnessRow,
    Port,
    ProtocolSpec,
    RenderedConfig,
    ServerAdapter,
    Wire,
)

ROOT = Path(__file__).resolve().parents[1]
CHARTS = ROOT / "helm" / "servecmp" / "charts"
# The README fairness table's rows every real server must map to its own knobs.
FAIRNESS_SETTINGS = (
    "tuning.workers",
    "tuning.intra_op_threads",
    "tuning.io_threads",
    "tuning.batching.enabled",
)

ADAPTERS = registry.adapters()
SERVERS = registry.servers()


def _exp(server: str = "torchserve", protocol: str = "rest", **over: object) -> Any:
    return parse_experiment(
        {
            "name": "t",
            "model": "tiny",
            "targets": [{"server": server, "protocol": protocol}],
            **over,
        }
    )


def _local(tmp: Path, adapters: tuple[ServerAdapter, ...] = SERVERS) -> Placement:
    return Placement.local(
        {
            a.name: {r: str(tmp / a.name / r) for r in (a.wire.paths if a.wire else {})}
            for a in adapters
        },
        adapters=adapters,
    )


# ---- completeness: every registered adapter --------------------------------------------------
def test_registry_lists_servers_then_baselines() -> None:
    assert registry.names()[:2] == ("torchserve", "tfserving")
    assert {a.name for a in SERVERS} == {"torchserve", "tfserving", "kserve", "triton", "rayserve"}
    assert [a.name for a in ADAPTERS if a.is_inprocess] == ["pytorch", "tensorflow"]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_adapter_has_protocols_with_a_client_per_protocol(adapter: ServerAdapter) -> None:
    from servecmp.load.clients.base import TargetClient

    assert adapter.label and adapter.framework in ("pytorch", "tensorflow")
    assert adapter.protocols, f"{adapter.name}: no protocols"
    assert len({s.protocol for s in adapter.protocols}) == len(adapter.protocols), (
        "one spec per protocol"
    )
    for spec in adapter.protocols:
        assert spec.encodings and all(isinstance(e, Encoding) for e in spec.encodings)
        cls = spec.client_class()  # importable, named "module:Class"
        assert issubclass(cls, TargetClient), spec.client
        assert not cls.serves or spec.protocol in cls.serves, (
            f"{spec.client} does not speak {spec.protocol}"
        )
        assert (spec.protocol is Protocol.inprocess) == adapter.is_inprocess


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_adapter_renders_for_both_placements(adapter: ServerAdapter, tmp_path: Path) -> None:
    exp = _exp()
    for placement in (Placement.kubernetes(), _local(tmp_path)):
        rendered = adapter.render(exp, placement)
        assert isinstance(rendered, RenderedConfig)
        if not adapter.is_inprocess:
            assert rendered.files and all(rendered.files.values()), f"{adapter.name}: empty config"
            surface = adapter.config_surface(rendered)
            assert surface.server == adapter.name and 0 < surface.knobs_changed <= surface.knobs_set


@pytest.mark.parametrize("adapter", SERVERS, ids=lambda a: a.name)
def test_server_has_chart_wire_fairness_launcher_and_baseline(adapter: ServerAdapter) -> None:
    from servecmp.run.server import LocalServer

    assert adapter.chart and (CHARTS / adapter.chart / "Chart.yaml").is_file(), (
        f"no chart for {adapter.name}"
    )
    wire = adapter.wire
    assert wire is not None
    roles = {p.role for p in wire.ports}
    assert {"rest", "metrics"} <= roles, f"{adapter.name}: wire ports lack rest/metrics ({roles})"
    assert all(len(p.name) <= 15 for p in wire.ports), (
        "Kubernetes port names are at most 15 characters"
    )
    assert len({p.name for p in wire.ports}) == len(wire.ports)
    for port in wire.ports:  # one number = one socket: two ports may share it only as one socket
        same = [p for p in wire.ports if p.number == port.number]
        assert len({p.app_protocol for p in same}) == 1, (
            f"{adapter.name}: port {port.number} speaks two protocols"
        )
    assert wire.metrics_path.startswith("/") and wire.ready_path.startswith("/")
    assert (
        "config" in wire.paths
        and "models" in wire.paths
        and all(p.startswith("/") for p in wire.paths.values())
    )
    values = wire.values()
    assert (
        values["metricsPort"] == wire.port("metrics").name
        and values["metricsPath"] == wire.metrics_path
    )
    settings = {row.setting for row in adapter.fairness}
    missing = [s for s in FAIRNESS_SETTINGS if s not in settings]
    assert not missing, f"{adapter.name}: no fairness row for {missing}"
    assert all(row.knob and row.rule for row in adapter.fairness)
    launcher = adapter.launcher()
    assert issubclass(launcher, LocalServer) and launcher.name == adapter.name
    assert adapter.chart_files, f"{adapter.name}: no generated file reaches its chart"
    rendered = adapter.render(_exp(), Placement.kubernetes())
    assert set(adapter.chart_files.values()) <= set(rendered.files)
    # the baseline is an in-process target of the same framework
    base = parse_experiment(
        {
            "name": "b",
            "targets": [
                {"server": adapter.baseline.removesuffix("-inprocess"), "protocol": "inprocess"}
            ],
        }
    ).targets[0]
    assert base.name == adapter.baseline
    assert registry.get(base.server).framework == adapter.framework


@pytest.mark.parametrize("adapter", SERVERS, ids=lambda a: a.name)
def test_server_declares_its_metrics(adapter: ServerAdapter) -> None:
    assert adapter.metrics is not None, f"{adapter.name}: no ServerMetrics"
    assert adapter.metrics.names and adapter.metrics.requests_rate


@pytest.mark.parametrize("adapter", SERVERS, ids=lambda a: a.name)
def test_server_has_its_dashboard_row_and_umbrella_entry(adapter: ServerAdapter) -> None:
    """The committed comparison dashboard has the server's row (regenerate: servecmp gen
    dashboards), and the umbrella chart deploys its subchart behind ``<chart>.enabled``."""
    import json

    import yaml

    dash = json.loads((ROOT / "helm/servecmp/dashboards/servecmp-comparison.json").read_text())
    rows = [p["title"] for p in dash["panels"] if p.get("type") == "row"]
    assert f"{adapter.label} ({adapter.name})" in rows, (
        f"{adapter.name}: no dashboard row in {rows}"
    )
    umbrella = yaml.safe_load((ROOT / "helm/servecmp/Chart.yaml").read_text())
    deps = {d["name"]: d for d in umbrella["dependencies"]}
    assert adapter.chart in deps and deps[adapter.chart]["condition"] == f"{adapter.chart}.enabled"


@pytest.mark.parametrize("adapter", registry.adapters(), ids=lambda a: a.name)
def test_every_adapter_declares_a_valid_search_space(adapter: ServerAdapter) -> None:
    """servecmp tune searches what the adapter declares, next to its fairness mapping."""
    from servecmp.tune.space import validate_space

    assert adapter.search_space is not None, f"{adapter.name}: no search_space"
    validate_space(adapter.name, adapter.search_space)
    assert all(k.source for k in adapter.search_space.knobs)


@pytest.mark.parametrize(
    "module", sorted({registry.MODULES[n].partition(":")[0] for n in registry.names()})
)
def test_adapter_import_stays_cheap(module: str) -> None:
    """Importing an adapter loads no framework and no gRPC stubs (the registry imports them all)."""
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "heavy = [m for m in ('torch', 'tensorflow', 'grpc') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# ---- the experiment takes its servers and encodings from the registry -------------------------
def test_unknown_server_names_the_field_and_the_known_servers() -> None:
    with pytest.raises(ExperimentError) as err:
        _exp(server="nosuchserver")
    msg = str(err.value)
    assert "targets.0.server" in msg and "'nosuchserver' is unknown" in msg
    assert ", ".join(registry.names()) in msg


def test_encodings_come_from_the_adapters() -> None:
    with pytest.raises(
        ExperimentError,
        match=r"targets\.0: .*'tensorproto' is not valid for torchserve/rest; "
        r"allowed: json, raw",
    ):
        parse_experiment(
            {
                "name": "t",
                "targets": [
                    {"server": "torchserve", "protocol": "rest", "encoding": "tensorproto"}
                ],
            }
        )
    with pytest.raises(ExperimentError, match="cannot be reached over 'inprocess'"):
        _exp(server="tfserving", protocol="inprocess")
    exp = parse_experiment(
        {
            "name": "t",
            "targets": [
                {"server": "torchserve", "protocol": "rest", "encoding": "raw"},
                {"server": "tfserving", "protocol": "rest", "encoding": "b64"},
                {"server": "tfserving", "protocol": "grpc"},
            ],
        }
    )
    assert [t.name for t in exp.targets] == [
        "torchserve-rest-raw",
        "tfserving-rest-b64",
        "tfserving-grpc-tensorproto",
    ]
    assert [t.is_native_extra for t in exp.targets] == [True, True, False]


# ---- a fourth server: one adapter, no other code change ---------------------------------------
class FakeAdapter(ServerAdapter):
    """A server that exists only in this test: speaks TF Serving-compatible REST v1 (so it reuses
    that client) and renders one config file from the placement's ports."""

    name = "fake"
    label = "Fake Server"
    framework = "pytorch"
    protocols = (
        ProtocolSpec(
            Protocol.rest,
            (Encoding.json,),
            "servecmp.load.clients.tfserving_rest:TFServingRestClient",
        ),
    )
    baseline = "pytorch-inprocess"
    chart = "fake"
    wire = Wire(
        service="fake",
        ports=(Port("http", 8090, "rest"), Port("metrics", 8091, "metrics")),
        metrics_path="/metrics",
        ready_path="/v1/models/{model}",
        paths={"config": "/config/fake", "models": "/models/fake"},
    )
    fairness = tuple(FairnessRow(s, "fake knob", "= setting") for s in FAIRNESS_SETTINGS)
    chart_files = {"config.args": "args.txt"}

    def render(self, exp: Any, placement: Placement) -> RenderedConfig:
        return RenderedConfig(
            files={
                "args.txt": f"--http={placement.bind_host}:{placement.port(self.name, 'rest')}\n"
                f"--metrics={placement.port(self.name, 'metrics')}\n"
                f"--workers={exp.tuning.workers}\n"
            },
            env={"OMP_NUM_THREADS": str(exp.intra_op_threads)},
        )


@pytest.fixture
def fake_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerAdapter]:
    module = types.ModuleType("servecmp_test_fake_server")
    module.ADAPTER = FakeAdapter()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(registry.MODULES, "fake", module.__name__)
    registry.get.cache_clear()
    try:
        yield module.ADAPTER  # type: ignore[attr-defined]
    finally:
        monkeypatch.delitem(registry.MODULES, "fake")
        registry.get.cache_clear()


def test_a_fourth_server_is_one_adapter(fake_registered: ServerAdapter, tmp_path: Path) -> None:
    from servecmp.cluster.helmvalues import experiment_values, set_file_keys
    from servecmp.cluster.provenance import addresses
    from servecmp.configgen.surface import config_surface
    from servecmp.load.clients import make_client
    from servecmp.load.clients.tfserving_rest import TFServingRestClient
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.registry import get_model

    exp = parse_experiment(
        {
            "name": "t",
            "model": "tiny",
            "tuning": {"workers": 2},
            "targets": [
                {"server": "fake", "protocol": "rest"},
                {"server": "torchserve", "protocol": "rest"},
            ],
        }
    )
    assert exp.targets[0].name == "fake-rest-json"
    with pytest.raises(ExperimentError, match="allowed: json"):
        parse_experiment(
            {"name": "t", "targets": [{"server": "fake", "protocol": "rest", "encoding": "raw"}]}
        )

    k8s = render_all(exp, Placement.kubernetes())
    assert list(k8s.files) == [*(a.name for a in registry.servers() if a.name != "fake"), "fake"]
    assert k8s.files["fake"]["args.txt"] == "--http=0.0.0.0:8090\n--metrics=8091\n--workers=2\n"
    local = render_all(exp, _local(tmp_path, registry.servers()))
    http = local.placement.port("fake", "rest")
    assert f"--http=127.0.0.1:{http}\n" in local.files["fake"]["args.txt"] and http != 8090
    assert config_surface(k8s)["fake"].knobs_set == 4  # the generic count: 3 lines + 1 env

    values = experiment_values(exp, k8s)
    assert values["fake"]["enabled"] is True and values["tfserving"]["enabled"] is False
    assert values["fake"]["wire"]["ports"]["http"]["port"] == 8090
    assert set_file_keys()["fake.config.args"] == ("fake", "args.txt")
    assert dict(addresses(exp, "r", "ns"))["fake-rest-json"] == "r-fake.ns.svc:8090"
    from servecmp.cluster import loadgen  # the in-cluster Job sized by the client it reuses

    tfs_rest = parse_experiment(
        {"name": "x", "targets": [{"server": "tfserving", "protocol": "rest"}]}
    ).targets[0]
    assert loadgen.memory_mib_for(exp.targets[0]) == loadgen.memory_mib_for(tfs_rest)

    # the defaults a new adapter inherits
    assert fake_registered.local_paths(
        None, Path("/run/models/fake"), Path("/run/configs/fake")
    ) == {"config": "/run/configs/fake", "models": "/run/models/fake"}
    assert fake_registered.parse_runtime(["v1.2\n"]) == {"outputs": ["v1.2"]}
    assert (
        fake_registered.run_notes({"version": "1"}) == []
        and fake_registered.provenance_label({}) == "unknown"
    )

    payloads = PayloadSet.build(get_model("tiny"), 1, 1, 2, weights_seed=1)
    client = make_client(exp.targets[0], "127.0.0.1:9", payloads, 1.0)
    try:
        assert type(client) is TFServingRestClient
    finally:
        client.close()


def test_the_fake_server_is_gone_after_the_test() -> None:
    assert "fake" not in registry.names()
    with pytest.raises(ExperimentError, match="'fake' is unknown"):
        _exp(server="fake")


def test_friction_records_take_any_registered_server(
    fake_registered: ServerAdapter, tmp_path: Path
) -> None:
    """Friction of a new server is stored like any other (no closed list of server names)."""
    from servecmp.results.friction import append_friction, read_friction, record

    append_friction(tmp_path, record("fake", "cold_start_ready_s", 1.5))
    recs, _ = read_friction(tmp_path)
    assert [(r.server, r.value) for r in recs] == [("fake", 1.5)]


def test_tfserving_states_what_served_and_its_request_counter() -> None:
    """The orchestrator writes what adapters say: TF Serving's version label and run notes."""
    from servecmp.servers.tfserving.local import REQUEST_COUNT_NOTE

    tfs = registry.get("tfserving")
    prov = {
        "mode": "binary",
        "binary": "/usr/bin/tensorflow_model_server",
        "version": "2.19.0",
        "pinned": "2.20.0",
        "matches_pin": False,
    }
    notes = tfs.run_notes(prov)
    assert notes[0] == REQUEST_COUNT_NOTE and "NOT" not in notes[1] and "2.19.0" in notes[1]
    assert "NOT the pinned 2.20.0" in tfs.provenance_label(prov)
    assert tfs.run_notes({**prov, "version": "2.20.0", "matches_pin": True}) == [REQUEST_COUNT_NOTE]
    assert tfs.parse_runtime(["TensorFlow ModelServer: 2.20.0\nTensorFlow Library: 2.20.0\n"]) == {
        "tensorflow_model_server": "2.20.0",
        "tensorflow": "2.20.0",
    }
    assert registry.get("torchserve").run_notes(prov) == []  # TorchServe reports nothing extra
