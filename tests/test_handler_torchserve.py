"""The exported .mar served by a REAL TorchServe 0.12 started from the generated config:
REST JSON and raw bytes match in-process PyTorch (and the SavedModel in TF), bad input is a 400."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import requests

from servecmp.models.reference import expected_logits, seeded_inputs

pytestmark = [pytest.mark.slow, pytest.mark.torchserve]

NAME = "resnet"


@pytest.fixture(scope="module")
def server(local_torchserve: Any) -> Any:
    return local_torchserve(NAME)


def post(server: Any, body: bytes, content_type: str) -> requests.Response:
    return requests.post(
        f"http://{server.endpoints.rest}/predictions/{NAME}",
        data=body,
        headers={"Content-Type": content_type},
        timeout=30,
    )


def test_rest_json_matches_pytorch_and_the_savedmodel(server: Any, exported_model: Any) -> None:
    import tensorflow as tf

    from servecmp.models.export import artifacts

    x = seeded_inputs(NAME, 2, 77)
    r = post(server, json.dumps({"instances": x.tolist()}).encode(), "application/json")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"), (
        r.text[:300]
    )
    got = np.asarray(r.json()["predictions"], dtype=np.float32)
    ref = expected_logits(NAME, x)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    saved = tf.saved_model.load(str(artifacts(NAME, exported_model(NAME)).savedmodel))
    tf_logits = saved.signatures["serving_default"](input=tf.constant(x))["logits"].numpy()
    np.testing.assert_allclose(tf_logits, got, atol=1e-4, rtol=0)


def test_rest_raw(server: Any) -> None:
    x = seeded_inputs(NAME, 3, 78)
    r = post(server, x.astype("<f4").tobytes(), "application/octet-stream")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/octet-stream")
    got = np.frombuffer(r.content, "<f4").reshape(3, -1)
    np.testing.assert_allclose(got, expected_logits(NAME, x), atol=1e-4, rtol=0)


def test_bad_shape_is_a_400_with_message(server: Any) -> None:
    body = json.dumps({"instances": np.zeros((1, 3, 32, 32)).tolist()}).encode()
    r = post(server, body, "application/json")
    assert r.status_code == 400
    msg = r.json()["message"]
    assert "expected shape [B, 3, 64, 64]" in msg and "[1, 3, 32, 32]" in msg
    r = post(server, b"\x00" * 100, "application/octet-stream")
    assert r.status_code == 400 and "multiple of 49152 bytes, got 100 bytes" in r.json()["message"]


def test_server_still_serves_after_bad_requests(server: Any) -> None:
    x = seeded_inputs(NAME, 1, 79)
    r = post(server, x.tobytes(), "application/octet-stream")
    assert r.status_code == 200
    np.testing.assert_allclose(
        np.frombuffer(r.content, "<f4").reshape(1, -1), expected_logits(NAME, x), atol=1e-4
    )
