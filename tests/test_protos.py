"""Run-time compiled gRPC stubs (servecmp/load/clients/protos.py): one module, named proto sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from servecmp.load.clients import protos

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_point_into_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stub cache and the KServe venv are the checkout's, wherever the module sits in it."""
    monkeypatch.delenv("SERVECMP_GRPC_STUB_DIR", raising=False)
    monkeypatch.delenv("SERVECMP_KSERVE_VENV", raising=False)
    assert protos.default_cache_root() == ROOT / "build" / "grpc_stubs"
    assert protos.kserve_venv() == ROOT / ".venv-kserve"


def test_unknown_set_is_named() -> None:
    with pytest.raises(protos.StubError, match="expected one of torchserve, oip, got 'triton'"):
        protos.load("triton")


def test_oip_source_override_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SERVECMP_OIP_PB2", str(tmp_path / "missing_pb2.py"))
    with pytest.raises(protos.StubError, match=r"SERVECMP_OIP_PB2=.*no such file"):
        protos.stub_dir("oip", tmp_path)


def test_torchserve_stubs_compile_once_per_source(tmp_path: Path) -> None:
    try:
        jar = protos.torchserve_jar()
    except protos.StubError as err:
        pytest.skip(str(err))
    d = protos.stub_dir("torchserve", tmp_path)
    grpc_py = d / protos.SETS["torchserve"].package / "inference_pb2_grpc.py"
    assert (
        "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions" in grpc_py.read_text()
    )
    assert (
        d.name.startswith("torchserve-") and protos.stub_dir("torchserve", tmp_path, jar) == d
    )  # cached
    assert [p.name for p in tmp_path.iterdir()] == [d.name]  # no scratch directory left behind
    pb2, pb2_grpc = protos.load("torchserve", tmp_path)
    assert hasattr(pb2_grpc, "InferenceAPIsServiceStub")
    assert pb2.PredictionsRequest(model_name="m", input={"data": b"x"}).input["data"] == b"x"
