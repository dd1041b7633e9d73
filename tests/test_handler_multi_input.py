"""The TorchServe handler takes the model card's spec: a two-input token model (int64 ids and an
attention mask) answers JSON row objects and raw concatenated tensors with PyTorch's logits, and
bad requests get a 400 naming the input. Driven as in test_handler.py, from the exported .mar."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from test_handler import MetricsSink
from ts.context import Context, RequestProcessor
from ts.utils.util import PredictionException

from servecmp.models.export import artifacts, export_model
from servecmp.models.sources import example_inputs, run_torch

FACTORY = (
    "import torch\nfrom torch import nn\n"
    "class Enc(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.emb = nn.Embedding(50, 8)\n"
    "        self.fc = nn.Linear(8, 3)\n"
    "    def forward(self, ids, mask):\n"
    "        m = mask.unsqueeze(-1).float()\n"
    "        return self.fc((self.emb(ids) * m).sum(1) / m.sum(1).clamp(min=1))\n"
    "def build():\n    return Enc()\n"
)


# every test reads the module fixture's export (the ONNX -> TF port included: seconds)
pytestmark = [pytest.mark.heavy]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    import sys

    root = tmp_path_factory.mktemp("tok")
    mod = f"tokhandler_{abs(hash(str(root))) % 10**8}"
    (root / f"{mod}.py").write_text(FACTORY)
    sys.path.insert(0, str(root))
    name = f"tokh{abs(hash(str(root))) % 10**6}"
    card = {
        "name": name,
        "source": {"factory": f"{mod}:build"},
        "inputs": [
            {"name": "input_ids", "shape": [None, 6], "dtype": "int64", "range": [0, 49]},
            {"name": "attention_mask", "shape": [None, 6], "dtype": "int64", "range": [0, 1]},
        ],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 3]}],
    }
    (root / "tok.yaml").write_text(yaml.safe_dump(card))
    export_model(str(root / "tok.yaml"), root / "out")
    from servecmp.models.registry import get_model

    spec = get_model(name)
    unpacked = root / "unpacked"
    with zipfile.ZipFile(artifacts(name, root / "out").mar) as z:
        z.extractall(unpacked)
    mspec = importlib.util.spec_from_file_location("tok_handler", unpacked / "handler.py")
    assert mspec is not None and mspec.loader is not None
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    manifest = json.loads((unpacked / "MAR-INF" / "MANIFEST.json").read_text())

    def context() -> Context:
        return Context(
            name,
            str(unpacked),
            manifest,
            1,
            None,
            "0.12.0",
            metrics=MetricsSink(),
            model_yaml_config={},
        )

    h = module.ServecmpHandler()
    h.initialize(context())
    h.context = context()
    model = spec.build_torch(1234)
    yield h, spec, model
    sys.path.remove(str(root))
    torch.set_num_threads(torch.get_num_threads())


def call(h: Any, content_type: str, body: Any) -> tuple[Any, Context]:
    ctx = h.context
    ctx.request_processor = [RequestProcessor({"body": {"content-type": content_type}})]
    return h.handle([{"body": body}], ctx)[0], ctx


def test_json_rows_and_raw_tensors_answer_pytorchs_logits(setup: tuple[Any, Any, Any]) -> None:
    h, spec, model = setup
    ids, mask = example_inputs(spec, 3, 7)
    want = run_torch(model, [ids, mask])[0]
    rows = [
        {"input_ids": i.tolist(), "attention_mask": m.tolist()}
        for i, m in zip(ids, mask, strict=True)
    ]
    out, ctx = call(h, "application/json", {"instances": rows})
    assert ctx.get_response_status(0)[0] == 200
    np.testing.assert_allclose(np.asarray(json.loads(out)["predictions"]), want, atol=1e-5, rtol=0)
    raw = ids.astype("<i8").tobytes() + mask.astype("<i8").tobytes()
    out, _ = call(h, "application/octet-stream", raw)
    np.testing.assert_allclose(np.frombuffer(out, "<f4").reshape(3, 3), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (
            "application/json",
            {"instances": [{"input_ids": [1] * 6}]},
            "every row needs 'attention_mask'",
        ),
        (
            "application/json",
            {"instances": [{"input_ids": [0.5] * 6, "attention_mask": [1] * 6}]},
            "instances.input_ids: expected int64",
        ),
        (
            "application/json",
            {"instances": [[1] * 6]},
            "list of objects with input_ids, attention_mask",
        ),
        ("application/octet-stream", b"\x00" * 10, "positive multiple of 96 bytes"),
    ],
)
def test_bad_requests_name_the_input(
    setup: tuple[Any, Any, Any], content_type: str, body: Any, expected: str
) -> None:
    h, _, _ = setup
    # a call whose every request is bad raises; TorchServe answers it with this code and message
    with pytest.raises(PredictionException) as err:
        call(h, content_type, body)
    assert err.value.error_code == 400 and expected in err.value.message
