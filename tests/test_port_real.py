"""The real port: onnx2tf in .venv-port on ONNX graphs built here (onnx.helper, in that venv),
the SavedModel loaded by this venv's TensorFlow (the TF Serving pin) and compared with ONNX
Runtime's answer on the same inputs. Kept few: each conversion takes tens of seconds."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from servecmp.models import port
from servecmp.models.port import PortError, port_onnx_to_savedmodel

pytestmark = [
    pytest.mark.heavy,  # converts and loads models; starts no server, sends no load
    pytest.mark.skipif(
        not (port.port_venv() / "bin" / "python").exists(),
        reason=f"no port venv at {port.port_venv()} (scripts/setup-port.sh makes it)",
    ),
]

# Runs in the port venv: writes the graph, a seeded input and ONNX Runtime's output for it.
BUILD = r"""
import sys
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
kind, out = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
if kind == "cnn":
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["y"], name="flatten"),
    ]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])]
    inits = [numpy_helper.from_array(w, "w")]
else:  # CastLike (opset 15) has no module in onnx2tf/ops at 1.29.24
    nodes = [helper.make_node("CastLike", ["x", "like"], ["y"], name="cast_like_1")]
    ins = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8]),
        helper.make_tensor_value_info("like", TensorProto.INT64, ["batch", 3, 8, 8]),
    ]
    outs = [helper.make_tensor_value_info("y", TensorProto.INT64, ["batch", 3, 8, 8])]
    inits = []
model = helper.make_model(
    helper.make_graph(nodes, kind, ins, outs, inits), opset_imports=[helper.make_opsetid("", 17)]
)
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out + "/model.onnx")
if kind == "cnn":
    x = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    sess = ort.InferenceSession(out + "/model.onnx", providers=["CPUExecutionProvider"])
    np.save(out + "/x.npy", x)
    np.save(out + "/y.npy", sess.run(["y"], {"x": x})[0])
"""


@dataclass(frozen=True)
class Spec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str


def build(kind: str, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [str(port.port_venv() / "bin" / "python"), "-c", BUILD, kind, str(where)],
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )
    return where / "model.onnx"


def test_tiny_cnn_keeps_nchw_and_answers_like_onnxruntime(tmp_path: Path) -> None:
    src = tmp_path / "a model dir"
    onnx_file = build("cnn", src)
    before = onnx_file.read_bytes()
    out = tmp_path / "ported models" / "tiny cnn"
    result = port_onnx_to_savedmodel(onnx_file, out, [Spec("x", (None, 3, 8, 8), "float32")], ["y"])
    assert result.saved_model_dir == out.resolve()
    assert result.tool == "onnx2tf 1.29.24"
    assert any("tensorflow 2.19.0" in n for n in result.notes)
    assert onnx_file.read_bytes() == before  # onnxsim rewrites its input: a copy was converted
    assert os.listdir(out.parent) == ["tiny cnn"]  # no temp folder left beside it

    import tensorflow as tf

    fn = tf.saved_model.load(str(out)).signatures["serving_default"]
    (spec,) = fn.structured_input_signature[1].values()
    assert (spec.name, tuple(spec.shape), spec.dtype.name) == ("x", (None, 3, 8, 8), "float32")
    x, y = np.load(src / "x.npy"), np.load(src / "y.npy")
    got = fn(x=tf.constant(x))["y"].numpy()
    assert got.shape == y.shape == (3, 4)
    np.testing.assert_allclose(got, y, atol=1e-5)


def test_unsupported_op_is_named_with_its_node_and_nothing_is_written(tmp_path: Path) -> None:
    onnx_file = build("castlike", tmp_path / "src")
    out = tmp_path / "out" / "castlike"
    specs = [Spec("x", (None, 3, 8, 8), "float32"), Spec("like", (None, 3, 8, 8), "int64")]
    with pytest.raises(
        PortError, match=r"unsupported op: .*ONNX op CastLike at node 'cast_like_1'"
    ):
        port_onnx_to_savedmodel(onnx_file, out, specs, ["y"])
    assert os.listdir(tmp_path / "out") == []


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00 definitely not a protobuf \xff" * 10)
    with pytest.raises(PortError, match=r"load: .*model.onnx is not an ONNX model"):
        port_onnx_to_savedmodel(bad, tmp_path / "out", [Spec("x", (None, 3), "float32")], ["y"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_spec_naming_other_inputs_than_the_graph_is_refused(tmp_path: Path) -> None:
    onnx_file = build("cnn", tmp_path / "src")
    with pytest.raises(
        PortError, match=r"inputs: the ONNX graph's inputs are \['x'\], the spec names \['image'\]"
    ):
        port_onnx_to_savedmodel(
            onnx_file, tmp_path / "out", [Spec("image", (None, 3, 8, 8), "float32")], ["y"]
        )


def test_onnx2tf_default_channels_last_is_refused_with_both_shapes(tmp_path: Path) -> None:
    """Without keep_shape_absolutely_input_names onnx2tf moves channels last: refused, named."""
    onnx_file = build("cnn", tmp_path / "src")
    out = tmp_path / "out" / "sm"
    with pytest.raises(PortError) as e:
        port_onnx_to_savedmodel(
            onnx_file, out, [Spec("x", (None, 3, 8, 8), "float32")], ["y"], keep_layout=False
        )
    assert (
        "input x: the SavedModel signature has shape (None, 8, 8, 3), the spec (None, 3, 8, 8)"
        in str(e.value)
    )
    assert os.listdir(tmp_path / "out") == []
