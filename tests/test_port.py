"""servecmp.models.port without the port venv: spec validation, the serving-signature layout
check, and the failure paths (nothing half-written, errors that name the field or step)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from servecmp.models import port
from servecmp.models.port import PortError, check_signature, port_onnx_to_savedmodel, validate_specs


@dataclass(frozen=True)
class Spec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str


IMAGE = Spec("input", (None, 3, 224, 224), "float32")
IDS = Spec("input_ids", (None, 128), "int64")
MASK = Spec("attention_mask", (None, 128), "int64")


def test_matching_signature_passes() -> None:
    check_signature(
        {
            "input_ids": ((None, 128), "int64"),
            "attention_mask": ((None, 128), "int64"),
        },
        [IDS, MASK],
    )


def test_channels_last_signature_is_refused_naming_input_and_both_shapes() -> None:
    with pytest.raises(PortError) as e:
        check_signature({"input": ((None, 224, 224, 3), "float32")}, [IMAGE])
    msg = str(e.value)
    assert "input input" in msg
    assert "(None, 224, 224, 3)" in msg and "(None, 3, 224, 224)" in msg
    assert "NHWC" in msg


def test_fixed_batch_is_a_shape_mismatch() -> None:
    with pytest.raises(
        PortError, match=r"input input: .*\(1, 3, 224, 224\).*\(None, 3, 224, 224\)"
    ):
        check_signature({"input": ((1, 3, 224, 224), "float32")}, [IMAGE])


def test_dtype_mismatch_names_input_and_both_dtypes() -> None:
    with pytest.raises(PortError, match=r"input input_ids: .*dtype int32, the spec int64"):
        check_signature(
            {"input_ids": ((None, 128), "int32"), "attention_mask": ((None, 128), "int64")},
            [IDS, MASK],
        )


def test_renamed_input_is_refused() -> None:
    with pytest.raises(PortError, match=r"missing \['attention_mask'\], unexpected \['mask'\]"):
        check_signature(
            {"input_ids": ((None, 128), "int64"), "mask": ((None, 128), "int64")}, [IDS, MASK]
        )


@pytest.mark.parametrize(
    ("inputs", "outputs", "field"),
    [
        ([], ["y"], "inputs: expected at least one"),
        ([Spec("", (None, 3), "float32")], ["y"], r"inputs\[0\]\.name"),
        ([IDS, IDS], ["y"], r"inputs\[1\]\.name: 'input_ids' is named twice"),
        ([Spec("x", (None, 0), "float32")], ["y"], r"inputs\[0\]\.shape \(x\)"),
        ([Spec("x", (), "float32")], ["y"], r"inputs\[0\]\.shape \(x\)"),
        ([Spec("x", (None, 3), "float")], ["y"], r"inputs\[0\]\.dtype \(x\): expected one of"),
        ([IMAGE], [], "outputs: expected one or more"),
    ],
)
def test_bad_specs_name_the_field(inputs: list[Spec], outputs: list[str], field: str) -> None:
    with pytest.raises(PortError, match=field):
        validate_specs(inputs, outputs)


def test_missing_onnx_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PortError, match=r"onnx_path: .*nope.onnx is not a file"):
        port_onnx_to_savedmodel(tmp_path / "nope.onnx", tmp_path / "out", [IMAGE], ["logits"])


def test_missing_port_venv_says_how_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"x")
    monkeypatch.setenv(port.VENV_ENV, str(tmp_path / "no venv"))
    with pytest.raises(
        PortError, match=r"port venv .*no venv is missing: run scripts/setup-port.sh"
    ):
        port_onnx_to_savedmodel(onnx_file, tmp_path / "out", [IMAGE], ["logits"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def _fake_venv(root: Path, body: str) -> Path:
    """A venv whose python is a shell script standing in for the worker (its protocol only)."""
    py = root / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text("#!/bin/sh\n" + body)
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    return root


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            # argv: worker request result
            'echo \'{"ok": false, "step": "convert", "op": "CastLike", "node": "n1", '
            '"message": "onnx2tf has no converter for ONNX op CastLike at node n1"}\' > "$3"\n',
            "unsupported op: onnx2tf has no converter for ONNX op CastLike at node n1",
        ),
        ("echo boom >&2; exit 3\n", "convert: the port worker exited with status 3: boom"),
        (
            'echo \'{"ok": false, "step": "load", "message": "not an ONNX model"}\' > "$3"\n',
            "load: not an ONNX model",
        ),
    ],
)
def test_failed_port_leaves_the_previous_output_and_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, expected: str
) -> None:
    monkeypatch.setenv(port.VENV_ENV, str(_fake_venv(tmp_path / "venv", body)))
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"x")
    models = tmp_path / "models dir"
    out = models / "saved model"
    out.mkdir(parents=True)
    (out / "saved_model.pb").write_text("previous")
    with pytest.raises(PortError) as e:
        port_onnx_to_savedmodel(onnx_file, out, [IMAGE], ["logits"])
    assert expected in str(e.value)
    assert os.listdir(models) == ["saved model"]
    assert (out / "saved_model.pb").read_text() == "previous"


def _saved_model(where: Path, shape: tuple[int | None, ...]) -> Path:
    """A real SavedModel (this venv's TF) whose serving signature takes ``input`` of ``shape``."""
    import tensorflow as tf

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="input")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"logits": tf.reduce_mean(x, axis=[1, 2, 3])[:, None]}

    m = M()
    tf.saved_model.save(
        m, str(where), signatures={"serving_default": m.serve.get_concrete_function()}
    )
    return where


def _copying_worker(root: Path, model: Path) -> Path:
    # port.py runs: python WORKER request.json result.json, and expects the model beside them
    return _fake_venv(
        root,
        f'cp -r "{model}" "$(dirname "$3")/saved_model"\n'
        'echo \'{"ok": true, "tool": "onnx2tf 1.29.24", "notes": ["n1"]}\' > "$3"\n',
    )


@pytest.mark.heavy  # TensorFlow here and in port.py's loading subprocess
def test_a_channels_last_savedmodel_is_refused_and_not_moved_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nhwc = _saved_model(tmp_path / "nhwc", (None, 224, 224, 3))
    monkeypatch.setenv(port.VENV_ENV, str(_copying_worker(tmp_path / "venv", nhwc)))
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"x")
    with pytest.raises(PortError) as e:
        port_onnx_to_savedmodel(onnx_file, tmp_path / "out" / "sm", [IMAGE], ["logits"])
    assert "input input: the SavedModel signature has shape (None, 224, 224, 3), " in str(e.value)
    assert "the spec (None, 3, 224, 224)" in str(e.value)
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.heavy
def test_a_matching_savedmodel_replaces_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nchw = _saved_model(tmp_path / "nchw", (None, 3, 224, 224))
    monkeypatch.setenv(port.VENV_ENV, str(_copying_worker(tmp_path / "venv", nchw)))
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"x")
    out = tmp_path / "out dir" / "sm"
    out.mkdir(parents=True)
    (out / "stale").write_text("old")
    result = port_onnx_to_savedmodel(onnx_file, out, [IMAGE], ["logits"])
    assert result.saved_model_dir == out.resolve() and result.tool == "onnx2tf 1.29.24"
    assert "n1" in result.notes
    assert os.listdir(tmp_path / "out dir") == ["sm"]
    assert (out / "saved_model.pb").exists() and not (out / "stale").exists()
