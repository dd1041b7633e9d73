"""The report's model card section (servecmp/report/tables/model_card.py) from a stored run:
the card's numbers as recorded, the parity table with failures marked, and the serving tax at
c=1 = server p50 minus its in-process baseline's p50, from the stored steps."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from fixtures.report_runs import make_run
from test_report import md_tables

from servecmp.models.runcard import write_run_card
from servecmp.report.build import build_report
from servecmp.report.data import load_run

pytestmark = pytest.mark.usefixtures("test_registry")

CARD = {
    "name": "tiny",
    "description": "one linear layer",
    "source": {"kind": "factory", "ref": "servecmp.models.tiny:build_torch"},
    "inputs": [{"name": "input", "shape": [None, 3, 8, 8], "dtype": "float32", "range": None}],
    "outputs": [{"name": "logits", "classification": True, "top_k": 1, "shape": [None, 10]}],
    "parameters": 1930,
    "flops_per_example": 3840,
    "input_bytes_per_request": {"json": 1234, "raw": 768},
    "artifact_bytes": {"torchserve": 9000, "tfserving": 12000},
    "export_s": {"torchserve": 1.5, "tfserving": 0.8},
    "build_s": 0.01,
    "parity": [
        {
            "artifact": "torchscript",
            "runtime": "torch.jit",
            "n": 16,
            "max_abs_diff": 0.0,
            "atol": 1e-4,
            "argmax_agree": 1.0,
            "topk_agree": None,
            "passed": True,
            "note": "",
        },
        {
            "artifact": "savedmodel",
            "runtime": "tensorflow",
            "n": 16,
            "max_abs_diff": 3e-3,
            "atol": 1e-4,
            "argmax_agree": 0.9375,
            "topk_agree": None,
            "passed": False,
            "note": "",
        },
    ],
    "unavailable": {},
    "notes": [],
}


def p50(run_dir: Path, target: str) -> float:
    """The stored steps' p50 at c=1 (median over the valid repeats)."""
    steps = load_run(run_dir).steps
    return statistics.median(
        s.latency_ms.p50 for s in steps if s.target == target and s.concurrency == 1 and s.valid
    )


def test_model_card_section(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    write_run_card(run_dir, CARD)
    md = build_report(run_dir).markdown.read_text()
    tables = md_tables(md)
    assert "Tolerance rule: pass when max |Δ| ≤ atol * max(1, max |reference|)" in md
    card = {r[0]: r[1] for r in tables["Model card"][1:]}
    assert (
        card["parameters"] == "1.93 k"
        and card["input bytes per request"] == "json: 1,234 B, raw: 768 B"
    )
    arts = {r[0]: r[1:] for r in tables["Artifacts per server"][1:]}
    assert arts["torchserve"][0] == "9,000 B"
    parity = {r[0]: r for r in tables["Parity (before measuring)"][1:]}
    assert parity["torchscript"][-1] == "pass" and parity["savedmodel"][-1] == "FAIL"
    assert parity["savedmodel"][5] == "94%"
    tax = {r[0]: r for r in tables["Serving tax at concurrency 1"][1:]}
    base = p50(run_dir, "pytorch-inprocess")
    want = p50(run_dir, "torchserve-rest-json") - base
    row = tax["torchserve-rest-json"]
    assert row[1] == "pytorch-inprocess"
    assert float(row[4]) == pytest.approx(want, abs=0.01)
    assert row[5] == f"{want / base:.0%}"


def test_no_model_card_section_without_a_card(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    assert "Model card" not in build_report(run_dir).markdown.read_text()
