"""Minimal ServerAdapters for tests of the code that PRESENTS servers (report, console,
rules, dashboards, scrape config), and a fixture that registers them.

They carry only what those modules read: name, label, baseline, protocols, the wire facts and
the real metrics objects (servecmp/servers/<name>/metrics.py). They render no config and launch nothing
(``render`` raises): they can never run a measurement. Wire facts, with their sources:
- TorchServe 0.12.0: inference 8080, management 8081, metrics 8082 (``/metrics``), gRPC 7070 and
  management 7071 (pytorch/serve v0.12.0 ``docs/configuration.md`` lines 78-107, and the defaults
  in ``frontend/server/src/main/java/org/pytorch/serve/util/ConfigManager.java``).
- TF Serving 2.20.0: gRPC 8500, REST 8501 (tensorflow/serving 2.20.0
  ``tensorflow_serving/model_servers/main.cc`` "--port (default 8500)";
  ``tensorflow_serving/tools/docker/Dockerfile`` entrypoint ``--port=8500 --rest_api_port=8501``);
  metrics on the REST port at the path monitoring.config sets (``/monitoring/prometheus/metrics``).
- "kserve": a third server for N-server presentation tests only (Open Inference Protocol ports
  8080/8081 as KServe's model server defaults); its real adapter is servecmp/servers/kserve/.

    def test_x(test_registry): ...            # torchserve, tfserving + the two baselines
    def test_y(test_registry_with_kserve): ...  # the same + kserve
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import pytest

from servecmp.servers import registry
from servecmp.servers.base import (
    Port,
    ProtocolSpec,
    RenderedConfig,
    ServerAdapter,
    ServerMetrics,
    Wire,
)
from servecmp.servers.tfserving.metrics import METRICS as TFS_METRICS
from servecmp.servers.torchserve.metrics import METRICS as TS_METRICS

_CLIENTS = "servecmp.load.clients"


def _spec(protocol: str, encodings: tuple[str, ...], client: str) -> ProtocolSpec:
    """A ProtocolSpec with the shared enums (Target.name reads ``.value`` of both)."""
    from servecmp.experiment import Encoding, Protocol

    known = Encoding._value2member_map_
    encs = tuple(Encoding(e) if e in known else e for e in encodings)
    return ProtocolSpec(Protocol(protocol), encs, client)  # type: ignore[arg-type]


class _TestAdapter(ServerAdapter):
    def render(self, exp: Any, placement: Any) -> RenderedConfig:
        raise NotImplementedError(
            f"{self.name}: test adapter (presentation tests only): renders nothing"
        )


class TorchServeForTests(_TestAdapter):
    name: ClassVar[str] = "torchserve"
    label: ClassVar[str] = "TorchServe"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "pytorch"
    protocols = (
        _spec("rest", ("json", "raw"), f"{_CLIENTS}.torchserve_rest:TorchServeRest"),
        _spec("grpc", ("bytes",), f"{_CLIENTS}.torchserve_grpc:TorchServeGrpc"),
    )
    baseline = "pytorch-inprocess"
    chart = "torchserve"
    wire = Wire(
        service="torchserve",
        ports=(
            Port("http", 8080, "rest"),
            Port("management", 8081, "management"),
            Port("metrics", 8082, "metrics"),
            Port("grpc", 7070, "grpc", "grpc"),
            Port("grpc-mgmt", 7071, "grpc-management", "grpc"),
        ),
        metrics_path="/metrics",
        ready_path="/ping",
    )
    metrics: ClassVar[ServerMetrics | None] = TS_METRICS


class TFServingForTests(_TestAdapter):
    name: ClassVar[str] = "tfserving"
    label: ClassVar[str] = "TF Serving"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "tensorflow"
    protocols = (
        _spec("rest", ("json", "b64"), f"{_CLIENTS}.tfserving_rest:TFServingRest"),
        _spec("grpc", ("tensorproto",), f"{_CLIENTS}.tfserving_grpc:TFServingGrpc"),
    )
    baseline = "tensorflow-inprocess"
    chart = "tfserving"
    # metrics on the REST port: one Port with both roles is impossible, so the REST port is
    # named twice (the chart's wire values do the same: metricsPort names the REST port)
    wire = Wire(
        service="tfserving",
        ports=(
            Port("grpc", 8500, "grpc", "grpc"),
            Port("http", 8501, "rest"),
            Port("metrics", 8501, "metrics"),
        ),
        metrics_path="/monitoring/prometheus/metrics",
        ready_path="/v1/models/{model}",
    )
    metrics: ClassVar[ServerMetrics | None] = TFS_METRICS


class KServeForTests(_TestAdapter):
    name: ClassVar[str] = "kserve"
    label: ClassVar[str] = "KServe"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "pytorch"
    protocols = (
        _spec("rest", ("json",), f"{_CLIENTS}.oip_rest:OipRest"),
        _spec("grpc", ("oip",), f"{_CLIENTS}.oip_grpc:OipGrpc"),
    )
    baseline = "pytorch-inprocess"
    wire = Wire(
        service="kserve",
        ports=(
            Port("http", 8080, "rest"),
            Port("grpc", 8081, "grpc", "grpc"),
            Port("metrics", 8080, "metrics"),
        ),
        metrics_path="/metrics",
        ready_path="/v1/models/{model}",
    )
    metrics: ClassVar[ServerMetrics | None] = ServerMetrics(
        names={"requests": "request_predict_seconds"},
        requests_rate="sum by (namespace, model_name) (rate(request_predict_seconds_count{{sel}}[1m]))",
        latency_mean_s=None,
    )


class _Baseline(_TestAdapter):
    protocols = (_spec("inprocess", ("ndarray",), f"{_CLIENTS}.inprocess:InProcess"),)


class PyTorchForTests(_Baseline):
    name: ClassVar[str] = "pytorch"
    label: ClassVar[str] = "PyTorch in-process"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "pytorch"


class TensorFlowForTests(_Baseline):
    name: ClassVar[str] = "tensorflow"
    label: ClassVar[str] = "TensorFlow in-process"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "tensorflow"


TORCHSERVE = TorchServeForTests()
TFSERVING = TFServingForTests()
KSERVE = KServeForTests()
PYTORCH = PyTorchForTests()
TENSORFLOW = TensorFlowForTests()

MODULES = {
    "torchserve": f"{__name__}:TORCHSERVE",
    "tfserving": f"{__name__}:TFSERVING",
    "pytorch": f"{__name__}:PYTORCH",
    "tensorflow": f"{__name__}:TENSORFLOW",
}
WITH_KSERVE = {
    "torchserve": MODULES["torchserve"],
    "tfserving": MODULES["tfserving"],
    "kserve": f"{__name__}:KSERVE",
    "pytorch": MODULES["pytorch"],
    "tensorflow": MODULES["tensorflow"],
}


def use(monkeypatch: pytest.MonkeyPatch, modules: dict[str, str]) -> None:
    """Point the registry at ``modules`` for one test (its cache cleared before and after)."""
    registry.get.cache_clear()
    monkeypatch.setattr(registry, "MODULES", dict(modules))


@contextmanager
def registry_of(modules: dict[str, str]) -> Iterator[None]:
    """``use`` outside a test, for a module-scoped fixture (a report built once, read by many)."""
    with pytest.MonkeyPatch.context() as mp:
        use(mp, modules)
        try:
            yield
        finally:
            registry.get.cache_clear()


@pytest.fixture
def test_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use(monkeypatch, MODULES)
    yield
    registry.get.cache_clear()


@pytest.fixture
def test_registry_with_kserve(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use(monkeypatch, WITH_KSERVE)
    yield
    registry.get.cache_clear()
