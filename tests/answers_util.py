"""Shared by the real-server tests (KServe, Triton, Ray Serve): send every payload of a set once
through the target's own client and list each answer's outcome ("ok", or the failure and why)."""

from __future__ import annotations

from typing import Any

from servecmp.experiment import Target
from servecmp.run.server import LocalServer


def outcomes(
    server: LocalServer, target: Target, payloads: Any, timeout_s: float = 10.0
) -> list[str]:
    from servecmp.load.clients.base import execute, make_client

    with make_client(target, server.address(target.protocol), payloads, timeout_s) as client:
        results = [execute(client, i) for i in range(len(payloads))]
    return [r.outcome.value + ("" if r.ok else f": {r.exception}") for r in results]


def binary_vs_json(server: LocalServer, payloads: Any, timeout_s: float = 10.0) -> dict[str, Any]:
    """Every payload sent once as OIP REST JSON and once with the binary tensor extension
    through the server's own REST client: the logits each answered, what was recorded as each
    response's length, and each request body's size."""
    from servecmp.experiment import Encoding, Protocol
    from servecmp.load.clients.base import execute, make_client

    out: dict[str, Any] = {}
    for enc in (Encoding.oip, Encoding.oip_binary):
        target = Target(server=server.name, protocol=Protocol.rest, encoding=enc)
        with make_client(target, server.address(Protocol.rest), payloads, timeout_s) as client:
            answers = [client._exchange(i) for i in range(len(payloads))]
            results = [execute(client, i) for i in range(len(payloads))]
        out[enc.value] = {
            "logits": [a[0] for a in answers],
            "outcomes": [r.outcome.value + ("" if r.ok else f": {r.exception}") for r in results],
            "response_bytes": [r.response_length for r in results],
            "request_bytes": [len(payloads.body(enc, i)) for i in range(len(payloads))],
        }
    return out


def assert_binary_answers_as_json_in_fewer_bytes(got: dict[str, Any], n: int) -> None:
    """What :func:`binary_vs_json` found: every answer ok both ways, the same float32 bits
    whatever the wire, and every request and response smaller in binary."""
    import numpy as np

    js, binary = got["oip"], got["oip-binary"]
    assert js["outcomes"] == binary["outcomes"] == ["ok"] * n
    for a, b in zip(js["logits"], binary["logits"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(b < j for b, j in zip(binary["request_bytes"], js["request_bytes"], strict=True))
    assert all(b < j for b, j in zip(binary["response_bytes"], js["response_bytes"], strict=True))


def malformed_binary(
    server: LocalServer, payloads: Any, cut: int, timeout_s: float = 10.0
) -> list[Any]:
    """Each binary-extension body with its last ``cut`` bytes dropped (``cut`` < 0: that many
    zero bytes added), sent through the REST client: the server's answer, as the load counts it."""
    from servecmp.experiment import Encoding, Protocol
    from servecmp.load.clients.base import execute, make_client
    from servecmp.load.payloads import BinaryBody

    payloads.prepare([Encoding.oip_binary])
    bodies = payloads._bodies[Encoding.oip_binary]
    good = list(bodies)
    bodies[:] = [
        BinaryBody(b[: len(b) - cut] if cut > 0 else b + b"\0" * -cut, b.header_length)
        for b in good
    ]
    try:
        target = Target(server=server.name, protocol=Protocol.rest, encoding=Encoding.oip_binary)
        with make_client(target, server.address(Protocol.rest), payloads, timeout_s) as client:
            return [execute(client, i) for i in range(len(payloads))]
    finally:
        bodies[:] = good
