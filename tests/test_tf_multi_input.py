"""A two-input int64 model (token ids + an attention mask) on TF Serving's clients and the TF
in-process baseline, through the real ONNX -> TensorFlow port.

The request bodies are checked against the ported SavedModel's own serving signature (what
``saved_model_cli show`` prints, read through TensorFlow in-process) and against TF Serving's
JSON rules (tensorflow/serving 2.20.0 util/json_tensor.cc); the TF Serving double answers them
and refuses what the real server refuses (unknown or missing inputs, another dtype).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from servecmp.models.port import port_venv

TOKENS = """
import torch
from torch import nn

class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(120, 16)
        self.fc = nn.Linear(16, 4)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).float()
        return self.fc((self.emb(input_ids) * m).sum(1) / m.sum(1).clamp(min=1))

def build():
    return Enc()
"""

CARD_INPUTS = [
    {"name": "input_ids", "shape": [None, 32], "dtype": "int64", "range": [0, 119]},
    {"name": "attention_mask", "shape": [None, 32], "dtype": "int64", "range": [0, 1]},
]

needs_port = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (port_venv() / "bin" / "python").exists(),
        reason=f"the port venv {port_venv()} is missing (scripts/setup-port.sh)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("onnx") is None, reason="the onnx package is not installed"
    ),
]


def _card(root: Path, tag: str) -> Path:
    (root / f"toknets_{tag}.py").write_text(TOKENS)
    path = root / "tokens.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": f"tok{tag}",
                "source": {"factory": f"toknets_{tag}:build"},
                "inputs": CARD_INPUTS,
                "outputs": [{"name": "logits", "classification": True, "shape": [None, 4]}],
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def ported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The token card exported once (the port included) and its payloads, batch 2."""
    import sys

    from servecmp.load.payloads import PayloadSet
    from servecmp.models.export import artifacts, export_model
    from servecmp.models.registry import get_model

    root = tmp_path_factory.mktemp("tf-multi")
    tag = str(abs(hash(str(root))) % 10**8)
    card_file = _card(root, tag)
    sys.path.insert(0, str(root))
    try:
        rec = export_model(str(card_file), root / "out")
        card = get_model(str(card_file))
        payloads = PayloadSet.build(card, 11, 2, 3, weights_seed=rec.seed)
        yield {
            "card": card,
            "rec": rec,
            "art": artifacts(rec.model, root / "out"),
            "payloads": payloads,
        }
    finally:
        sys.path.remove(str(root))


def _signature(saved_model_dir: Path) -> dict[str, tuple[list[int | None], str]]:
    """``saved_model_cli show --tag_set serve --signature_def serving_default``, in-process."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
    return {
        k: (v.shape.as_list(), v.dtype.name) for k, v in fn.structured_input_signature[1].items()
    }


@pytest.fixture(scope="module")
def double(ported: dict[str, Any]) -> Iterator[Any]:
    from doubles.tfserving_double import TFServingDouble

    with TFServingDouble({ported["rec"].model: ported["art"].tfserving_base}, poll_s=5.0) as d:
        yield d


def test_experiment_takes_tf_targets_for_a_multi_input_card(tmp_path: Path) -> None:
    """TF Serving (json rows, one TensorProto per input) and the TF baseline take several inputs;
    b64 (one float32 buffer per row) is still refused, naming the encodings that can."""
    from servecmp.experiment import parse_experiment

    card = _card(tmp_path, "exp")
    base = {"name": "t", "model": str(card)}
    exp = parse_experiment(
        {
            **base,
            "targets": [
                {"server": "tfserving", "protocol": "rest"},
                {"server": "tfserving", "protocol": "grpc"},
                {"server": "tensorflow", "protocol": "inprocess"},
            ],
        },
        "exp.yaml",
    )
    assert {t.name for t in exp.targets} == {
        "tfserving-rest-json",
        "tfserving-grpc-tensorproto",
        "tensorflow-inprocess",
    }
    with pytest.raises(ValueError, match=r"tfserving-rest-b64 cannot send them.*tensorproto"):
        parse_experiment(
            {**base, "targets": [{"server": "tfserving", "protocol": "rest", "encoding": "b64"}]},
            "exp.yaml",
        )


def _apply(fn: Any) -> Any:
    """The port's marks and skips, for every test that needs the ported SavedModel."""
    for m in needs_port:
        fn = m(fn)
    return fn


@_apply
def test_port_keeps_the_cards_names_and_dtypes_as_the_serving_signature(
    ported: dict[str, Any],
) -> None:
    sig = _signature(ported["art"].savedmodel)
    assert sig == {
        "input_ids": ([None, 32], "int64"),
        "attention_mask": ([None, 32], "int64"),
    }


@_apply
def test_tf_baseline_calls_the_signature_with_every_input_and_matches_pytorch(
    ported: dict[str, Any],
) -> None:
    from servecmp.experiment import Protocol, Target
    from servecmp.load.clients import Outcome, call, make_client

    payloads = ported["payloads"]
    target = Target(server="tensorflow", protocol=Protocol.inprocess)
    base = str(ported["art"].tfserving_base)
    with make_client(target, base, payloads, 5.0, strict_threads=False) as c:
        for i in range(len(payloads)):
            assert call(c, i) is Outcome.ok  # checked against the PyTorch reference's answer
            np.testing.assert_allclose(c.send(i), payloads.expected[i], atol=1e-4, rtol=0)


@_apply
def test_rest_body_follows_tf_servings_row_format_for_the_signature(
    ported: dict[str, Any], double: Any
) -> None:
    """json_tensor.cc FillTensorMapFromInstancesList: a list of objects whose keys equal the
    signature's input names; AddValueToTensor: DT_INT64 takes JSON integers only."""
    from servecmp.experiment import Encoding, Protocol, Target
    from servecmp.load.clients import Outcome, call, make_client

    payloads = ported["payloads"]
    sig = _signature(ported["art"].savedmodel)
    doc = json.loads(payloads.body(Encoding.json, 0))
    assert set(doc) == {"instances"} and len(doc["instances"]) == payloads.batch_size
    for row in doc["instances"]:
        assert set(row) == set(sig)
        for name, values in row.items():
            assert len(values) == sig[name][0][1]
            assert all(type(v) is int for v in values), name  # no 1.0: rapidjson's double
    target = Target(server="tfserving", protocol=Protocol.rest)
    with make_client(target, double.rest_address, payloads, 10.0) as c:
        assert [call(c, i) for i in range(len(payloads))] == [Outcome.ok] * len(payloads)


@_apply
def test_grpc_request_has_one_tensorproto_per_signature_input(
    ported: dict[str, Any], double: Any
) -> None:
    from tensorflow.core.framework import types_pb2

    from servecmp.experiment import Protocol, Target
    from servecmp.load.clients import Outcome, call, make_client

    payloads = ported["payloads"]
    sig = _signature(ported["art"].savedmodel)
    target = Target(server="tfserving", protocol=Protocol.grpc)
    with make_client(target, double.grpc_address, payloads, 10.0) as c:
        req = c._requests[0]
        assert set(req.inputs) == set(sig)
        for name, proto in req.inputs.items():
            assert types_pb2.DataType.Name(proto.dtype) == "DT_" + sig[name][1].upper()
            assert [d.size for d in proto.tensor_shape.dim] == [payloads.batch_size, 32]
        assert [call(c, i) for i in range(len(payloads))] == [Outcome.ok] * len(payloads)


def _rows(payloads: Any) -> list[dict[str, Any]]:
    from servecmp.experiment import Encoding

    rows: list[dict[str, Any]] = json.loads(payloads.body(Encoding.json, 0))["instances"]
    return rows


@_apply
@pytest.mark.parametrize(
    ("case", "message"),
    [
        # json_tensor.cc AddInstanceItem
        ("unknown", "key: token_ids of 'instances' list. Error: INVALID_ARGUMENT: JSON object: "
         "does not have named input: token_ids"),
        # FillTensorMapFromInstancesList: every object's keys equal the signature's inputs
        ("missing", "keys must be equal to: attention_mask,input_ids"),
        # AddValueToTensor: DT_INT64 takes IsInt64() values only
        ("float", "JSON Value: 1.5 Type: Number is not of expected type: int64"),
        # FillTensorMapFromInputsMap
        ("columnar-missing", "Missing named input: attention_mask in 'inputs' object."),
    ],
)  # fmt: skip
def test_double_refuses_rest_bodies_tf_serving_refuses(
    ported: dict[str, Any], double: Any, case: str, message: str
) -> None:
    import requests

    rows = _rows(ported["payloads"])
    if case == "unknown":
        body: dict[str, Any] = {"instances": [{**rows[0], "token_ids": rows[0]["input_ids"]}]}
    elif case == "missing":
        body = {"instances": [{"input_ids": r["input_ids"]} for r in rows]}
    elif case == "float":
        body = {"instances": [{**rows[0], "input_ids": [1.5] * 32}]}
    else:
        body = {"inputs": {"input_ids": [r["input_ids"] for r in rows]}}
    url = f"http://{double.rest_address}/v1/models/{ported['rec'].model}:predict"
    r = requests.post(url, data=json.dumps(body), timeout=30)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


@_apply
def test_double_ignores_extra_keys_in_the_columnar_format_like_tf_serving(
    ported: dict[str, Any], double: Any
) -> None:
    """FillTensorMapFromInputsMap walks the signature's inputs only, so an extra key is
    ignored (the row format refuses it)."""
    import requests

    rows = _rows(ported["payloads"])
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    url = f"http://{double.rest_address}/v1/models/{ported['rec'].model}:predict"
    r = requests.post(url, data=json.dumps({"inputs": {**cols, "extra": [1]}}), timeout=30)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["outputs"], ported["payloads"].expected[0], atol=1e-4)


@_apply
@pytest.mark.parametrize(
    ("case", "message"),
    [
        # predict_util.cc VerifyRequestInputsSize
        ("missing", "input size does not match signature: 1!=2"),
        # TensorFlow cc/saved_model/util.cc GetInputValues
        ("unknown", "Inputs contains invalid name"),
        # TensorFlow core/framework/function.cc FunctionCallFrame::SetArgs
        ("float", "to be int64 but float is provided"),
    ],
)
def test_double_refuses_grpc_requests_tf_serving_refuses(
    ported: dict[str, Any], double: Any, case: str, message: str
) -> None:
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from servecmp.load.payloads import tensor_proto

    payloads = ported["payloads"]
    ids, mask = (a[0] for a in payloads.all_inputs)
    req = predict_pb2.PredictRequest()
    req.model_spec.name = ported["rec"].model
    req.inputs["input_ids"].CopyFrom(tensor_proto(ids))
    if case == "unknown":
        req.inputs["mask"].CopyFrom(tensor_proto(mask))
    elif case == "float":
        req.inputs["attention_mask"].CopyFrom(tensor_proto(mask.astype(np.float32)))
    with grpc.insecure_channel(double.grpc_address) as ch:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(req, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")
