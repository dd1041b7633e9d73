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

from servecmp.deploy.local.tfserving import TFServingServer
from servecmp.experiment import Protocol, Target
from servecmp.loadtests.clients import Outcome, call, make_client
from servecmp.loadtests.payloads import PayloadSet

pytestmark = [
    pytest.mark.slow,
    pytest.mark.tfserving,
    pytest.mark.skipif(TFServingServer.availability() is not None,
                       reason=f"real TF Serving unavailable: {TFServingServer.availability()}"),
]
MODEL = "tiny"


@pytest.fixture(scope="module")
def tfs(exported_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from servecmp.deploy.local.standalone import start_tfserving

    root = exported_model(MODEL)
    server = start_tfserving(MODEL, tmp_path_factory.mktemp("tfs"), root)
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
def test_clients_get_the_pytorch_logits_from_real_tf_serving(tfs: Any, payloads: PayloadSet, protocol: Protocol) -> None:
    target = Target(server="tfserving", protocol=protocol)
    with make_client(target, tfs.address(protocol), payloads, 10.0) as client:
        assert all(call(client, i) is Outcome.ok for i in range(len(payloads)))
        np.testing.assert_allclose(client.send(0), payloads.expected[0], atol=1e-4)


def test_native_metrics_have_latency_histograms(tfs: Any, payloads: PayloadSet) -> None:
    text = requests.get(tfs.endpoints.metrics_url, timeout=10).text
    assert ":tensorflow:serving:request_count" in text
    assert ":tensorflow:serving:request_latency_bucket" in text


def test_new_version_directory_is_served(tfs: Any, payloads: PayloadSet) -> None:
    from servecmp.deploy.local.friction import copy_version
    from servecmp.models.export import artifacts, export_model, seed_for_version
    from servecmp.models.reference import expected_logits

    export_model(MODEL, tfs.artifacts_root, seed=seed_for_version(1234, 2), version=2)
    base = Path(tfs.configs.placement.tfs_model_root) / MODEL
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
