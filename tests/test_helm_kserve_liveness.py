"""KServe's liveness probe survives overload. KServe answers HTTP on one asyncio event loop and
calls a synchronous predict inline on it (kserve 0.21.0 kserve/model.py), so while a predict
runs a GET waits; under sustained load the chart's old liveness GET timed out failureThreshold
times and the kubelet restarted the server mid-step. The stand-in below is such a server (its
handler blocks the loop); the rendered probe must be one it answers while blocked."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml
from helm_util import CHART, require_helm

pytestmark = pytest.mark.helm

BLOCK_S = 3.0  # a predict holding the loop; bounded


@pytest.fixture()
def blocked_server() -> Iterator[int]:
    """An asyncio HTTP server on 127.0.0.1 whose every request blocks the loop for BLOCK_S."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    stop = loop.create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        time.sleep(BLOCK_S)  # the synchronous predict: nothing else runs on this loop meanwhile
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await asyncio.wait_for(stop, timeout=BLOCK_S * 10)

    t = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    t.start()
    assert ready.wait(10)
    yield port[0]
    loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
    t.join(timeout=BLOCK_S * 5)


@pytest.fixture(scope="module")
def kserve_container() -> dict:
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
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "servecmp-kserve"
    ]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def _probe(probe: dict, port: int, timeout_s: float) -> bool:
    """What the kubelet does for the probe's handler (httpGet: 2xx/3xx in time; tcpSocket: connect)."""
    if "tcpSocket" in probe:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=timeout_s).close()
            return True
        except OSError:
            return False
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}{probe['httpGet']['path']}", timeout=timeout_s
        ) as r:
            return 200 <= r.status < 400
    except OSError:
        return False


def test_liveness_is_answered_while_a_predict_holds_the_loop(
    kserve_container: dict, blocked_server: int
) -> None:
    live, ready = kserve_container["livenessProbe"], kserve_container["readinessProbe"]
    assert live.get("tcpSocket") == {"port": ready["httpGet"]["port"]}  # the REST port, by name
    # a request in flight holds the loop
    busy = threading.Thread(target=_probe, args=(ready, blocked_server, BLOCK_S * 2), daemon=True)
    busy.start()
    time.sleep(0.3)
    assert _probe(live, blocked_server, 1.0)  # the kernel completes the handshake
    assert not _probe(ready, blocked_server, 1.0)  # the old liveness (this GET) would have failed
    busy.join(timeout=BLOCK_S * 3)


def test_liveness_still_fails_on_a_dead_server(kserve_container: dict) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens
        assert not _probe(kserve_container["livenessProbe"], port, 1.0)
