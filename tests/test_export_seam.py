"""One export step through the seam (servecmp/models/export.py): every adapter declares the
artifact it serves, the export writes the sources once and lets adapters package; every
artifact is checked against PyTorch, a differing one is refused with its numbers, and nothing is
left half-written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from servecmp.models.export import ExportError, artifacts, export_model, read_records
from servecmp.servers import registry

FACTORIES = '''
import torch
from torch import nn

class Branchy(nn.Module):
    """Data-dependent control flow: torch.jit.trace bakes in the branch of its example."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 4)
    def forward(self, x):
        y = self.fc(x.flatten(1))
        if bool(x.sum() > 0):
            return y
        return -y

def plain(seed=0):
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4))

def branchy():
    return Branchy()
'''


@pytest.fixture
def card_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    mod = f"seamfactories_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{mod}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, fn in (("plainmodel", "plain"), ("branchymodel", "branchy")):
        card = {
            "name": f"{name}{abs(hash(str(tmp_path))) % 10**6}",
            "source": {"factory": f"{mod}:{fn}"},
            "inputs": [{"name": "input", "shape": [None, 3, 2, 2]}],
            "outputs": [{"name": "logits", "classification": True, "shape": [None, 4]}],
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(card))
    return tmp_path


def test_every_adapter_declares_an_artifact_kind() -> None:
    kinds = {a.name: a.artifact_kind() for a in registry.adapters()}
    assert kinds["torchserve"] == "torchserve_mar"
    assert kinds["kserve"] == "torchscript" and kinds["pytorch"] == "torchscript"
    assert kinds["tfserving"] == "savedmodel" and kinds["tensorflow"] == "savedmodel"
    assert set(kinds.values()) <= {"torchserve_mar", "torchscript", "onnx", "savedmodel"}


def test_user_model_without_tf_twin_serves_pytorch_servers_only(
    card_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A port that fails (here: its venv is missing) refuses the TF artifacts only.
    from servecmp.models.port import VENV_ENV

    monkeypatch.setenv(VENV_ENV, str(card_dir / "no-port-venv"))
    out = card_dir / "out"
    rec = export_model(str(card_dir / "plainmodel.yaml"), out)
    art = artifacts(rec.model, out)
    assert art.torchscript.is_file() and art.mar.is_file()
    assert not art.savedmodel.exists()
    assert rec.servers["torchserve"].artifact == str(art.mar)
    assert rec.servers["kserve"].artifact == str(art.torchscript)
    assert rec.servers["pytorch"].artifact == str(art.torchscript)
    assert set(rec.unavailable) == {"tfserving", "tensorflow"}
    assert "no SavedModel" in rec.unavailable["tfserving"]
    assert (
        "port failed" in rec.unavailable["tfserving"]
        and "no-port-venv" in rec.unavailable["tensorflow"]
    )
    kinds = {r["artifact"]: r for r in rec.parity}
    assert kinds["torchscript"]["passed"] and kinds["torchscript"]["argmax_agree"] == 1.0
    assert kinds["torchserve_mar"]["passed"] and "byte for byte" in kinds["torchserve_mar"]["note"]
    saved = read_records(rec.model, out)[1]
    assert saved["torchserve"]["artifact"] == str(art.mar)  # friction.packaging reads rec[server]
    assert f".staging-{rec.model}-v1" not in json.dumps(saved)  # paths name the final places
    assert sorted(p.name for p in out.iterdir()) == [rec.model]
    # the run's friction records say why TF Serving has nothing to package
    from servecmp.results.friction import read_friction
    from servecmp.run import friction

    friction.packaging(card_dir, {1: saved}, {"torchserve", "tfserving"})
    recs = {(r.server, r.metric): r for r in read_friction(card_dir)[0]}
    assert {s for s, _ in recs} == {"torchserve", "tfserving"}  # no column for a server not run
    assert not recs[("tfserving", "packaging_s")].available
    assert "no SavedModel" in recs[("tfserving", "packaging_s")].reason
    assert recs[("torchserve", "packaging_s")].value == saved["torchserve"]["seconds"]


@pytest.mark.heavy  # a whole export: seconds
def test_an_artifact_that_differs_is_refused_with_its_numbers(card_dir: Path) -> None:
    out = card_dir / "out"
    with pytest.raises(ExportError) as err:
        export_model(str(card_dir / "branchymodel.yaml"), out)
    msg = str(err.value)
    assert "refused" in msg and "FAIL torchscript (torch.jit)" in msg and "max|d|=" in msg
    assert "argmax agree" in msg
    # nothing half-written: no staging folder, no artifact, no record
    assert not out.exists() or list(out.rglob("*")) == []


def test_run_card_counts_parameters_flops_and_body_bytes(exported_model) -> None:  # type: ignore[no-untyped-def]
    from servecmp.experiment import Encoding
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.reference import torch_model
    from servecmp.models.registry import get_model
    from servecmp.models.runcard import body_bytes, run_card

    card = get_model("tiny")
    record = read_records("tiny", exported_model("tiny"))[1]
    payloads = PayloadSet.build(card, 1, 1, 2)
    sizes = body_bytes(payloads, [Encoding.raw, Encoding.json])
    data = run_card(card, torch_model("tiny"), record, sizes)
    assert data["parameters"] == 3 * 8 * 8 * 10 + 10
    assert data["flops_per_example"] == 2 * 3 * 8 * 8 * 10  # one multiply-add per weight
    assert sizes["raw"] == 3 * 8 * 8 * 4 and sizes["json"] > sizes["raw"]
    assert set(data["artifact_bytes"]) >= {"torchserve", "tfserving", "kserve"}
    # the ONNX export is checked in ONNX Runtime wherever onnxruntime is installed (a dependency)
    onnx = {"onnx"} if importlib.util.find_spec("onnxruntime") is not None else set()
    assert {r["artifact"] for r in data["parity"]} == {
        "torchscript",
        "torchserve_mar",
        "savedmodel",
        *onnx,
    }


@pytest.mark.heavy  # a whole export: seconds
def test_two_input_token_model_exports_with_parity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = f"tokfactory_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{mod}.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class Enc(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.emb = nn.Embedding(100, 8)\n"
        "        self.fc = nn.Linear(8, 3)\n"
        "    def forward(self, ids, mask):\n"
        "        m = mask.unsqueeze(-1).float()\n"
        "        return self.fc((self.emb(ids) * m).sum(1) / m.sum(1).clamp(min=1))\n"
        "def build():\n    return Enc()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"tok{abs(hash(str(tmp_path))) % 10**6}"
    card = {
        "name": name,
        "source": {"factory": f"{mod}:build"},
        "inputs": [
            {"name": "input_ids", "shape": [None, 12], "dtype": "int64", "range": [0, 99]},
            {"name": "attention_mask", "shape": [None, 12], "dtype": "int64", "range": [0, 1]},
        ],
        "outputs": [{"name": "logits", "classification": True, "top_k": 2, "shape": [None, 3]}],
    }
    (tmp_path / "tok.yaml").write_text(yaml.safe_dump(card))
    rec = export_model(str(tmp_path / "tok.yaml"), tmp_path / "out")
    rows = {r["artifact"]: r for r in rec.parity}
    assert rows["torchscript"]["passed"] and rows["torchscript"]["topk_agree"] == 1.0
    assert rows["torchserve_mar"]["passed"]
    import zipfile

    with zipfile.ZipFile(artifacts(name, tmp_path / "out").mar) as z:
        spec = json.loads(z.read("model_spec.json"))
    assert [i["name"] for i in spec["inputs"]] == ["input_ids", "attention_mask"]
    assert spec["inputs"][0]["dtype"] == "int64"


def test_export_cli_takes_a_card_file(
    card_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from servecmp.cli import main
    from servecmp.models.port import VENV_ENV

    monkeypatch.setenv(VENV_ENV, str(card_dir / "no-port-venv"))  # no TF artifacts, quickly

    out = card_dir / "cli-out"
    assert main(["export", "--model", str(card_dir / "plainmodel.yaml"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parity: PASS torchserve_mar" in printed
    assert "tfserving: unavailable: no SavedModel" in printed
    assert main(["export", "--model", str(card_dir / "branchymodel.yaml"), "--out", str(out)]) == 1
    assert "FAIL torchscript" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["not_a_model", "import_fails"])
def test_a_bad_source_leaves_nothing_behind(tmp_path: Path, bad: str) -> None:
    from servecmp.models.card import ModelCardError

    source = (
        {"torchscript": "m.pt"} if bad == "not_a_model" else {"factory": "no_such_pkg_xyz.mod:f"}
    )
    (tmp_path / "m.pt").write_text("not a model")
    card = {
        "name": f"bad{abs(hash(str(tmp_path))) % 10**6}",
        "source": source,
        "inputs": [{"name": "input", "shape": [None, 4]}],
        "outputs": [{"name": "y", "shape": [None, 2]}],
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(card))
    out = tmp_path / "out"
    with pytest.raises(ModelCardError, match="source"):
        export_model(str(tmp_path / "bad.yaml"), out)
    assert not out.exists() or list(out.rglob("*")) == []
