"""A model no one here wrote goes through the one export step to every artifact: a fresh
two-layer ``nn.Module`` (its factory written by the test) is exported to TorchScript, the .mar,
ONNX and, through the ONNX -> TensorFlow port (onnx2tf in .venv-port), a SavedModel; every
artifact has a passing parity row, and the in-process TF baseline answers the PyTorch outputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

from servecmp.models.port import port_venv

pytestmark = [
    pytest.mark.heavy,  # converts and loads models; starts no server, sends no load
    pytest.mark.skipif(
        not (port_venv() / "bin" / "python").exists(),
        reason=f"the port venv {port_venv()} is missing (scripts/setup-port.sh)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("onnx") is None, reason="the onnx package is not installed"
    ),
]

FACTORY = """
import torch
from torch import nn

class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.out = nn.Linear(6, 5)

    def forward(self, x):
        return self.out(torch.relu(self.conv(x)).mean(dim=(2, 3)))

def build():
    return TwoLayer()
"""


def test_fresh_module_exports_and_ports_with_parity_on_every_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servecmp.experiment import Protocol, Target
    from servecmp.load.clients import Outcome, call, make_client
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.export import artifacts, export_model
    from servecmp.models.registry import get_model

    tag = abs(hash(str(tmp_path))) % 10**8
    (tmp_path / f"twolayer_{tag}.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    card_file = tmp_path / "twolayer.yaml"
    card_file.write_text(
        yaml.safe_dump(
            {
                "name": f"twolayer{tag}",
                "source": {"factory": f"twolayer_{tag}:build"},
                "inputs": [{"name": "input", "shape": [None, 3, 8, 8], "range": [-2, 2]}],
                "outputs": [
                    {"name": "logits", "classification": True, "top_k": 2, "shape": [None, 5]}
                ],
            }
        )
    )
    out = tmp_path / "out"
    rec = export_model(str(card_file), out)
    art = artifacts(rec.model, out)

    assert art.onnx.is_file() and (art.savedmodel / "saved_model.pb").is_file()
    assert set(rec.sources) >= {"torchscript", "onnx", "savedmodel"}
    assert rec.unavailable == {}
    assert rec.servers["tfserving"].artifact == str(art.savedmodel)
    assert rec.servers["tensorflow"].artifact == str(art.savedmodel)
    assert any("onnx2tf" in step for step in rec.sources["savedmodel"].steps)
    assert any(n.startswith("port: onnx2tf") for n in rec.notes), rec.notes
    rows = {r["artifact"]: r for r in rec.parity}
    want = {"torchscript", "torchserve_mar", "savedmodel"}
    if importlib.util.find_spec("onnxruntime") is not None:
        want.add("onnx")
    assert set(rows) == want
    for name, row in rows.items():
        assert row["passed"] and row["argmax_agree"] == 1.0 and row["topk_agree"] == 1.0, name
        assert row["max_abs_diff"] <= row["atol"], name

    # the TF in-process baseline serves the ported SavedModel and answers what PyTorch computes
    card = get_model(str(card_file))
    payloads = PayloadSet.build(card, 7, 2, 4, weights_seed=rec.seed)
    target = Target(server="tensorflow", protocol=Protocol.inprocess)
    with make_client(target, str(art.tfserving_base), payloads, 5.0, strict_threads=False) as c:
        for i in range(len(payloads)):
            assert call(c, i) is Outcome.ok  # the client checks the answer against `expected`
            np.testing.assert_allclose(c.send(i), payloads.expected[i], atol=1e-4, rtol=0)


FLATTEN = """
from torch import nn

def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
"""


def test_flatten_then_linear_ports_with_parity_at_every_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnx2tf 1.29.24's strict-mode Flatten check picks axis 0 on batch-1 validation data and
    bakes the batch as 1 ("Matrix size-incompatible: In[0]: [1,24], In[1]: [12,4]" at batch 2);
    the port's ONNX Runtime check at batch 2 catches it and converts without strict mode."""
    from servecmp.experiment import Protocol, Target
    from servecmp.load.clients import Outcome, call, make_client
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.export import artifacts, export_model
    from servecmp.models.registry import get_model

    tag = abs(hash(str(tmp_path))) % 10**8
    (tmp_path / f"flatnet_{tag}.py").write_text(FLATTEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    card_file = tmp_path / "flat.yaml"
    card_file.write_text(
        yaml.safe_dump(
            {
                "name": f"flat{tag}",
                "source": {"factory": f"flatnet_{tag}:build"},
                "inputs": [{"name": "input", "shape": [None, 3, 2, 2]}],
                "outputs": [{"name": "logits", "classification": True, "shape": [None, 4]}],
            }
        )
    )
    rec = export_model(str(card_file), tmp_path / "out")
    assert rec.unavailable == {}, rec.unavailable
    rows = {r["artifact"]: r for r in rec.parity}
    assert rows["savedmodel"]["passed"], rows["savedmodel"]
    assert any("converted with disable_strict_mode" in n for n in rec.notes), rec.notes

    card = get_model(str(card_file))
    art = artifacts(rec.model, tmp_path / "out")
    for batch in (1, 3):
        payloads = PayloadSet.build(card, 5, batch, 2, weights_seed=rec.seed)
        target = Target(server="tensorflow", protocol=Protocol.inprocess)
        with make_client(target, str(art.tfserving_base), payloads, 5.0, strict_threads=False) as c:
            for i in range(len(payloads)):
                assert call(c, i) is Outcome.ok, batch
                np.testing.assert_allclose(c.send(i), payloads.expected[i], atol=1e-4, rtol=0)
