"""Friction probes against TF Serving test the right thing: the oversize-body case is a valid
``{"instances": ...}`` body that is only too large (a bare JSON array is rejected by TF Serving
as "Is not object" before any size matters: util/json_tensor.cc ParseJson, 2.20.0), and of ONE
row, so a server without a body limit (TF Serving has none) runs the model once instead of on
thousands of rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from doubles.tiny_artifacts import INPUT_SHAPE, TinyWeights, write_savedmodel

from servecmp.run import probes


def test_oversize_body_is_one_valid_row_just_over_the_limit() -> None:
    body = probes.oversize_instances(INPUT_SHAPE, 100_000)
    doc = json.loads(body)
    assert isinstance(doc, dict) and set(doc) == {"instances"}
    rows = np.asarray(doc["instances"], dtype=np.float32)
    assert rows.shape == (1, *INPUT_SHAPE)
    assert len(body) == 100_000


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from doubles.tfserving_double import TFServingDouble

    path = write_savedmodel(TinyWeights.seeded(), tmp_path_factory.mktemp("p") / "tiny" / "1")
    with TFServingDouble({"tiny": Path(path)}) as d:
        yield d


def test_bad_payload_probe_against_the_double(double: Any) -> None:
    url = f"http://{double.rest_address}/v1/models/tiny:predict"
    unknown = f"http://{double.rest_address}/v1/models/no-such-model:predict"
    res = {r.case: r for r in probes.probe_bad_payloads(url, unknown, INPUT_SHAPE)}
    over = probes.probe_oversize(url, INPUT_SHAPE, None, lambda: True)
    # TF Serving has no body limit: a valid oversized body is served, not refused as malformed.
    assert over.status == 200 and "Is not object" not in over.message, over
    assert over.outcome == "accepted" and over.limit_bytes is None
    assert over.sent_bytes == probes.NO_LIMIT_PROBE_BYTES + probes.OVER_LIMIT_BY
    assert len(json.loads(over.message)["predictions"]) == 1  # one row ran, not thousands
    assert res["wrong_dtype"].status == 400 and res["wrong_dtype"].names_problem
    assert res["garbage_bytes"].status == 400 and res["garbage_bytes"].names_problem
    assert res["unknown_model"].status == 404 and res["unknown_model"].names_problem
