"""The TF Serving test double behaves like TF Serving 2.20.0 where our code depends on it, so a
test cannot pass against the double while the real server differs. Each test names the upstream
file (tensorflow/serving, tag 2.20.0) it mirrors."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from doubles.tiny_artifacts import TinyWeights, write_savedmodel
from prometheus_client.parser import text_string_to_metric_families

from servecmp.servers.tfserving import metrics as tfs_m

WEIGHTS = TinyWeights.seeded()
X = np.full((1, 3, 8, 8), 0.5, np.float32)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tfs-double") / "tiny"
    write_savedmodel(WEIGHTS, root / "1")
    return root


@pytest.fixture
def double(base: Path) -> Iterator[Any]:
    from doubles.tfserving_double import TFServingDouble

    with TFServingDouble({"tiny": base}, poll_s=0.2) as d:
        yield d


def _post(d: Any, path: str, body: bytes | str) -> requests.Response:
    return requests.post(f"http://{d.rest_address}{path}", data=body, timeout=30)


def _grpc_predict(d: Any, **spec: Any) -> Any:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    req = predict_pb2.PredictRequest()
    req.model_spec.name = spec.get("model", "tiny")
    req.inputs[spec.get("input", "input")].CopyFrom(tf.make_tensor_proto(X))
    with grpc.insecure_channel(d.grpc_address) as ch:
        return prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=30)


def test_grpc_replies_carry_float_val_and_our_decoder_reads_them(double: Any) -> None:
    """predict_util.cc: outputs are written with Tensor::AsProtoField unless
    --enable_serialization_as_tensor_content."""
    from servecmp.load.payloads import tensor_proto_to_array

    out = _grpc_predict(double).outputs["logits"]
    assert not out.tensor_content and len(out.float_val) == 10
    np.testing.assert_allclose(tensor_proto_to_array(out), WEIGHTS.logits(X), atol=1e-5)


def test_grpc_wrong_input_name_is_invalid_argument(double: Any) -> None:
    import grpc

    with pytest.raises(grpc.RpcError) as err:
        _grpc_predict(double, input="wrong")
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "Inputs contains invalid name" in err.value.details()


def test_metrics_have_the_real_names_and_labels(base: Path) -> None:
    """servables/tensorflow/util.cc (request_count{model_name,status}, request_latency{model_name,
    API,entrypoint}, runtime_latency{model_name,API,runtime}); batching/batching_session.cc
    (queuing_latency{thread_pool_name}, only with batching); http_server.cc counts every REST
    request, model-status GETs included."""
    from doubles.tfserving_double import TFServingDouble

    for batching in (False, True):
        with TFServingDouble({"tiny": base}, enable_batching=batching) as d:
            assert _post(d, "/v1/models/tiny:predict", json.dumps({"instances": X.tolist()})).ok
            assert requests.get(f"http://{d.rest_address}/v1/models/tiny", timeout=10).ok
            _grpc_predict(d)
            page = requests.get(
                f"http://{d.rest_address}/monitoring/prometheus/metrics", timeout=10
            )
            fams = {f.name: f for f in text_string_to_metric_families(page.text)}
        count = {
            tuple(sorted(s.labels.items())): s.value for s in fams[tfs_m.REQUEST_COUNT].samples
        }
        assert count[(("model_name", "tiny"), ("status", "OK"))] == 3  # 2 REST (1 GET) + 1 gRPC
        lat = fams[tfs_m.REQUEST_LATENCY]
        assert lat.type == "histogram"
        entry = {(s.labels["API"], s.labels["entrypoint"]) for s in lat.samples}
        assert entry == {("predict", "REST"), ("", "REST"), ("Predict", "GRPC")}
        rt = {(s.labels["API"], s.labels["runtime"]) for s in fams[tfs_m.RUNTIME_LATENCY].samples}
        assert rt == {("Predict", "TF1")}
        assert (tfs_m.QUEUING_LATENCY in fams) is batching


def test_model_status_lists_versions_newest_first_and_end_after_unload(
    double: Any, base: Path
) -> None:
    """get_model_status_impl.cc + servable_state_monitor.h (VersionMap newest first; END kept)."""
    shutil.copytree(base / "1", base / ".tmp-2")
    (base / ".tmp-2").rename(base / "2")
    try:
        url = f"http://{double.rest_address}/v1/models/tiny"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            doc = requests.get(url, timeout=10).json()
            if [s["state"] for s in doc["model_version_status"]] == ["AVAILABLE", "END"]:
                break
            time.sleep(0.2)
        assert [s["version"] for s in doc["model_version_status"]] == ["2", "1"], doc
        assert [s["state"] for s in doc["model_version_status"]] == ["AVAILABLE", "END"], doc
        r = requests.get(f"{url}/versions/7", timeout=10)
        assert r.status_code == 404
        assert r.json() == {"error": "Could not find version 7 of model tiny"}
        r = requests.get(f"http://{double.rest_address}/v1/models/nope", timeout=10)
        assert (r.status_code, r.json()["error"]) == (
            404,
            "Could not find any versions of model nope",
        )
        assert (
            _post(
                double, "/v1/models/tiny/versions/1:predict", json.dumps({"instances": X.tolist()})
            ).status_code
            == 404
        )
    finally:
        shutil.rmtree(base / "2", ignore_errors=True)


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"\x8f\x01garbage", 400, "JSON Parse error"),
        (b"", 400, "JSON Parse error: The document is empty"),
        (b"[0, 1]", 400, "JSON Value: [0,1] Is not object"),
        (
            json.dumps({"instances": [[[["a"] * 8] * 8] * 3]}).encode(),
            400,
            'Error: INVALID_ARGUMENT: JSON Value: "a" Type: String is not of expected type: float',
        ),
        (
            json.dumps({"instances": [{"wrong": 1}]}).encode(),
            400,
            "JSON object: does not have named input: wrong",
        ),
        (json.dumps({"rows": []}).encode(), 400, "Missing 'inputs' or 'instances' key"),
    ],
    ids=["garbage", "empty", "array", "dtype", "input-name", "no-key"],
)
def test_rest_errors_have_the_real_texts_and_codes(
    double: Any, body: bytes, status: int, text: str
) -> None:
    """util/json_tensor.cc error texts, http_server.cc status mapping, {"error": ...} body."""
    r = _post(double, "/v1/models/tiny:predict", body)
    assert r.status_code == status
    assert text in r.json()["error"]


def test_rest_paths_match_as_upstream(double: Any) -> None:
    """http_rest_api_util.cc regexes are case-insensitive; a /v1/ path that matches no API is
    400 "Malformed request"; anything outside /v1/ is a bare 404 (evhttp_server.cc)."""
    body = json.dumps({"instances": X.tolist()})
    assert _post(double, "/V1/MODELS/tiny:predict", body).status_code == 200
    # ... but the method is compared case-sensitively (http_rest_api_handler.cc)
    r = _post(double, "/v1/models/tiny:PREDICT", body)
    assert (r.status_code, r.json()["error"]) == (
        400,
        "Malformed request: POST /v1/models/tiny:PREDICT",
    )
    r = _post(double, "/v1/models/tiny:explain", body)
    assert (r.status_code, r.json()["error"]) == (
        400,
        "Malformed request: POST /v1/models/tiny:explain",
    )
    assert _post(double, "/v2/models/tiny:predict", body).status_code == 404
    assert (
        requests.get(
            f"http://{double.rest_address}/monitoring/prometheus/metrics/", timeout=10
        ).status_code
        == 404
    )


def test_the_double_is_not_importable_from_the_package() -> None:
    import importlib.util

    assert importlib.util.find_spec("servecmp.tests") is None
    assert importlib.util.find_spec("servecmp.doubles") is None
