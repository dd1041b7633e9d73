"""Done-when for an ONNX file as a model's source: a file no one on the team wrote (exported here
from a fresh ``nn.Module`` with ``torch.onnx.export``), described by a card with
``source: {onnx: ...}``, goes through ``servecmp run`` on every server that runs here (REST and
gRPC), and the in-process baseline, with ONNX Runtime as the reference; every answer checked.

One shortened run per model shape: the image model on every server (TorchServe, KServe, Triton,
Ray Serve; a server whose venv is missing is listed unavailable with that reason) and the TF
baseline on the file's SavedModel port, the token model (int64 ids + mask) on TorchServe and one OIP server (KServe).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import run_budget
import torch
import yaml
from test_own_model_e2e import Fresh
from torch import nn

from servecmp.cli import main
from servecmp.results.store import RunStore
from servecmp.servers.torchserve.local import TorchServeServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.torchserve,
    pytest.mark.kserve,
    pytest.mark.triton,
    pytest.mark.rayserve,
]

SHORT_LOAD: dict[str, Any] = {
    "profile": "closed_loop",
    "concurrency": [1],
    "warmup_s": 0.5,
    "stability": {"window_s": 1.0, "windows": 2, "max_windows": 2},
    "burn_in": {"max_s": 2.0, "window_s": 0.5},
}
SERVERS = ("torchserve", "kserve", "triton", "rayserve")


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(120, 16)
        self.fc = nn.Linear(16, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        m = attention_mask.unsqueeze(-1).float()
        return self.fc((self.emb(input_ids) * m).sum(1) / m.sum(1).clamp(min=1))


def _run(
    root: Path,
    model: nn.Module,
    example: tuple[Any, ...],
    card: dict[str, Any],
    targets: list[dict[str, Any]],
) -> Path:
    names = [i["name"] for i in card["inputs"]]
    torch.onnx.export(
        model.eval(),
        example,
        str(root / "user.onnx"),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={n: {0: "batch"} for n in [*names, "logits"]},
        dynamo=False,
    )
    (root / "user.yaml").write_text(yaml.safe_dump({**card, "source": {"onnx": "user.onnx"}}))
    exp = {
        "name": f"onnx-{card['name']}",
        "model": "user.yaml",
        "targets": targets,
        "payload": {"distinct_inputs": 4},
        "load": SHORT_LOAD,
        "friction": run_budget.friction(),
    }
    (root / "exp.yaml").write_text(yaml.safe_dump(exp))
    runs = root / "runs"
    argv = ["run", str(root / "exp.yaml"), "--runs", str(runs), "--artifacts", str(root / "build")]
    assert main([*argv, "--no-prometheus"]) == 0
    (out,) = runs.iterdir()
    return out


def _server_targets(servers: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"server": s, "protocol": p} for s in servers for p in ("rest", "grpc")]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = TorchServeServer.availability()
    if reason:
        pytest.skip(reason)
    torch.manual_seed(3)
    card = {
        "name": "onnximg",
        "description": "an ONNX file no one on the team wrote",
        "inputs": [{"name": "input", "shape": [None, 3, 16, 16], "dtype": "float32"}],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 5]}],
    }
    targets = [
        *_server_targets(SERVERS),
        {"server": "pytorch", "protocol": "inprocess"},
        {"server": "tensorflow", "protocol": "inprocess"},  # the port of the same file
    ]
    return _run(
        tmp_path_factory.mktemp("onnximg"), Fresh(), (torch.zeros(2, 3, 16, 16),), card, targets
    )


def _assert_every_answer_checked(run_dir: Path, servers: tuple[str, ...]) -> None:
    steps = {s.target: s for s in RunStore(run_dir).read_steps().steps}
    avail = {a.target: a for a in RunStore(run_dir).read_targets()}
    served = [n for n in avail if n.split("-")[0] in servers]
    assert {n.split("-")[1] for n in served} >= {"rest", "grpc"}
    for target in [*served, "pytorch-inprocess"]:
        if not avail[target].available:  # only a missing server venv, said so
            assert "virtual environment" in (avail[target].reason or ""), avail[target].reason
            continue
        s = steps[target]
        assert s.ok > 0 and s.transport_error_count == 0 and s.wrong_answers == 0, (
            target,
            s.transport_errors,
            s.invalid_reason,
        )
    assert steps["torchserve-rest-json"].ok > 0  # TorchServe always runs here


def _assert_onnx_runtime_is_the_reference(run_dir: Path) -> None:
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["source"]["kind"] == "onnx" and card["runtime"].startswith("ONNX Runtime ")
    rows = {r["artifact"]: r for r in card["parity"]}
    assert "torchscript" not in rows
    assert rows["onnx"]["passed"] and rows["onnx"]["runtime"] == "onnxruntime"
    assert rows["torchserve_mar"]["passed"] and "model.onnx" in rows["torchserve_mar"]["note"]
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["versions"]["pytorch"].startswith("ONNX Runtime ")
    assert meta["versions"]["onnxruntime"]
    assert any("ONNX Runtime" in n and "no PyTorch" in n for n in meta["notes"])
    md = (run_dir / "report" / "report.md").read_text()
    assert "#### Parity (before measuring)" in md and "| onnx | onnxruntime |" in md
    assert "reference runtime | ONNX Runtime" in md


def test_an_onnx_file_is_served_by_every_server_with_every_answer_checked(image_run: Path) -> None:
    _assert_every_answer_checked(image_run, SERVERS)


def test_onnx_runtime_is_the_reference_in_parity_provenance_and_report(image_run: Path) -> None:
    _assert_onnx_runtime_is_the_reference(image_run)


def test_the_tf_baseline_serves_the_port_of_the_same_file(image_run: Path) -> None:
    from servecmp.models.port import port_venv

    if not (port_venv() / "bin" / "python").exists():
        pytest.skip(f"the port venv {port_venv()} is missing (scripts/setup-port.sh)")
    card = json.loads((image_run / "model_card.json").read_text())
    rows = {r["artifact"]: r for r in card["parity"]}
    assert rows["savedmodel"]["passed"], rows["savedmodel"]
    s = {s.target: s for s in RunStore(image_run).read_steps().steps}["tensorflow-inprocess"]
    assert s.ok > 0 and s.wrong_answers == 0, s.invalid_reason


@pytest.fixture(scope="module")
def token_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = TorchServeServer.availability()
    if reason:
        pytest.skip(reason)
    torch.manual_seed(4)
    card = {
        "name": "onnxtok",
        "inputs": [
            {"name": "input_ids", "shape": [None, 32], "dtype": "int64", "range": [0, 119]},
            {"name": "attention_mask", "shape": [None, 32], "dtype": "int64", "range": [0, 1]},
        ],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 4]}],
    }
    example = (torch.zeros(2, 32, dtype=torch.int64), torch.ones(2, 32, dtype=torch.int64))
    targets = [
        *_server_targets(("torchserve", "kserve")),
        {"server": "torchserve", "protocol": "rest", "encoding": "raw"},
        {"server": "pytorch", "protocol": "inprocess"},
    ]
    return _run(tmp_path_factory.mktemp("onnxtok"), Tokens(), example, card, targets)


def test_an_onnx_token_model_takes_int64_ids_and_mask_on_torchserve_and_kserve(
    token_run: Path,
) -> None:
    _assert_every_answer_checked(token_run, ("torchserve", "kserve"))
    steps = {s.target: s for s in RunStore(token_run).read_steps().steps}
    assert steps["torchserve-rest-raw"].ok > 0 and steps["torchserve-rest-raw"].wrong_answers == 0
    _assert_onnx_runtime_is_the_reference(token_run)
