"""The TorchServe handler, driven the way a TorchServe 0.12 worker drives it.

The handler is loaded from the exported .mar (the file TorchServe will run) with TorchServe's
own ``Context``/``RequestProcessor``; only the metrics sink is a test double.
"""

from __future__ import annotations

import importlib.util
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from ts.context import Context, RequestProcessor
from ts.utils.util import PredictionException

from servecmp.models.export import artifacts
from servecmp.models.reference import expected_logits, seeded_inputs

NAME = "tiny"
SEED = 1234


class MetricsSink:
    """Stands in for TorchServe's metrics cache (the handler's base class records HandlerTime)."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []

    def add_time(self, name: str, value: float, *args: Any, **kwargs: Any) -> None:
        self.times.append((name, value))


@pytest.fixture(scope="module")
def model_dir(
    exported_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The .mar unpacked, as TorchServe does before starting a worker."""
    root = exported_model(NAME)
    out = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(artifacts(NAME, root).mar) as z:
        z.extractall(out)
    return out


@pytest.fixture(scope="module")
def handler_module(model_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("handler", model_dir / "handler.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SERVECMP_INTRA_OP_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def make_context(model_dir: Path, yaml_config: dict | None = None) -> Context:
    manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())
    return Context(
        NAME,
        str(model_dir),
        manifest,
        1,
        None,
        "0.12.0",
        metrics=MetricsSink(),
        model_yaml_config=yaml_config or {},
    )


def loaded(handler_module: ModuleType, model_dir: Path, yaml_config: dict | None = None) -> Any:
    h = handler_module.ServecmpHandler()
    h.initialize(make_context(model_dir, yaml_config))
    return h


def run(h: Any, requests: list[tuple[str, Any]]) -> tuple[list[Any], Context]:
    """One TorchServe call: ``requests`` = [(content type, decoded body)], as the worker sees them."""
    ctx = h.context
    ctx.request_processor = [RequestProcessor({"body": {"content-type": ct}}) for ct, _ in requests]
    return h.handle([{"body": body} for _, body in requests], ctx), ctx


@pytest.fixture(scope="module")
def handler(handler_module: ModuleType, model_dir: Path) -> Any:
    h = handler_module.ServecmpHandler()
    h.initialize(make_context(model_dir))
    h.context = make_context(model_dir)
    return h


def test_only_one_class_in_handler_module(handler_module: ModuleType) -> None:
    # TorchServe's loader refuses a handler module defining more than one class.
    import inspect

    own = [
        c
        for _, c in inspect.getmembers(handler_module, inspect.isclass)
        if c.__module__ == handler_module.__name__
    ]
    assert [c.__name__ for c in own] == ["ServecmpHandler"]


def test_json_request(handler: Any) -> None:
    x = seeded_inputs(NAME, 2, 1)
    out, ctx = run(handler, [("application/json", {"instances": x.tolist()})])
    assert len(out) == 1 and ctx.get_response_content_type(0) == "application/json"
    got = np.asarray(json.loads(out[0])["predictions"], dtype=np.float32)
    np.testing.assert_allclose(got, expected_logits(NAME, x, SEED), atol=1e-4, rtol=0)
    assert ctx.get_response_status(0)[0] == 200
    assert any(n == "HandlerTime" for n, _ in ctx.metrics.times)


def test_raw_request_rest_and_grpc(handler: Any) -> None:
    x = seeded_inputs(NAME, 3, 2)
    want = expected_logits(NAME, x, SEED)
    out, ctx = run(handler, [("application/octet-stream", x.astype("<f4").tobytes())])
    assert ctx.get_response_content_type(0) == "application/octet-stream"
    np.testing.assert_allclose(np.frombuffer(out[0], "<f4").reshape(3, -1), want, atol=1e-4, rtol=0)
    # gRPC: PredictionsRequest input["data"] arrives as a bytearray under the name "data"
    ctx.request_processor = [RequestProcessor({"data": {"content-type": ""}})]
    grpc_out = handler.handle([{"data": bytearray(x.astype("<f4").tobytes())}], ctx)
    np.testing.assert_allclose(
        np.frombuffer(grpc_out[0], "<f4").reshape(3, -1), want, atol=1e-4, rtol=0
    )


def test_batch_of_requests_each_gets_its_own_rows(handler: Any) -> None:
    xs = [seeded_inputs(NAME, b, 10 + b) for b in (1, 2, 3)]
    out, _ = run(
        handler,
        [
            ("application/json", {"instances": xs[0].tolist()}),
            ("application/octet-stream", xs[1].tobytes()),
            ("application/json", {"instances": xs[2].tolist()}),
        ],
    )
    assert len(out) == 3
    np.testing.assert_allclose(
        json.loads(out[0])["predictions"], expected_logits(NAME, xs[0]), atol=1e-4
    )
    np.testing.assert_allclose(
        np.frombuffer(out[1], "<f4").reshape(2, -1), expected_logits(NAME, xs[1]), atol=1e-4
    )
    np.testing.assert_allclose(
        json.loads(out[2])["predictions"], expected_logits(NAME, xs[2]), atol=1e-4
    )


GOOD = seeded_inputs(NAME, 1, 0)
BAD_INPUTS = {
    "wrong shape": (
        ("application/json", {"instances": np.zeros((1, 3, 8, 9)).tolist()}),
        r"instances: expected shape \[B, 3, 8, 8\] with B >= 1, got \[1, 3, 8, 9\]",
    ),
    "single example without batch axis": (
        ("application/json", {"instances": GOOD[0].tolist()}),
        r"expected shape \[B, 3, 8, 8\].*got \[3, 8, 8\]",
    ),
    "empty instances": (
        ("application/json", {"instances": []}),
        r"expected shape \[B, 3, 8, 8\] with B >= 1",
    ),
    "ragged": (("application/json", {"instances": [[1.0, 2.0], [1.0]]}), "ragged"),
    "strings": (("application/json", {"instances": [[["a"] * 8] * 8] * 3}), "expected numbers"),
    "booleans": (
        ("application/json", {"instances": np.ones((1, 3, 8, 8), bool).tolist()}),
        "expected numbers",
    ),
    "no instances": (
        ("application/json", {"inputs": GOOD.tolist()}),
        r'no "instances" field \(fields: inputs\)',
    ),
    "json list": (("application/json", [1, 2, 3]), r'got a JSON list; expected JSON \{"instances"'),
    "invalid json": (("application/json", b'{"instances": [1,'), "not valid JSON"),
    "text garbage": (("text/plain", "hello"), "not valid JSON"),
    "raw wrong length": (
        ("application/octet-stream", b"\x00" * 10),
        r"raw body: expected little-endian float32 \[B, 3, 8, 8\].*multiple of 768 bytes, got 10",
    ),
    "raw empty": (("application/octet-stream", b""), "got 0 bytes"),
    "raw NaN": (
        ("application/octet-stream", np.full((1, 3, 8, 8), np.nan, "<f4").tobytes()),
        "finite",
    ),
    "json infinity": (
        ("application/json", {"instances": np.full((1, 3, 8, 8), 1e39).tolist()}),
        "finite",
    ),
    "no body": (("application/json", None), "got an empty body"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_400_naming_what_was_expected(handler: Any, case: str) -> None:
    request, message = BAD_INPUTS[case]
    with pytest.raises(PredictionException) as err:
        run(handler, [request])
    assert err.value.error_code == 400
    assert re.search(message, err.value.message), err.value.message


def test_bad_request_in_a_batch_fails_alone(handler: Any) -> None:
    x = seeded_inputs(NAME, 1, 4)
    out, ctx = run(
        handler,
        [
            ("application/octet-stream", b"\x00" * 12),
            ("application/json", {"instances": x.tolist()}),
        ],
    )
    code, phrase = ctx.get_response_status(0)
    assert code == 400 and "768 bytes" in phrase
    assert json.loads(out[0])["code"] == 400 and "768 bytes" in json.loads(out[0])["message"]
    assert ctx.get_response_status(1)[0] == 200
    np.testing.assert_allclose(
        json.loads(out[1])["predictions"], expected_logits(NAME, x), atol=1e-4
    )


def test_threads_from_environment(
    handler_module: ModuleType, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVECMP_INTRA_OP_THREADS", "1")
    loaded(handler_module, model_dir, {"handler": {"intra_op_threads": 2}})
    assert torch.get_num_threads() == 1  # the environment wins over the model config
    monkeypatch.setenv("SERVECMP_INTRA_OP_THREADS", "many")
    with pytest.raises(ValueError, match="SERVECMP_INTRA_OP_THREADS: expected a positive integer"):
        loaded(handler_module, model_dir)


def test_threads_from_model_config(handler_module: ModuleType, model_dir: Path) -> None:
    torch.set_num_threads(1)
    loaded(handler_module, model_dir, {"handler": {"intra_op_threads": 2}})
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match=r"handler\.intra_op_threads: expected a positive integer"):
        loaded(handler_module, model_dir, {"handler": {"intra_op_threads": 0}})


def test_missing_model_spec_is_named(
    handler_module: ModuleType, model_dir: Path, tmp_path: Path
) -> None:
    for f in ("model.pt", "handler.py"):
        (tmp_path / f).write_bytes((model_dir / f).read_bytes())
    (tmp_path / "MAR-INF").mkdir()
    (tmp_path / "MAR-INF" / "MANIFEST.json").write_text(
        (model_dir / "MAR-INF" / "MANIFEST.json").read_text()
    )
    with pytest.raises(RuntimeError, match=r"model_spec\.json: expected JSON with input_shape"):
        loaded(handler_module, tmp_path)
