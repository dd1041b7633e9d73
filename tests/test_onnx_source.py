"""An ONNX file as a model's source (its file written here by torch.onnx.export from a fresh
module, or built with onnx.helper): the card check against the graph, ONNX Runtime as the
reference, the export's artifacts and parity rows, and each refusal with its field and nothing
written."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from servecmp.models.card import ModelCardError, load_card
from servecmp.models.export import NO_TF_TARGET, export_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnx / onnxruntime not installed (scripts/setup.sh)",
)

IMAGE_OUT = [{"name": "logits", "classification": True, "shape": [None, 3]}]


def _export(model: torch.nn.Module, example: tuple[Any, ...], path: Path, names: list[str]) -> None:
    torch.onnx.export(
        model.eval(),
        example,
        str(path),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={n: {0: "batch"} for n in [*names, "logits"]},
        dynamo=False,
    )


def _card(tmp: Path, inputs: list[dict[str, Any]], name: str = "onnxsrc", **extra: Any) -> Path:
    # a model name is one card per process: unique per test folder
    unique = f"{name}{abs(hash(str(tmp))) % 10**6}"
    card = {"name": unique, "source": {"onnx": "m.onnx"}, "inputs": inputs, "outputs": IMAGE_OUT}
    card.update(extra)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(card))
    return path


def _linear(tmp: Path) -> None:
    torch.manual_seed(0)
    _export(torch.nn.Sequential(torch.nn.Linear(6, 3)), (torch.zeros(2, 6),), tmp / "m.onnx", ["x"])


def _refused(card: Path, out: Path) -> str:
    with pytest.raises(ModelCardError) as err:
        export_model(str(card), out, skip_port=NO_TF_TARGET)
    assert not out.exists() or [p for p in out.rglob("*") if p.is_file()] == []
    return str(err.value)


def test_an_onnx_card_exports_its_own_file_and_checks_every_artifact_against_onnxruntime(
    tmp_path: Path,
) -> None:
    _linear(tmp_path)
    card = _card(tmp_path, [{"name": "x", "shape": [None, 6]}])
    rec = export_model(str(card), tmp_path / "out", skip_port=NO_TF_TARGET)
    assert "torchscript" not in rec.sources  # no TorchScript for an ONNX card
    onnx_art = Path(rec.sources["onnx"].artifact)
    assert onnx_art.read_bytes() == (tmp_path / "m.onnx").read_bytes()
    assert any("sha256" in s for s in rec.sources["onnx"].steps)
    rows = {r["artifact"]: r for r in rec.parity}
    assert rows["onnx"]["runtime"] == "onnxruntime" and rows["onnx"]["passed"]
    assert rows["onnx"]["max_abs_diff"] == 0.0
    assert "byte for byte" in rows["onnx"]["note"]
    assert "torchscript" not in rows
    if "torchserve" in rec.servers:  # TorchServe's .mar carries the .onnx as its serialized file
        with zipfile.ZipFile(rec.servers["torchserve"].artifact) as z:
            assert z.read("model.onnx") == onnx_art.read_bytes()
            assert "model.pt" not in z.namelist()
        assert (
            rows["torchserve_mar"]["passed"] and rows["torchserve_mar"]["runtime"] == "onnxruntime"
        )
    assert rec.libraries.get("onnxruntime")


def test_the_reference_of_an_onnx_card_is_onnxruntime_and_takes_int64_tokens(
    tmp_path: Path,
) -> None:
    from servecmp.models.onnx_source import OnnxModel
    from servecmp.models.sources import example_inputs, run_torch

    class Tok(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(50, 8)
            self.fc = torch.nn.Linear(8, 3)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            m = mask.unsqueeze(-1).float()
            return self.fc((self.emb(ids) * m).sum(1) / m.sum(1).clamp(min=1))

    torch.manual_seed(1)
    tok = Tok().eval()
    example = (torch.zeros(2, 7, dtype=torch.int64), torch.ones(2, 7, dtype=torch.int64))
    _export(tok, example, tmp_path / "m.onnx", ["input_ids", "attention_mask"])
    path = _card(
        tmp_path,
        [
            {"name": "input_ids", "shape": [None, 7], "dtype": "int64", "range": [0, 49]},
            {"name": "attention_mask", "shape": [None, 7], "dtype": "int64", "range": [0, 1]},
        ],
        name="tok",
    )
    card = load_card(path)
    ref = card.build_torch(0)
    assert isinstance(ref, OnnxModel)
    x = example_inputs(card, 4, 5)
    with torch.inference_mode():
        want = tok(*[torch.from_numpy(a) for a in x]).numpy()
    np.testing.assert_allclose(run_torch(ref, x)[0], want, atol=1e-5)


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"PK\x03\x04 this is a zip, not a protobuf")
    msg = _refused(_card(tmp_path, [{"name": "x", "shape": [None, 6]}]), tmp_path / "out")
    assert "source.onnx: not an ONNX model:" in msg and "m.onnx" in msg and "onnxsrc.yaml" in msg


@pytest.mark.parametrize(
    ("inputs", "field", "graph_says"),
    [
        ([{"name": "input", "shape": [None, 6]}], "inputs:", "['x']"),
        (
            [{"name": "x", "shape": [None, 6], "dtype": "int64", "range": [0, 3]}],
            "inputs.0.dtype: declared int64",
            "is float32",
        ),
        ([{"name": "x", "shape": [None, 7]}], "inputs.0.shape: declared [None, 7]", "[None, 6]"),
        ([{"name": "x", "shape": [None, 2, 3]}], "inputs.0.shape", "[None, 6]"),
    ],
)
def test_card_inputs_unlike_the_graph_are_refused_naming_the_field(
    tmp_path: Path, inputs: list[dict[str, Any]], field: str, graph_says: str
) -> None:
    _linear(tmp_path)
    msg = _refused(_card(tmp_path, inputs), tmp_path / "out")
    assert field in msg and graph_says in msg, msg


def test_card_outputs_unlike_the_graph_are_refused(tmp_path: Path) -> None:
    _linear(tmp_path)
    two = [*IMAGE_OUT, {"name": "extra"}]
    path = _card(tmp_path, [{"name": "x", "shape": [None, 6]}])
    data = yaml.safe_load(path.read_text())
    data["outputs"] = two
    path.write_text(yaml.safe_dump(data))
    msg = _refused(path, tmp_path / "out")
    assert "outputs: the card declares 2 output(s)" in msg and "the ONNX graph has 1" in msg


def _graph(tmp: Path, nodes: list[Any], opsets: list[Any] | None = None) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 6])],
    )
    model = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp / "m.onnx"))


def test_non_deterministic_outputs_are_refused(tmp_path: Path) -> None:
    from onnx import helper

    _graph(
        tmp_path,
        [
            helper.make_node("RandomNormalLike", ["x"], ["noise"], name="sample"),
            helper.make_node("Add", ["x", "noise"], ["logits"], name="add"),
        ],
    )
    out = [{"name": "logits", "classification": True, "shape": [None, 6]}]
    path = _card(tmp_path, [{"name": "x", "shape": [None, 6]}], outputs=out)
    msg = _refused(path, tmp_path / "out")
    assert "output 'logits' is not deterministic" in msg and "Random" in msg


def test_an_op_onnxruntime_cannot_run_is_refused_naming_the_op_and_node(tmp_path: Path) -> None:
    from onnx import helper

    _graph(
        tmp_path,
        [helper.make_node("Frobnicate", ["x"], ["logits"], name="frob_1", domain="com.example")],
        [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
    )
    out = [{"name": "logits", "classification": True, "shape": [None, 6]}]
    path = _card(tmp_path, [{"name": "x", "shape": [None, 6]}], outputs=out)
    msg = _refused(path, tmp_path / "out")
    assert "cannot run op 'Frobnicate'" in msg and "'frob_1'" in msg and "com.example" in msg


def test_a_server_without_the_onnx_path_refuses_an_onnx_card_by_name() -> None:
    from servecmp.servers.kserve import KServeAdapter

    class Older(KServeAdapter):
        name = "older"
        label = "Older Server"
        onnx_source = False

    older = Older()
    assert older.artifact_kind("onnx") == "onnx"
    assert older.artifact_kind("torchscript") == "torchscript"
    assert older.source_refusal("onnx") == (
        "Older Server cannot serve an ONNX source (model card source.onnx) yet"
    )
    assert older.source_refusal("factory") == ""


def test_an_experiment_naming_onnxruntime_as_a_server_is_pointed_to_the_pytorch_baseline() -> None:
    from servecmp.experiment import Target

    with pytest.raises(ValueError, match=r"server 'onnxruntime' is unknown .*server: pytorch"):
        Target(server="onnxruntime", protocol="inprocess")  # type: ignore[arg-type]


def test_an_experiment_refuses_a_target_whose_server_cannot_serve_an_onnx_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servecmp.experiment import ExperimentError, parse_experiment
    from servecmp.servers.kserve import KServeAdapter

    _linear(tmp_path)
    _card(tmp_path, [{"name": "x", "shape": [None, 6]}], name="refusedsrc")
    exp = {
        "name": "onnx-refused",
        "model": str(tmp_path / "refusedsrc.yaml"),
        "targets": [
            {"server": "torchserve", "protocol": "rest"},
            {"server": "kserve", "protocol": "rest"},
        ],
    }
    parse_experiment(exp)  # every server here serves it
    monkeypatch.setattr(KServeAdapter, "onnx_source", False)
    with pytest.raises(ExperimentError) as err:
        parse_experiment(exp)
    msg = str(err.value)
    assert "kserve-rest-json" in msg and "cannot serve an ONNX source" in msg
    assert "torchserve-rest-json" not in msg


def test_torchserve_handler_runs_the_mar_onnx_on_the_workers_thread_budget(tmp_path: Path) -> None:
    """The .mar's model.onnx, loaded by the handler as a TorchServe 0.12 worker does: an ONNX
    Runtime session with the worker's threads (not BaseHandler's every host core), inter-op 1,
    answering what the reference answers."""
    import importlib.util as iu
    import json

    from ts.context import Context, RequestProcessor

    from servecmp.models.sources import run_torch

    _linear(tmp_path)
    card = _card(tmp_path, [{"name": "x", "shape": [None, 6]}], name="tshandler")
    rec = export_model(str(card), tmp_path / "out", skip_port=NO_TF_TARGET)
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(rec.servers["torchserve"].artifact) as z:
        z.extractall(unpacked)
    spec = iu.spec_from_file_location("onnx_handler", unpacked / "handler.py")
    assert spec is not None and spec.loader is not None
    mod = iu.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Sink:
        def add_time(self, *args: Any, **kwargs: Any) -> None:
            pass

    manifest = json.loads((unpacked / "MAR-INF" / "MANIFEST.json").read_text())
    ctx = Context(
        rec.model,
        str(unpacked),
        manifest,
        1,
        None,
        "0.12.0",
        metrics=Sink(),
        model_yaml_config={"handler": {"intra_op_threads": 1}},
    )
    before = torch.get_num_threads()
    try:
        h = mod.ServecmpHandler()
        h.initialize(ctx)
    finally:
        torch.set_num_threads(before)
    opts = h.model.get_session_options()
    assert h._ort and opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    x = np.arange(12, dtype=np.float32).reshape(2, 6) / 8
    ctx.request_processor = [RequestProcessor({"body": {"content-type": "application/json"}})]
    (answer,) = h.handle([{"body": {"instances": x.tolist()}}], ctx)
    want = run_torch(load_card(card).build_torch(0), [x])[0]
    np.testing.assert_allclose(np.array(json.loads(answer)["predictions"]), want, atol=1e-6)


def test_the_pytorch_baseline_runs_an_onnx_card_in_onnxruntime_on_its_thread_budget(
    tmp_path: Path,
) -> None:
    """The `pytorch` in-process target given the .onnx: ONNX Runtime sessions (one per worker)
    with intra-op = the baseline's threads, answering what the reference answers."""
    from servecmp.experiment import Target
    from servecmp.load.clients.base import Outcome, call, make_client
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.registry import get_model

    torch.manual_seed(2)  # payloads take an image ([C, H, W]) for one float input
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3), torch.nn.Flatten(1), torch.nn.Linear(12, 3))
    _export(net, (torch.zeros(2, 3, 4, 4),), tmp_path / "m.onnx", ["x"])
    card = get_model(str(_card(tmp_path, [{"name": "x", "shape": [None, 3, 4, 4]}], name="base")))
    payloads = PayloadSet.build(card, 3, 2, 3)
    target = Target(server="pytorch", protocol="inprocess")  # type: ignore[arg-type]
    client = make_client(
        target, str(tmp_path / "m.onnx"), payloads, 5.0, intra_op_threads=1, workers=2
    )
    assert client.threads_effective == 1  # type: ignore[attr-defined]
    assert [call(client, i) for i in range(len(payloads))] == [Outcome.ok] * len(payloads)


def test_the_breakdown_names_onnx_runtime_not_pytorch_for_an_onnx_cards_baseline() -> None:
    from types import SimpleNamespace

    from servecmp.report.tables.breakdown import version_of

    onnx_run: Any = SimpleNamespace(
        meta=SimpleNamespace(versions={"pytorch": "ONNX Runtime 1.23.0 (in-process)"})
    )
    assert version_of(onnx_run, "pytorch") == "ONNX Runtime 1.23.0 (in-process)"
    torch_run: Any = SimpleNamespace(meta=SimpleNamespace(versions={"torchserve": "0.12.0"}))
    assert version_of(torch_run, "torchserve") == "TorchServe (ran 0.12.0)"


def test_an_op_the_port_cannot_convert_leaves_tf_targets_unavailable_with_op_and_node(
    tmp_path: Path,
) -> None:
    """ONNX Runtime runs CastLike, onnx2tf 1.29.24 has no converter for it: the ONNX card's
    PyTorch-framework servers keep their artifacts, TF Serving and the TF baseline are
    unavailable with the port's message naming the op and its node."""
    from onnx import TensorProto, helper, numpy_helper

    from servecmp.models.port import port_venv

    if not (port_venv() / "bin" / "python").exists():
        pytest.skip(f"the port venv {port_venv()} is missing (scripts/setup-port.sh)")
    import onnx

    like = numpy_helper.from_array(np.zeros(1, dtype=np.float64), "like")
    graph = helper.make_graph(
        [
            helper.make_node("CastLike", ["x", "like"], ["wide"], name="cast_like_1"),
            helper.make_node("Cast", ["wide"], ["logits"], to=TensorProto.FLOAT, name="narrow"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 6])],
        [like],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    out = [{"name": "logits", "classification": True, "shape": [None, 6]}]
    card = _card(tmp_path, [{"name": "x", "shape": [None, 6]}], name="portfail", outputs=out)
    rec = export_model(str(card), tmp_path / "out")
    for tf in ("tfserving", "tensorflow"):
        why = rec.unavailable[tf]
        assert "port failed" in why and "CastLike" in why and "cast_like_1" in why, why
    assert "torchserve" in rec.servers and all(r["passed"] for r in rec.parity)
