"""The REAL TF Serving (``tensorflow_model_server`` on PATH, or the pinned tensorflow/serving
image under Docker) started by the local runtime from the generated configs. Skipped, with the
reason, where neither exists (our build machines); runs for real on users' machines and CI
runners that have one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from servecmp.experiment import EventLoad, Protocol, Target
from servecmp.load.clients import Outcome, call, make_client
from servecmp.load.payloads import PayloadSet
from servecmp.servers.tfserving.config import flag_lines
from servecmp.servers.tfserving.local import TFServingServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.tfserving,
    pytest.mark.skipif(
        TFServingServer.availability() is not None,
        reason=f"real TF Serving unavailable: {TFServingServer.availability()}",
    ),
]
MODEL = "tiny"


@pytest.fixture(scope="module")
def tfs(
    exported_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    from servecmp.run.standalone import start_server

    root = exported_model(MODEL)
    server = start_server("tfserving", MODEL, tmp_path_factory.mktemp("tfs"), root)
    server.artifacts_root = root
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def payloads() -> PayloadSet:
    from servecmp.models.registry import DEFAULT_SEED, get_model

    return PayloadSet.build(get_model(MODEL), 5, 2, 4, weights_seed=DEFAULT_SEED)


@pytest.mark.parametrize("protocol", [Protocol.rest, Protocol.grpc])
def test_clients_get_the_pytorch_logits_from_real_tf_serving(
    tfs: Any, payloads: PayloadSet, protocol: Protocol
) -> None:
    target = Target(server="tfserving", protocol=protocol)
    with make_client(target, tfs.address(protocol), payloads, 10.0) as client:
        assert all(call(client, i) is Outcome.ok for i in range(len(payloads)))
        np.testing.assert_allclose(client.send(0), payloads.expected[0], atol=1e-4)


def test_native_metrics_have_latency_histograms(tfs: Any, payloads: PayloadSet) -> None:
    text = requests.get(tfs.endpoints.metrics_url, timeout=10).text
    assert ":tensorflow:serving:request_count" in text
    assert ":tensorflow:serving:request_latency_bucket" in text


def test_new_version_directory_is_served(tfs: Any, payloads: PayloadSet) -> None:
    from servecmp.models.export import artifacts, export_model, seed_for_version
    from servecmp.models.reference import expected_logits
    from servecmp.run.friction import copy_version

    export_model(MODEL, tfs.artifacts_root, seed=seed_for_version(1234, 2), version=2)
    base = Path(tfs.configs.placement.path("tfserving", "models")) / MODEL
    copy_version(artifacts(MODEL, tfs.artifacts_root, 2).savedmodel, base, 2)
    v2 = expected_logits(MODEL, payloads.inputs[0], seed_for_version(1234, 2))
    target = Target(server="tfserving", protocol="rest")
    deadline = time.monotonic() + 60
    with make_client(target, tfs.address(Protocol.rest), payloads, 10.0) as client:
        while time.monotonic() < deadline:
            if np.allclose(client.send(0), v2, atol=1e-4):
                return
            time.sleep(0.5)
    pytest.fail("TF Serving never served version 2 within 60 s")


def test_metric_labels_the_recording_rules_depend_on(tfs: Any, payloads: PayloadSet) -> None:
    """servables/tensorflow/util.cc (2.20.0): request_count{model_name,status},
    request_latency{model_name,API,entrypoint}, runtime_latency{model_name,API,runtime}."""
    from prometheus_client.parser import text_string_to_metric_families

    from servecmp.servers.tfserving import metrics as tfs_m

    for protocol in (Protocol.rest, Protocol.grpc):
        with make_client(
            Target(server="tfserving", protocol=protocol), tfs.address(protocol), payloads, 10.0
        ) as client:
            client.send(0)  # an answered predict (v1 or v2: an earlier test publishes v2)
    fams = {
        f.name: f
        for f in text_string_to_metric_families(
            requests.get(tfs.endpoints.metrics_url, timeout=10).text
        )
    }
    assert {"model_name", "status"} <= set(fams[tfs_m.REQUEST_COUNT].samples[0].labels)
    lat = {
        (s.labels["API"], s.labels["entrypoint"])
        for s in fams[tfs_m.REQUEST_LATENCY].samples
        if s.labels.get("model_name") == MODEL
    }
    assert {("predict", "REST"), ("Predict", "GRPC")} <= lat
    rt = fams[tfs_m.RUNTIME_LATENCY].samples[0].labels
    assert {"model_name", "API", "runtime"} <= set(rt)


def test_batching_on_with_the_generated_batching_config(
    exported_model: Callable[[str], Path], tmp_path: Path
) -> None:
    """--enable_batching with the generated batching.config; payload batch 2 → max_batch_size
    counts examples (batching_session.h), and the queuing-latency metric appears."""
    from servecmp.models.registry import DEFAULT_SEED, get_model
    from servecmp.run.standalone import start_server
    from servecmp.servers.tfserving import metrics as tfs_m

    server = start_server(
        "tfserving",
        MODEL,
        tmp_path,
        exported_model(MODEL),
        payload={"batch_size": 2},
        tuning={"batching": {"enabled": True, "max_batch_size": 4, "batch_timeout_ms": 2}},
    )
    try:
        assert "--enable_batching=true" in flag_lines(server.configs.files["tfserving"])
        batch2 = PayloadSet.build(get_model(MODEL), 5, 2, 4, weights_seed=DEFAULT_SEED)
        for protocol in (Protocol.rest, Protocol.grpc):
            with make_client(
                Target(server="tfserving", protocol=protocol),
                server.address(protocol),
                batch2,
                10.0,
            ) as client:
                assert all(call(client, i) is Outcome.ok for i in range(len(batch2)))
        text = requests.get(server.endpoints.metrics_url, timeout=10).text
        assert tfs_m.QUEUING_LATENCY in text
    finally:
        server.stop()


def test_resources_and_recovery_are_the_servers(
    exported_model: Callable[[str], Path], tmp_path: Path, payloads: PayloadSet
) -> None:
    """Binary or Docker: RSS is the server's own (≥ 50 MB, a TensorFlow process, not a CLI
    client); a kill under load loses requests and recovery takes time."""
    from servecmp.results.friction import read_friction
    from servecmp.run import friction, probes
    from servecmp.run.standalone import start_server

    server = start_server("tfserving", MODEL, tmp_path / "srv", exported_model(MODEL))
    try:
        pid = server.measured_pid()
        assert pid is not None and probes.tree_rss(pid) >= 50e6, (server.mode, pid)
        if server.mode == "docker":
            assert pid != server.process.pid  # the container, not the `docker run` client
        target = Target(server="tfserving", protocol="rest")

        def make() -> Any:
            return make_client(target, server.address(Protocol.rest), payloads, 5.0)

        span = EventLoad(before_s=1.0, after_s=1.0)  # the timeline is not what is tested here
        friction.recovery(
            tmp_path, server, make, {"v1": payloads.expected}, payloads.atol, server.start, span
        )
        recs = {r.metric: r for r in read_friction(tmp_path)[0]}
        assert recs["recovery_s"].value is not None and recs["recovery_s"].value > 0
        assert recs["recovery_lost_requests"].value > 0
        assert server.measured_pid() not in (None, pid)
    finally:
        server.stop()


def test_the_generated_grpc_quota_refuses_none_of_the_peak_concurrent_calls(
    tfs: Any, payloads: PayloadSet
) -> None:
    """server.cc (2.20.0) caps gRPC at --grpc_max_threads through the ResourceQuota, one thread
    polling: with the generated value every one of the experiment's peak in-flight calls is
    served, none refused with RESOURCE_EXHAUSTED (which the server would not even count)."""
    import concurrent.futures as cf

    from servecmp.servers.tfserving import config

    flags = flag_lines(tfs.configs.files["tfserving"])
    quota = int(next(f for f in flags if f.startswith("--grpc_max_threads=")).split("=", 1)[1])
    peak = quota - config.GRPC_POLLER_THREADS - config.PROBE_RESERVE
    target = Target(server="tfserving", protocol=Protocol.grpc)

    def calls(_: int) -> list[Outcome]:
        with make_client(target, tfs.address(Protocol.grpc), payloads, 30.0) as client:
            return [call(client, i % len(payloads)) for i in range(20)]

    with cf.ThreadPoolExecutor(peak) as pool:
        outcomes = [o for batch in pool.map(calls, range(peak)) for o in batch]
    assert outcomes.count(Outcome.ok) == len(outcomes), outcomes
