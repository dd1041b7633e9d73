"""The exported .mar served by a REAL TorchServe 0.12: REST JSON and raw bytes, bad input."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from servecmp.models.export import artifacts
from servecmp.models.reference import expected_logits, seeded_inputs
from torchserve_process import LocalTorchServe, group_pids, start_torchserve

pytestmark = [pytest.mark.slow, pytest.mark.torchserve]

NAME = "resnet"


@pytest.fixture(scope="module")
def server(exported_model: Callable[[str], Path],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTorchServe]:
    if shutil.which("java") is None:
        pytest.skip("needs Java 17 for TorchServe")
    art = artifacts(NAME, exported_model(NAME))
    ts = start_torchserve(art.model_store, {NAME: art.mar.name}, tmp_path_factory.mktemp("ts"))
    try:
        ts.wait_ready(NAME)
        yield ts
    finally:
        ts.stop()
        left = group_pids(ts.proc.pid)
        assert not left, f"TorchServe processes survived stop(): {left}"


def post(ts: LocalTorchServe, body: bytes, content_type: str) -> tuple[int, str, bytes]:
    req = urllib.request.Request(f"{ts.inference_url}/predictions/{NAME}", data=body,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


def test_rest_json(server: LocalTorchServe) -> None:
    x = seeded_inputs(NAME, 2, 77)
    code, ctype, body = post(server, json.dumps({"instances": x.tolist()}).encode(), "application/json")
    assert code == 200 and ctype.startswith("application/json"), body[:300]
    got = np.asarray(json.loads(body)["predictions"], dtype=np.float32)
    np.testing.assert_allclose(got, expected_logits(NAME, x), atol=1e-4, rtol=0)


def test_rest_raw(server: LocalTorchServe) -> None:
    x = seeded_inputs(NAME, 3, 78)
    code, ctype, body = post(server, x.astype("<f4").tobytes(), "application/octet-stream")
    assert code == 200 and ctype.startswith("application/octet-stream"), body[:300]
    got = np.frombuffer(body, "<f4").reshape(3, -1)
    np.testing.assert_allclose(got, expected_logits(NAME, x), atol=1e-4, rtol=0)


def test_bad_shape_is_a_400_with_message(server: LocalTorchServe) -> None:
    body = json.dumps({"instances": np.zeros((1, 3, 32, 32)).tolist()}).encode()
    code, _, resp = post(server, body, "application/json")
    assert code == 400
    msg = json.loads(resp)["message"]
    assert "expected shape [B, 3, 64, 64]" in msg and "[1, 3, 32, 32]" in msg
    code, _, resp = post(server, b"\x00" * 100, "application/octet-stream")
    assert code == 400 and "multiple of 49152 bytes, got 100 bytes" in json.loads(resp)["message"]


def test_server_still_serves_after_bad_requests(server: LocalTorchServe) -> None:
    x = seeded_inputs(NAME, 1, 79)
    code, _, body = post(server, x.tobytes(), "application/octet-stream")
    assert code == 200
    np.testing.assert_allclose(np.frombuffer(body, "<f4").reshape(1, -1), expected_logits(NAME, x), atol=1e-4)
