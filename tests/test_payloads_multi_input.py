"""Payloads derived from a model card with two int64 inputs (token ids and an attention mask):
every multi-input encoding carries both by name and in order, the single-tensor encodings are
refused naming the model's inputs, and the set survives save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from servecmp.experiment import Encoding
from servecmp.load.payloads import PayloadSet
from servecmp.models.card import load_card


@pytest.fixture
def card(tmp_path: Path):  # type: ignore[no-untyped-def]
    body = {
        "name": "tokens",
        "source": {"factory": "m:f"},
        "inputs": [
            {"name": "input_ids", "shape": [None, 5], "dtype": "int64", "range": [0, 999]},
            {"name": "attention_mask", "shape": [None, 5], "dtype": "int64", "range": [0, 1]},
        ],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 3]}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(body))
    return load_card(tmp_path / "c.yaml")


def fake_logits(arrays: list[np.ndarray]) -> np.ndarray:
    ids, mask = arrays
    return np.stack([ids.sum(1), mask.sum(1), (ids * mask).sum(1)], axis=1).astype(np.float32)


def test_inputs_follow_the_spec(card) -> None:  # type: ignore[no-untyped-def]
    ps = PayloadSet.build(card, 7, 2, 4, expected=fake_logits)
    ids, mask = ps.all_inputs
    assert ps.names == ["input_ids", "attention_mask"] and ps.is_multi
    assert ids.shape == (4, 2, 5) and ids.dtype == np.dtype("<i8")
    assert ids.min() >= 0 and ids.max() <= 999 and set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(ps.expected[1], fake_logits([ids[1], mask[1]]))
    again = PayloadSet.build(card, 7, 2, 4, expected=fake_logits)
    np.testing.assert_array_equal(again.inputs, ps.inputs)  # seeded


def test_every_multi_input_encoding_carries_both(card) -> None:  # type: ignore[no-untyped-def]
    ps = PayloadSet.build(card, 7, 2, 3, expected=fake_logits)
    ids, mask = ps.inputs[1], ps.more_inputs[0][1]
    rows = json.loads(ps.body(Encoding.json, 1))["instances"]
    assert rows == [
        {"input_ids": ids[b].tolist(), "attention_mask": mask[b].tolist()} for b in range(2)
    ]
    raw = ps.body(Encoding.raw, 1)
    assert raw == ids.astype("<i8").tobytes() + mask.astype("<i8").tobytes()
    assert ps.body(Encoding.bytes, 1) == raw
    oip = json.loads(ps.body(Encoding.oip, 1))["inputs"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in oip] == [
        ("input_ids", "INT64", [2, 5]),
        ("attention_mask", "INT64", [2, 5]),
    ]
    assert oip[0]["data"] == ids.ravel().tolist()
    binary = ps.body(Encoding.oip_binary, 1)  # the header, then each tensor's bytes in order
    head = json.loads(binary[: binary.header_length])["inputs"]
    assert [(t["name"], t["datatype"], t["parameters"]) for t in head] == [
        ("input_ids", "INT64", {"binary_data_size": 80}),
        ("attention_mask", "INT64", {"binary_data_size": 80}),
    ]
    assert binary[binary.header_length :] == raw
    nd = ps.body(Encoding.ndarray, 1)
    assert isinstance(nd, tuple) and len(nd) == 2
    protos = ps.body(Encoding.tensorproto, 1)  # TF Serving gRPC: one TensorProto per input
    assert list(protos) == ["input_ids", "attention_mask"]
    assert protos["input_ids"].tensor_content == ids.astype("<i8").tobytes()
    assert protos["attention_mask"].dtype == 9  # DT_INT64 (types.proto)
    with pytest.raises(
        ValueError,
        match=r"input_ids int64, attention_mask int64.*multi-input encodings: json, raw",
    ):
        ps.body(Encoding.b64, 0)


def test_save_and_load_keep_every_input(card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ps = PayloadSet.build(card, 3, 1, 2, expected=fake_logits)
    back = PayloadSet.load(ps.save(tmp_path))
    assert back.names == ps.names
    for a, b in zip(back.all_inputs, ps.all_inputs, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert back.body(Encoding.raw, 1) == ps.body(Encoding.raw, 1)


def test_body_bytes_count_every_input(card) -> None:  # type: ignore[no-untyped-def]
    from servecmp.models.runcard import body_bytes

    ps = PayloadSet.build(card, 3, 1, 2, expected=fake_logits)
    sizes = body_bytes(ps, [Encoding.raw, Encoding.ndarray, Encoding.json])
    assert sizes["raw"] == sizes["ndarray"] == 2 * 5 * 8
    assert sizes["json"] == len(ps.body(Encoding.json, 0))
