"""Done-when for your own model: a model file no one on the team wrote (a TorchScript file made
here from a fresh ``nn.Module``), described by a card in ``models/``, goes through
``servecmp run`` on the servers that run here, with parity shown, and no code change.

TF Serving and the TF baseline serve the SavedModel the export ports from its ONNX graph
(onnx2tf in .venv-port); where the port venv is missing, the run says so per target, with the
port's message, instead of hiding them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import run_budget
import torch
import yaml
from torch import nn

from servecmp.cli import main
from servecmp.results.store import RunStore
from servecmp.servers.kserve.local import KServeServer
from servecmp.servers.torchserve.local import TorchServeServer

pytestmark = [pytest.mark.slow, pytest.mark.torchserve, pytest.mark.kserve]


class Fresh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for reason in (TorchServeServer.availability(), KServeServer.availability()):
        if reason:
            pytest.skip(reason)
    root = tmp_path_factory.mktemp("own")
    (root / "models").mkdir()
    torch.manual_seed(3)
    torch.jit.script(Fresh().eval()).save(str(root / "models" / "fresh.pt"))
    card = {
        "name": "fresh",
        "description": "a model no one on the team wrote",
        "source": {"torchscript": "fresh.pt"},
        "inputs": [{"name": "input", "shape": [None, 3, 16, 16], "dtype": "float32"}],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 5]}],
    }
    (root / "models" / "fresh.yaml").write_text(yaml.safe_dump(card))
    exp = {
        "name": "own-model",
        "model": "models/fresh.yaml",
        "targets": [
            {"server": "torchserve", "protocol": "rest"},
            {"server": "torchserve", "protocol": "grpc"},
            {"server": "kserve", "protocol": "rest"},
            {"server": "tfserving", "protocol": "rest"},
            {"server": "pytorch", "protocol": "inprocess"},
            {"server": "tensorflow", "protocol": "inprocess"},
        ],
        "payload": {"distinct_inputs": 4},
        "load": {
            "profile": "closed_loop",
            "concurrency": [1],
            "warmup_s": 0.5,
            "stability": {"window_s": 1.0, "windows": 2, "max_windows": 2},
            "burn_in": {"max_s": 2.0, "window_s": 0.5},
        },
        "friction": run_budget.friction(),
    }
    (root / "exp.yaml").write_text(yaml.safe_dump(exp))
    runs = root / "runs"
    argv = ["run", str(root / "exp.yaml"), "--runs", str(runs), "--artifacts", str(root / "build")]
    assert main([*argv, "--no-prometheus"]) == 0
    (out,) = runs.iterdir()
    return out


def test_pytorch_servers_answer_correctly(run_dir: Path) -> None:
    steps = RunStore(run_dir).read_steps().steps
    by_target = {s.target: s for s in steps}
    for target in (
        "torchserve-rest-json",
        "torchserve-grpc-bytes",
        "kserve-rest-json",
        "pytorch-inprocess",
    ):
        s = by_target[target]
        assert s.ok > 0 and s.wrong_answers == 0, (target, s.invalid_reason)


def test_tf_targets_serve_the_port_or_are_unavailable_with_the_reason(run_dir: Path) -> None:
    from servecmp.models.port import port_venv
    from servecmp.servers.tfserving.local import TFServingServer

    avail = {a.target: a for a in RunStore(run_dir).read_targets()}
    steps = {s.target: s for s in RunStore(run_dir).read_steps().steps}
    card = json.loads((run_dir / "model_card.json").read_text())
    rows = {r["artifact"]: r for r in card["parity"]}
    if not (port_venv() / "bin" / "python").exists():
        for target in ("tfserving-rest-json", "tensorflow-inprocess"):
            assert not avail[target].available
            assert "port failed" in (avail[target].reason or "")
        return
    assert rows["savedmodel"]["passed"]
    s = steps["tensorflow-inprocess"]
    assert s.ok > 0 and s.wrong_answers == 0, s.invalid_reason
    tfs = TFServingServer.availability()
    if tfs:  # no binary here: unavailable for that reason, not for a missing model
        assert not avail["tfserving-rest-json"].available
        assert "no SavedModel" not in (avail["tfserving-rest-json"].reason or "")
    else:
        assert steps["tfserving-rest-json"].wrong_answers == 0


def test_parity_is_recorded_and_shown(run_dir: Path) -> None:
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["name"] == "fresh" and card["source"]["kind"] == "torchscript"
    rows = {r["artifact"]: r for r in card["parity"]}
    assert rows["torchscript"]["passed"] and rows["torchserve_mar"]["passed"]
    md = (run_dir / "report" / "report.md").read_text()
    assert "### Model card" in md and "#### Parity (before measuring)" in md
    assert "| torchserve_mar |" in md


TOKENS = (
    "import torch\nfrom torch import nn\n"
    "class Enc(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.emb = nn.Embedding(120, 16)\n"
    "        self.fc = nn.Linear(16, 4)\n"
    "    def forward(self, input_ids, attention_mask):\n"
    "        m = attention_mask.unsqueeze(-1).float()\n"
    "        return self.fc((self.emb(input_ids) * m).sum(1) / m.sum(1).clamp(min=1))\n"
    "def build():\n    return Enc()\n"
)


# The OIP servers take both inputs by name over REST JSON, the binary tensor extension and gRPC
# (KServe also as v1 row objects); a server whose venv is missing is listed unavailable. KServe,
# Triton and Ray Serve share the OIP clients, so the run measures them on KServe only; Triton and
# Ray Serve answer every encoding's requests without load (test_token_model_on_each_oip_server).
OIP_TOKEN_TARGETS = [
    {"server": "kserve", "protocol": "rest"},
    {"server": "kserve", "protocol": "rest", "encoding": "oip"},
    {"server": "kserve", "protocol": "rest", "encoding": "oip-binary"},
    {"server": "kserve", "protocol": "grpc"},
]
OIP_REQUEST_TARGETS = {
    server: [
        {"server": server, "protocol": "rest"},
        {"server": server, "protocol": "rest", "encoding": "oip-binary"},
        {"server": server, "protocol": "grpc"},
    ]
    for server in ("triton", "rayserve")
}


@pytest.fixture(scope="module")
def token_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-input int64 model (token ids and an attention mask) from a factory in the user's
    own package, run on TorchServe's encodings, KServe's OIP and v1 encodings and the
    baselines (Triton and Ray Serve: test_token_model_on_each_oip_server)."""
    reason = TorchServeServer.availability()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("tokens")
    pkg = root / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(TOKENS)
    card = {
        "name": "tokens",
        "source": {"factory": "userpkg.nets:build"},
        "inputs": [
            {"name": "input_ids", "shape": [None, 32], "dtype": "int64", "range": [0, 119]},
            {"name": "attention_mask", "shape": [None, 32], "dtype": "int64", "range": [0, 1]},
        ],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 4]}],
    }
    (root / "tokens.yaml").write_text(yaml.safe_dump(card))
    exp = {
        "name": "tokens",
        "model": "tokens.yaml",
        "targets": [
            {"server": "torchserve", "protocol": "rest"},
            {"server": "torchserve", "protocol": "rest", "encoding": "raw"},
            {"server": "torchserve", "protocol": "grpc"},
            {"server": "pytorch", "protocol": "inprocess"},
            {"server": "tensorflow", "protocol": "inprocess"},
            {"server": "tfserving", "protocol": "rest"},
            {"server": "tfserving", "protocol": "grpc"},
            *OIP_TOKEN_TARGETS,
        ],
        "payload": {"distinct_inputs": 4},
        "load": {
            "profile": "closed_loop",
            "concurrency": [1],
            "warmup_s": 0.5,
            "stability": {"window_s": 1.0, "windows": 2, "max_windows": 2},
            "burn_in": {"max_s": 2.0, "window_s": 0.5},
        },
        # short update/kill timelines: each server's probes, the same short span for each
        "friction": run_budget.friction(),
    }
    (root / "exp.yaml").write_text(yaml.safe_dump(exp))
    runs = root / "runs"
    import sys

    sys.path.insert(0, str(root))  # the user's package, as on their PYTHONPATH
    try:
        argv = ["run", str(root / "exp.yaml"), "--runs", str(runs)]
        assert main([*argv, "--artifacts", str(root / "build"), "--no-prometheus"]) == 0
    finally:
        sys.path.remove(str(root))
    (out,) = runs.iterdir()
    return out


def test_token_model_answers_correctly_on_every_encoding(token_run: Path) -> None:
    steps = {s.target: s for s in RunStore(token_run).read_steps().steps}
    for target in (
        "torchserve-rest-json",
        "torchserve-rest-raw",
        "torchserve-grpc-bytes",
        "pytorch-inprocess",
    ):
        assert steps[target].ok > 0 and steps[target].wrong_answers == 0, target
    avail = {a.target: a for a in RunStore(token_run).read_targets()}
    oip = [n for n in avail if n.split("-")[0] in ("kserve", "triton", "rayserve")]
    assert len(oip) == len(OIP_TOKEN_TARGETS)
    for target in oip:
        if not avail[target].available:  # only a missing server venv, said so
            assert "virtual environment" in (avail[target].reason or ""), avail[target].reason
            continue
        s = steps[target]
        assert s.ok > 0 and s.transport_error_count == 0 and s.wrong_answers == 0, (
            target,
            s.transport_errors,
            s.invalid_reason,
        )
    card = json.loads((token_run / "model_card.json").read_text())
    assert card["input_bytes_per_request"]["raw"] == 2 * 32 * 8  # two int64 [1, 32] tensors
    assert all(r["passed"] for r in card["parity"])
    assert "savedmodel" in {r["artifact"] for r in card["parity"]}


def test_token_model_runs_on_the_tf_targets_through_the_port(token_run: Path) -> None:
    """The TF baseline serves the ported SavedModel with both inputs; TF Serving is unavailable
    here only for its missing binary, never for the model's inputs."""
    from servecmp.models.port import port_venv
    from servecmp.servers.tfserving.local import TFServingServer

    if not (port_venv() / "bin" / "python").exists():
        pytest.skip(f"the port venv {port_venv()} is missing (scripts/setup-port.sh)")
    steps = {s.target: s for s in RunStore(token_run).read_steps().steps}
    tf = steps["tensorflow-inprocess"]
    assert tf.ok > 0 and tf.wrong_answers == 0
    avail = {t.target: t for t in RunStore(token_run).read_targets()}
    for target in ("tfserving-rest-json", "tfserving-grpc-tensorproto"):
        if TFServingServer.availability() is None:
            assert steps[target].ok > 0 and steps[target].wrong_answers == 0, target
        else:
            assert not avail[target].available
            assert "no SavedModel" not in (avail[target].reason or ""), target


@pytest.mark.triton
@pytest.mark.rayserve
@pytest.mark.parametrize("server", sorted(OIP_REQUEST_TARGETS))
def test_token_model_on_each_oip_server(token_run: Path, server: str, tmp_path: Path) -> None:
    """Triton and Ray Serve serve the run's two-input artifacts and answer the run's payloads
    (every distinct input once) correctly over REST JSON, the binary extension and gRPC; a
    server whose venv is missing says so."""
    from answers_util import outcomes

    from servecmp.experiment import Target
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.registry import register_card
    from servecmp.run.standalone import start_server
    from servecmp.servers import registry

    reason = registry.get(server).launcher().availability()
    if reason:
        assert "virtual environment" in reason, reason
        pytest.skip(reason)
    root = token_run.parents[1]
    register_card(root / "tokens.yaml")  # the run's card, already known in this process
    payloads = PayloadSet.load(token_run)  # inputs and the expected logits the run checked
    srv = start_server(
        server,
        "tokens",
        tmp_path,
        root / "build" / "seed-1234",  # where the run exported (the experiment's default seed)
        ready_timeout_s=240,  # Ray Serve's cold start on a busy machine (tests/test_rayserve.py)
        payload={"distinct_inputs": 4},
    )
    try:
        for fields in OIP_REQUEST_TARGETS[server]:
            target = Target.model_validate(fields)
            assert outcomes(srv, target, payloads) == ["ok"] * len(payloads), target.name
    finally:
        srv.stop()  # process leftovers after stop(): tests/test_triton.py, tests/test_rayserve.py
