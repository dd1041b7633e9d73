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
