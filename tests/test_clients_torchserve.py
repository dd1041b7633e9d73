"""TorchServe clients against a REAL TorchServe 0.12 serving the models package's .mar.

Starts ``torchserve --foreground`` on free 127.0.0.1 ports (its own TMPDIR, cwd and config),
waits until the model has a READY worker, then checks every TorchServe client end to end:
the same seeded tensor in, the PyTorch reference logits out.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servecmp.loadtests.clients import Outcome, TransportError, call, make_client
from servecmp.loadtests.payloads import PayloadSet

from servecmp.experiment import Encoding, Protocol, Server, Target

pytestmark = [pytest.mark.slow, pytest.mark.torchserve]

MODEL = "tiny"
BIN = Path(sys.executable).parent
TARGETS = [
    Target(server=Server.torchserve, protocol=Protocol.rest),
    Target(server=Server.torchserve, protocol=Protocol.rest, encoding=Encoding.raw),
    Target(server=Server.torchserve, protocol=Protocol.grpc),
]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, int]:
    export = pytest.importorskip("servecmp.models.export", reason="models export not available")
    if shutil.which("java") is None or not (BIN / "torchserve").exists():
        pytest.skip("needs Java 17 and the torchserve package")
    root = tmp_path_factory.mktemp("export")
    record = export.export_model(MODEL, root)
    return export.artifacts(MODEL, root), record.seed


@pytest.fixture(scope="module")
def torchserve(
    exported: tuple[Any, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    art, _ = exported
    home = tmp_path_factory.mktemp("torchserve")
    inf, mgmt, metrics, grpc_inf, grpc_mgmt, worker = _free_ports(6)
    cfg = home / "config.properties"
    cfg.write_text(
        "\n".join(
            [
                f"inference_address=http://127.0.0.1:{inf}",
                f"management_address=http://127.0.0.1:{mgmt}",
                f"metrics_address=http://127.0.0.1:{metrics}",
                "grpc_inference_address=127.0.0.1",
                "grpc_management_address=127.0.0.1",
                f"grpc_inference_port={grpc_inf}",
                f"grpc_management_port={grpc_mgmt}",
                "disable_token_authorization=true",
                "default_workers_per_model=1",
                "install_py_dep_per_model=false",
                "number_of_netty_threads=1",
                # worker sockets are /tmp/.ts.sock.<port>: never share 9000 with other instances
                f"initial_worker_port={worker}",
                f"model_store={art.model_store}",
            ]
        )
        + "\n"
    )
    env = {**os.environ, "TMPDIR": str(home), "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    log = (home / "torchserve.out").open("wb")
    proc = subprocess.Popen(
        [
            str(BIN / "torchserve"),
            "--start",
            "--foreground",
            "--ncs",
            "--disable-token-auth",
            "--ts-config",
            str(cfg),
            "--model-store",
            str(art.model_store),
            "--models",
            f"{MODEL}={art.mar.name}",
        ],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        from servecmp.loadtests.clients._http import HttpConnection

        mgmt_http = HttpConnection(f"127.0.0.1:{mgmt}", 2.0)
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"torchserve exited: {(home / 'torchserve.out').read_text()[-3000:]}")
            try:
                status, body = mgmt_http.request("GET", f"/models/{MODEL}")
                if status == 200 and any(
                    w.get("status") == "READY"
                    for m in json.loads(body)
                    for w in m.get("workers", [])
                ):
                    break
            except TransportError:
                pass
            out = (home / "torchserve.out").read_text(errors="replace")
            if out.count("Load model failed") >= 2:
                pytest.fail(f"the model's worker keeps dying on load: {out[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no READY worker in 120 s: {(home / 'torchserve.out').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        mgmt_http.close()
        yield {"rest": f"127.0.0.1:{inf}", "grpc": f"127.0.0.1:{grpc_inf}"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group (start_new_session)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def payloads(exported: tuple[Any, int]) -> PayloadSet:
    from servecmp.models.registry import get_model

    _, weights_seed = exported
    return PayloadSet.build(get_model(MODEL), 99, 2, 4, weights_seed=weights_seed)


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
