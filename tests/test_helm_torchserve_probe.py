"""TorchServe's readiness probe, as rendered, run against a stand-in for its management API.

The stand-in answers GET /models/<name> as pytorch/serve v0.12.0 does: GSON pretty JSON (an array
closed by "]" at column 0), workers "READY" only once the model is loaded, 404 for an unknown
model, and the connection kept open after the answer (NettyUtils.sendJsonResponse: keepAlive
true), so a probe that reads to EOF would hang to its timeout. Loopback only; every wait bounded.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import yaml
from helm_util import CHART, require_helm


def _describe(status: str) -> str:
    return (
        '[\n  {\n    "modelName": "resnet",\n    "modelVersion": "1.0",\n    "minWorkers": 1,\n'
        '    "workers": [\n      {\n        "id": "9000",\n        "startTime": "2026-01-01T00:00:00.000Z",\n'
        f'        "status": "{status}",\n        "memoryUsage": 0,\n        "pid": 42,\n        "gpu": false,\n'
        '        "gpuUsage": "N/A"\n      }\n    ],\n    "jobQueueStatus": {\n      "remainingCapacity": 100,\n'
        '      "pendingRequests": 0\n    }\n  }\n]\n'
    )


@contextmanager
def _management(answer: str | None) -> Iterator[tuple[int, list[bytes]]]:
    """A listener on 127.0.0.1 answering one request per connection and keeping it open."""
    seen: list[bytes] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            held.append(conn)
            conn.settimeout(5)
            req = conn.recv(4096)
            seen.append(req)
            path = req.split(b" ")[1].decode() if b" " in req else ""
            if answer is not None and path == "/models/resnet":
                body, code = answer, "200 OK"
            else:
                body, code = (
                    '{\n  "code": 404,\n  "type": "ModelNotFoundException"\n}\n',
                    "404 Not Found",
                )
            conn.sendall(
                f"HTTP/1.1 {code}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n{body}".encode()
            )

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1], seen
    finally:
        stop.set()
        t.join(timeout=5)
        for c in held:
            c.close()
        srv.close()


@pytest.fixture(scope="module")
def probe() -> dict:
    helm = require_helm()
    out = subprocess.run(
        [helm, "template", "servecmp", str(CHART), "--namespace", "servecmp"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    (dep,) = [
        d
        for d in yaml.safe_load_all(out)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "servecmp-torchserve"
    ]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c["readinessProbe"]


def _run(probe: dict, port: int) -> tuple[int, float]:
    cmd = list(probe["exec"]["command"])
    cmd[-1] = cmd[-1].replace("/dev/tcp/127.0.0.1/8081", f"/dev/tcp/127.0.0.1/{port}")
    t0 = time.monotonic()
    rc = subprocess.run(cmd, capture_output=True, timeout=30).returncode
    return rc, time.monotonic() - t0


def test_probe_starts_no_interpreter(probe: dict) -> None:
    cmd = probe["exec"]["command"]
    assert (
        cmd[:2] == ["bash", "-c"] and "/dev/tcp/127.0.0.1/8081" in cmd[2]
    )  # the wire's management port
    assert not any("python" in part for part in cmd)


@pytest.mark.parametrize(
    ("answer", "ready"),
    [
        (_describe("READY"), True),
        (
            _describe("UNLOADING"),
            False,
        ),  # registered, worker still loading: GET is 200 all the same
        (None, False),  # model not registered: 404
    ],
)
def test_probe_is_ready_only_with_a_ready_worker(
    probe: dict, answer: str | None, ready: bool
) -> None:
    with _management(answer) as (port, seen):
        rc, took = _run(probe, port)
    assert (rc == 0) is ready
    assert seen and seen[0].startswith(b"GET /models/resnet HTTP/1.1\r\n")
    # decided from the answer, not by waiting out a read timeout on the kept-open connection
    assert took < probe["timeoutSeconds"] - 1


def test_probe_fails_without_a_listener(probe: dict) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        rc, _ = _run(probe, port)
    assert rc != 0
