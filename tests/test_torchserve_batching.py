"""Server-side batching on a REAL TorchServe (generated config with batching on): concurrent
requests are batched by TorchServe into one handler call, each gets its own correct answer,
and one bad request in a batch gets its own 400 without failing the others."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import requests

from servecmp.models.reference import expected_logits, seeded_inputs

pytestmark = [pytest.mark.slow, pytest.mark.torchserve]
NAME = "tiny"


@pytest.fixture(scope="module")
def batching_server(local_torchserve: Any) -> Any:
    return local_torchserve(
        NAME, tuning={"batching": {"enabled": True, "max_batch_size": 8, "batch_timeout_ms": 200}}
    )


def test_generated_config_turns_batching_on(batching_server: Any) -> None:
    desc = requests.get(
        f"{batching_server.endpoints.management_url}/models/{NAME}", timeout=10
    ).json()[0]
    assert desc["batchSize"] == 8 and desc["maxBatchDelay"] == 200


def test_batched_requests_each_get_their_answer_and_a_bad_one_only_its_400(
    batching_server: Any,
) -> None:
    url = f"http://{batching_server.endpoints.rest}/predictions/{NAME}"
    xs = [seeded_inputs(NAME, 1, 100 + i) for i in range(6)]
    bodies = [json.dumps({"instances": x.tolist()}).encode() for x in xs]
    bodies[3] = json.dumps({"instances": np.zeros((1, 3, 4, 4)).tolist()}).encode()  # wrong shape

    def post(body: bytes) -> requests.Response:
        return requests.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=30
        )

    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(post, bodies))
    for i, (x, r) in enumerate(zip(xs, responses, strict=True)):
        if i == 3:
            assert r.status_code == 400 and "expected shape" in r.json()["message"]
            continue
        assert r.status_code == 200, r.text[:300]
        np.testing.assert_allclose(
            np.asarray(r.json()["predictions"], np.float32),
            expected_logits(NAME, x),
            atol=1e-4,
            rtol=0,
        )
