"""PayloadSet: seeded, identical tensor in every encoding, persistable."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from doubles.tiny_artifacts import TinySpec, TinyWeights

from servecmp.experiment import Encoding
from servecmp.load.payloads import (
    B64_SIGNATURE,
    QUANTUM,
    PayloadSet,
    tensor_proto_to_array,
)

SPEC = TinySpec()
WEIGHTS = TinyWeights.seeded()


def _build(seed: int = 11, batch: int = 2, n: int = 4, **kw: object) -> PayloadSet:
    return PayloadSet.build(SPEC, seed, batch, n, expected=WEIGHTS.logits, **kw)  # type: ignore[arg-type]


def test_seeded_and_deterministic() -> None:
    a, b, c = _build(), _build(), _build(seed=12)
    assert a.inputs.shape == (4, 2, 3, 8, 8) and a.inputs.dtype == np.float32
    assert a.expected.shape == (4, 2, 10)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.expected, b.expected)
    assert not np.array_equal(a.inputs, c.inputs)
    # exact dyadic values: the JSON text form is exact
    assert np.all(np.abs(a.inputs) <= 4.0)
    assert np.array_equal(np.round(a.inputs / QUANTUM) * QUANTUM, a.inputs)
    assert np.allclose(a.expected[1], WEIGHTS.logits(a.inputs[1]))
    assert len(a) == 4 and a.batch_size == 2 and a.num_classes == 10 and a.index(9) == 1


def test_expected_injected_as_array_and_class_count_checked() -> None:
    exp = np.zeros((4, 2, 10), np.float32)
    ps = PayloadSet.build(SPEC, 1, 2, 4, expected=exp)  # type: ignore[arg-type]
    assert np.array_equal(ps.expected, exp)
    with pytest.raises(ValueError, match="classes"):
        PayloadSet.build(SPEC, 1, 2, 4, expected=np.zeros((4, 2, 7), np.float32))  # type: ignore[arg-type]


def _decode(ps: PayloadSet, enc: Encoding, i: int) -> np.ndarray:
    body = ps.body(enc, i)
    if enc is Encoding.json:
        return np.asarray(json.loads(body)["instances"], dtype=np.float32)
    if enc in (Encoding.raw, Encoding.bytes):
        return np.frombuffer(body, dtype="<f4").reshape(ps.inputs.shape[1:])
    if enc is Encoding.b64:
        doc = json.loads(body)
        assert doc["signature_name"] == B64_SIGNATURE
        items = [
            np.frombuffer(base64.b64decode(r[ps.input_name]["b64"]), dtype="<f4")
            for r in doc["instances"]
        ]
        return np.stack(items).reshape(ps.inputs.shape[1:])
    if enc is Encoding.tensorproto:
        from tensorflow.core.framework import tensor_pb2

        # through the wire form, as a server sees it
        proto = tensor_pb2.TensorProto.FromString(body.SerializeToString())
        return tensor_proto_to_array(proto)
    if enc is Encoding.oip:  # Open Inference Protocol v2 JSON: flat row-major data + shape
        (inp,) = json.loads(body)["inputs"]
        assert inp["name"] == ps.input_name and inp["datatype"] == "FP32"
        return np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
    if enc is Encoding.oip_binary:  # the JSON header, then the tensor's little-endian bytes
        head = json.loads(body[: body.header_length])
        (inp,) = head["inputs"]
        assert inp["name"] == ps.input_name and inp["datatype"] == "FP32" and "data" not in inp
        assert head["parameters"] == {"binary_data_output": True}
        data = body[body.header_length :]
        assert len(data) == inp["parameters"]["binary_data_size"]
        return np.frombuffer(data, dtype="<f4").reshape(inp["shape"])
    assert enc is Encoding.ndarray
    return np.asarray(body)


@pytest.mark.parametrize("enc", list(Encoding))
def test_every_encoding_decodes_to_the_identical_tensor(enc: Encoding) -> None:
    ps = _build()
    for i in range(len(ps)):
        got = _decode(ps, enc, i)
        assert got.dtype == np.float32
        assert got.tobytes() == ps.inputs[i].tobytes(), f"{enc} index {i} differs"


def test_prepare_encodes_once() -> None:
    ps = _build()
    ps.prepare([Encoding.json])
    first = ps.body(Encoding.json, 0)
    ps.prepare([Encoding.json])
    assert ps.body(Encoding.json, 0) is first


def test_save_load_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ps = _build(atol=2e-3)
    path = ps.save(tmp_path / "run")
    assert path.name == "payloads.npz"
    back = PayloadSet.load(tmp_path / "run")
    assert back.seed == 11 and back.model == "tiny" and back.atol == 2e-3
    assert np.array_equal(back.inputs, ps.inputs) and np.array_equal(back.expected, ps.expected)
    assert back.body(Encoding.raw, 3) == ps.body(Encoding.raw, 3)


def test_registry_spec_is_accepted() -> None:
    registry = pytest.importorskip("servecmp.models.registry")
    spec = registry.get_model("tiny")
    ps = PayloadSet.build(spec, 3, 1, 2, expected=lambda x: np.zeros((len(x), spec.num_classes)))
    assert ps.inputs.shape[2:] == tuple(spec.input_shape)
    assert ps.input_name == spec.input_name and ps.output_name == spec.output_name


def test_default_expected_comes_from_the_pytorch_reference() -> None:
    pytest.importorskip("torch")
    reference = pytest.importorskip("servecmp.models.reference")
    from servecmp.models.registry import get_model

    spec = get_model("tiny")
    ps = PayloadSet.build(spec, 3, 2, 2, weights_seed=1234)
    want = reference.expected_logits("tiny", ps.inputs.reshape(4, *spec.input_shape), 1234)
    np.testing.assert_array_equal(ps.expected.reshape(4, -1), want)
    assert ps.weights_seed == 1234
