"""TorchServe clients against a REAL TorchServe 0.12 serving the models package's .mar.

TorchServe is started by the project's runtime from the generated config (conftest
``local_torchserve``); every TorchServe client is checked end to end:
the same seeded tensor in, the PyTorch reference logits out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients import Outcome, TransportError, call, make_client
from servecmp.load.payloads import PayloadSet

pytestmark = [pytest.mark.slow, pytest.mark.torchserve]

MODEL = "tiny"
BIN = Path(sys.executable).parent
TARGETS = [
    Target(server="torchserve", protocol=Protocol.rest),
    Target(server="torchserve", protocol=Protocol.rest, encoding=Encoding.raw),
    Target(server="torchserve", protocol=Protocol.grpc),
]


@pytest.fixture(scope="module")
def torchserve(local_torchserve: Any) -> dict[str, str]:
    server = local_torchserve(MODEL)
    return {
        "rest": server.endpoints.rest,
        "grpc": server.endpoints.grpc,
        "metrics": server.endpoints.metrics_url,
    }


@pytest.fixture(scope="module")
def payloads() -> PayloadSet:
    from servecmp.models.registry import DEFAULT_SEED, get_model

    # conftest's exported_model uses the default weights seed
    return PayloadSet.build(get_model(MODEL), 99, 2, 4, weights_seed=DEFAULT_SEED)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_torchserve_client_end_to_end(
    torchserve: dict[str, str], payloads: PayloadSet, target: Target
) -> None:
    events: list[dict[str, Any]] = []
    address = torchserve["grpc" if target.protocol is Protocol.grpc else "rest"]
    with make_client(target, address, payloads, 10.0) as client:
        for i in range(len(payloads)):
            assert call(client, i, fire=lambda **kw: events.append(kw)) is Outcome.ok, events[-1]
        np.testing.assert_allclose(client.send(0), payloads.expected[0], atol=payloads.atol)
    assert all(e["context"]["server"] == "torchserve" for e in events)
    assert events[0]["name"] == target.name and events[0]["response_length"] > 0


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_torchserve_unknown_model_is_client_error(
    torchserve: dict[str, str], payloads: PayloadSet, target: Target
) -> None:
    other = PayloadSet(
        model="nope", seed=payloads.seed, inputs=payloads.inputs, expected=payloads.expected
    )
    address = torchserve["grpc" if target.protocol is Protocol.grpc else "rest"]
    with make_client(target, address, other, 10.0) as client, pytest.raises(TransportError) as err:
        client.send(0)
    if target.protocol is Protocol.grpc:
        # TorchServe 0.12 answers an unknown model over gRPC with INTERNAL (not NOT_FOUND);
        # the kind reports the server's status as is.
        assert err.value.kind == "grpc_INTERNAL" and "Model not found" in err.value.message
    else:
        assert err.value.kind == "http_4xx"


def test_breakdown_parts_add_up_to_the_clients_mean(
    torchserve: dict[str, str], payloads: PayloadSet, tmp_path: Path
) -> None:
    """A real step reads TorchServe's own counters at its window edges: REST JSON splits into
    outside / queue / worker, adding up to the client's mean within noise; gRPC requests carry
    no latency counter in 0.12 (GRPCJob), so they say "not reported", never 0."""
    from breakdown_util import assert_parts_add_up, breakdown_step, parts_of

    path = str(payloads.save(tmp_path))
    rest = breakdown_step(TARGETS[0], torchserve["rest"], torchserve["metrics"], path, tmp_path)
    assert_parts_add_up(rest)
    parts = parts_of(rest)
    assert parts["queue"].ms is not None and parts["compute"].ms is not None
    assert parts["pre_post"].ms is None and parts["pre_post"].why.startswith("not reported by")
    grpc = breakdown_step(TARGETS[2], torchserve["grpc"], torchserve["metrics"], path, tmp_path)
    assert grpc.breakdown is not None and grpc.ok > 10
    assert grpc.breakdown.not_reported is not None
    assert grpc.breakdown.not_reported.endswith("over grpc")
    assert all(p.ms is None for p in grpc.breakdown.parts)
