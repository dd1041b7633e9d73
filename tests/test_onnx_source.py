"""An ONNX-source card (its file written here by torch.onnx.export from a fresh module) is refused
by the export with the reason (no PyTorch reference: the PyTorch-framework servers need
TorchScript, onnx2torch needs torchvision), and nothing is written."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import yaml

from servecmp.models.card import ModelCardError
from servecmp.models.export import export_model


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx is not installed")
def test_onnx_source_is_refused_with_the_reason(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(6, 3)).eval()
    torch.onnx.export(
        model,
        (torch.zeros(2, 6),),
        str(tmp_path / "m.onnx"),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    card = {
        "name": f"onnxsrc{abs(hash(str(tmp_path))) % 10**6}",
        "source": {"onnx": "m.onnx"},
        "inputs": [{"name": "input", "shape": [None, 6]}],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 3]}],
    }
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(card))
    out = tmp_path / "out"
    with pytest.raises(ModelCardError) as err:
        export_model(str(tmp_path / "card.yaml"), out)
    msg = str(err.value)
    assert "card.yaml" in msg and "source.onnx" in msg
    assert "need TorchScript" in msg and "torchvision" in msg and "PyTorch reference" in msg
    assert not out.exists() or list(out.rglob("*")) == []
