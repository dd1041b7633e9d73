"""The ONNX -> TensorFlow port runs only where a TF target needs its SavedModel: a run without
one skips it, ``servecmp export --no-port`` and a card's ``port: false`` say so explicitly, and
the model card says "not ported (...)" instead of leaving the SavedModel's row out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from servecmp.models import export as export_mod

FACTORY = """
import torch
from torch import nn

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        return self.out(torch.relu(self.conv(x)).mean(dim=(2, 3)))

def build():
    return Small()
"""


def _card(root: Path, tag: str, **extra: Any) -> Path:
    (root / f"smallnet_{tag}.py").write_text(FACTORY)
    path = root / f"small{tag}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": f"small{tag}",
                "source": {"factory": f"smallnet_{tag}:build"},
                "inputs": [{"name": "input", "shape": [None, 3, 6, 6]}],
                "outputs": [{"name": "logits", "classification": True, "shape": [None, 3]}],
                **extra,
            }
        )
    )
    return path


def test_a_card_saying_port_false_refuses_tf_targets_by_name(tmp_path: Path) -> None:
    from servecmp.experiment import parse_experiment

    card = _card(tmp_path, "nop", port=False)
    base = {"name": "t", "model": str(card)}
    ok = [
        {"server": "torchserve", "protocol": "rest"},
        {"server": "pytorch", "protocol": "inprocess"},
    ]
    assert parse_experiment({**base, "targets": ok}, "e.yaml").model == "smallnop"
    with pytest.raises(ValueError, match=r"port: false.*tfserving-rest-json, tensorflow-inprocess"):
        parse_experiment(
            {
                **base,
                "targets": [
                    *ok,
                    {"server": "tfserving", "protocol": "rest"},
                    {"server": "tensorflow", "protocol": "inprocess"},
                ],
            },
            "e.yaml",
        )


def test_port_field_leaves_the_card_digest_alone(tmp_path: Path) -> None:
    from servecmp.models.card import load_card

    a = load_card(_card(tmp_path, "dig"))
    b = load_card(_card(tmp_path, "dig", port=False))
    assert not b.port and a.digest() == b.digest()


def test_needs_savedmodel_only_for_tf_servers() -> None:
    assert export_mod.needs_savedmodel(["torchserve", "pytorch", "kserve"]) is False
    assert export_mod.needs_savedmodel(["torchserve", "tensorflow"]) is True
    assert export_mod.needs_savedmodel(["tfserving"]) is True


def _records(root: Path, model: str, digest: str, not_ported: str) -> None:
    rec = {"card_digest": digest, "not_ported": not_ported}
    path = export_mod.artifacts(model, root).export_json
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"model": model, "versions": {"1": rec, "2": rec}}))


@pytest.mark.parametrize(
    ("stored", "savedmodel", "exports"),
    [
        ("", False, []),  # ported before: reused, the port is not undone
        ("", True, []),
        (export_mod.NO_TF_TARGET, False, []),  # still no TF target: reused
        # a TF target now: exported again, the port included
        (export_mod.NO_TF_TARGET, True, [(1, ""), (2, "")]),
    ],
)
def test_a_run_ports_only_for_a_tf_target_and_redoes_an_export_that_skipped_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stored: str,
    savedmodel: bool,
    exports: list[tuple[int, str]],
) -> None:
    from servecmp.models.registry import get_model
    from servecmp.run import orchestrate

    _records(tmp_path, "tiny", get_model("tiny").digest(), stored)
    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(
        orchestrate,
        "export_model",
        lambda model, root, *, seed, version, skip_port: calls.append((version, skip_port)),
    )
    orchestrate.ensure_artifacts("tiny", tmp_path, 0, savedmodel=savedmodel)
    assert calls == exports


def test_a_fresh_run_without_tf_target_asks_to_skip_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servecmp.run import orchestrate

    calls: list[str] = []
    monkeypatch.setattr(
        orchestrate,
        "export_model",
        lambda model, root, *, seed, version, skip_port: calls.append(skip_port),
    )
    orchestrate.ensure_artifacts("tiny", tmp_path, 0, savedmodel=False)
    assert calls == [export_mod.NO_TF_TARGET] * 2


def test_export_cli_no_port_flag_reaches_the_export(monkeypatch: pytest.MonkeyPatch) -> None:
    from servecmp.cli import main
    from servecmp.models import commands

    seen: dict[str, Any] = {}
    monkeypatch.setattr(commands, "export_command", lambda *a, **kw: seen.update(kw, args=a) or 0)
    assert main(["export", "--model", "tiny", "--no-port"]) == 0
    assert seen["port"] is False
    assert main(["export", "--model", "tiny"]) == 0
    assert seen["port"] is True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "skip", "why"),
    [
        ({}, export_mod.NO_TF_TARGET, "not ported (no TF target)"),
        ({"port": False}, "", "not ported (card: port: false)"),
    ],
)
def test_export_without_the_port_writes_no_savedmodel_and_says_why(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: dict[str, Any],
    skip: str,
    why: str,
) -> None:
    """The port is not even started: a port venv that does not exist would otherwise make the
    SavedModel unavailable with "the port venv ... is missing"."""
    from servecmp.models.port import VENV_ENV
    from servecmp.models.runcard import run_card
    from servecmp.report.tables.model_card import card_summary, parity_table

    monkeypatch.setenv(VENV_ENV, str(tmp_path / "no-such-venv"))
    tag = str(abs(hash(str(tmp_path))) % 10**8)
    monkeypatch.syspath_prepend(str(tmp_path))
    card_file = _card(tmp_path, tag, **extra)
    rec = export_mod.export_model(str(card_file), tmp_path / "out", skip_port=skip)
    art = export_mod.artifacts(rec.model, tmp_path / "out")
    assert art.mar.is_file() and art.onnx.is_file() and not art.savedmodel.exists()
    assert rec.not_ported == why
    assert rec.unavailable == {"tfserving": why, "tensorflow": why}
    assert "savedmodel" not in {r["artifact"] for r in rec.parity}
    assert all(r["passed"] for r in rec.parity)

    card = run_card(export_mod.get_model(rec.model), None, rec.to_json(), {})
    rows = {r[0]: r for r in parity_table(card).rows}
    assert rows["savedmodel"][-1] == why  # a row that says so, not a missing one
    assert ("SavedModel (TF Serving, TF baseline)", why) in {
        (r[0], r[1]) for r in card_summary(card).rows
    }
