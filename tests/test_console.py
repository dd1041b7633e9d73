"""The end-of-run console table: fits 80 columns with full target names, numbers are medians of
comparable repeats, each reason printed once."""

from __future__ import annotations

import statistics
from pathlib import Path

from fixtures.report_runs import (
    INVALID_REASON,
    STEP_PLAN,
    UNAVAILABLE_REASON,
    PlannedStep,
    make_run,
)
from rich.console import Console

from servecmp.console import print_summary
from servecmp.results.store import RunStore


def render(run_dir: Path) -> str:
    console = Console(width=80, record=True, force_terminal=False)
    print_summary(run_dir, console)
    return console.export_text()


def test_table_fits_80_columns_without_truncating_names(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r")
    text = render(run)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    names = {p.target for p in STEP_PLAN} | {"tfserving-grpc-tensorproto"}
    lines = text.splitlines()
    for name in names:  # each full name starts a row
        assert any(line.startswith(name + " ") for line in lines), name


def test_numbers_are_medians_and_reasons_appear_once(tmp_path: Path) -> None:
    plan = [
        *STEP_PLAN,
        PlannedStep("torchserve-grpc-bytes", 4, 999.0, (500.0, 999.0, 1500.0), 1.0, steady=False),
    ]
    run = make_run(tmp_path / "r", plan=plan)
    text = render(run)
    c4 = [
        ln for ln in text.splitlines() if ln.startswith("torchserve-rest-json ") and " c=4 " in ln
    ]
    assert len(c4) == 1 and f" {statistics.median([96.0, 100.0]):.1f} " in c4[0]
    grpc4 = next(
        ln for ln in text.splitlines() if ln.startswith("torchserve-grpc-bytes ") and " c=4 " in ln
    )
    assert (
        " 150.0 " in grpc4 and " 1/2 " in grpc4 and "999" not in grpc4
    )  # the unsteady repeat is out
    flat = " ".join(text.split())
    assert flat.count(" ".join(UNAVAILABLE_REASON.split())) == 1
    assert flat.count(" ".join(INVALID_REASON.split())) == 1
    steps = RunStore(run).read_steps().steps
    # the run's results path is printed once, by `servecmp run` after the report, not here too
    assert "results:" not in flat and len(steps) == len(plan)
