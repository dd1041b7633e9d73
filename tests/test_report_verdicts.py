"""Verdicts over interleaved repeats (paired t-intervals), steps that are not comparable kept out
of every number, and the report's order: the answer (summary per protocol) first."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures.report_runs import STEP_PLAN, UNSTEADY_REASON, PlannedStep, make_run

from servecmp.report.build import build_report
from servecmp.report.cells import cells
from servecmp.report.data import load_run
from servecmp.report.format import describe, fmt_pct
from servecmp.report.stats import compare_cells, difference
from servecmp.results.friction import FRICTION_METRICS

T_975_DF2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (tables)

TS, TF = "torchserve-rest-json", "tfserving-rest-json"

# server labels and baselines come from the registry: here its test adapters
pytestmark = pytest.mark.usefixtures("test_registry")


def rounds(
    target: str, thr: list[float], p50: float, conc: int = 1, **kw: object
) -> list[PlannedStep]:
    return [
        PlannedStep(target, conc, t, (t * 0.99, t, t * 1.01), p50, repeat=r, **kw)  # type: ignore[arg-type]
        for r, t in enumerate(thr)
    ]


def interleaved(*groups: list[PlannedStep]) -> list[PlannedStep]:
    """A B A B: round r of every target before round r + 1 (the orchestrator's order)."""
    out: list[PlannedStep] = []
    for r in range(max(len(g) for g in groups)):
        out += [g[r] for g in groups if r < len(g)]
    return out


def test_paired_interval_is_the_t_interval_of_the_log_ratios(tmp_path: Path) -> None:
    a, b = [100.0, 104.0, 98.0], [116.0, 118.0, 114.0]
    run = load_run(
        make_run(tmp_path / "r", plan=interleaved(rounds(TS, a, 20.0), rounds(TF, b, 20.0)))
    )
    cs = cells(run)
    v = difference("throughput_rps", cs[(TS, ("concurrency", 1.0))], cs[(TF, ("concurrency", 1.0))])
    assert v is not None and v.paired and v.n_pairs == 3
    d = np.log(np.array(b) / np.array(a))
    half = T_975_DF2 * d.std(ddof=1) / math.sqrt(3)
    assert v.change == pytest.approx(math.expm1(d.mean()))
    assert v.interval == pytest.approx((math.expm1(d.mean() - half), math.expm1(d.mean() + half)))
    assert v.significant and v.better == "b"  # ~ +15 %, interval well above 0
    assert v.a == 100.0 and v.b == 116.0  # cell numbers: medians over the repeats


def test_same_mean_difference_with_noisy_repeats_is_not_significant(tmp_path: Path) -> None:
    a, b = [100.0, 100.0, 100.0], [140.0, 95.0, 112.0]  # +15 % on average, but noise of ±20 %
    run = load_run(
        make_run(tmp_path / "r", plan=interleaved(rounds(TS, a, 20.0), rounds(TF, b, 20.0)))
    )
    cs = cells(run)
    v = difference("throughput_rps", cs[(TS, ("concurrency", 1.0))], cs[(TF, ("concurrency", 1.0))])
    assert v is not None and v.paired
    assert v.interval is not None and v.interval[0] < 0 < v.interval[1]
    assert not v.significant


def test_drift_shared_by_both_sides_cancels_in_the_pairs(tmp_path: Path) -> None:
    """The machine slows down round after round (-30 %); b stays 12 % above a in every round.
    Unpaired, the repeats' spread (30 %) would swallow the difference; paired it is called."""
    a = [100.0, 85.0, 70.0]
    b = [x * 1.12 for x in a]
    run = load_run(
        make_run(tmp_path / "r", plan=interleaved(rounds(TS, a, 20.0), rounds(TF, b, 20.0)))
    )
    cs = cells(run)
    ca, cb = cs[(TS, ("concurrency", 1.0))], cs[(TF, ("concurrency", 1.0))]
    assert not compare_cells("throughput_rps", ca, cb).significant  # type: ignore[union-attr]
    v = difference("throughput_rps", ca, cb)
    assert v is not None and v.significant and v.change == pytest.approx(0.12)


def test_not_comparable_steps_are_kept_out_and_labelled(tmp_path: Path) -> None:
    plan = interleaved(
        rounds(TS, [100.0, 101.0, 99.0], 10.0), rounds(TF, [100.0, 102.0, 100.0], 10.0)
    )
    # a fourth round where TF Serving looked 3x faster, but the step never settled / was disrupted
    plan += [
        PlannedStep(TS, 1, 100.0, (99.0, 100.0, 101.0), 10.0, repeat=3),
        PlannedStep(TF, 1, 300.0, (200.0, 300.0, 400.0), 5.0, repeat=3, steady=False),
    ]
    plan += [
        PlannedStep(TS, 1, 100.0, (99.0, 100.0, 101.0), 10.0, repeat=4),
        PlannedStep(
            TF, 1, 300.0, (299.0, 300.0, 301.0), 5.0, repeat=4, disrupted="worker pid 41 → 57"
        ),
    ]
    run_dir = make_run(tmp_path / "r", plan=plan)
    cs = cells(load_run(run_dir))
    cb = cs[(TF, ("concurrency", 1.0))]
    assert cb.value("throughput_rps") == 100.0 and len(cb.valid_steps) == 3
    v = difference("throughput_rps", cs[(TS, ("concurrency", 1.0))], cb)
    assert v is not None and v.n_pairs == 3 and not v.significant
    md = build_report(run_dir).markdown.read_text()
    summary = md.split("## Summary")[1].split("## Details")[0]
    best = next(ln for ln in summary.splitlines() if ln.startswith("| Best throughput"))
    assert "| 100 (concurrency 1) | 100 (concurrency 1) | not significant" in best, best
    steps = md.split("## All steps")[1]
    assert f"not steady: {UNSTEADY_REASON}" in steps and "disrupted: worker pid 41 → 57" in steps
    assert "comparable (5 steps, 2 not comparable)" in md


def _md_table_order(md: str) -> list[str]:
    """Headings that directly precede a table, in order."""
    out, heading = [], ""
    for line in md.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and (not out or out[-1] != heading):
            out.append(heading)
    return out


def test_the_report_answers_first_and_provenance_comes_last(tmp_path: Path) -> None:
    paths = build_report(make_run(tmp_path / "r"))
    md, html = paths.markdown.read_text(), paths.html.read_text()
    order = _md_table_order(md)
    assert order[:2] == ["REST", "GRPC"], order  # the summary tables come first
    assert order[-2:] == ["Provenance", "Targets"], order
    assert (
        md.index("## Summary")
        < md.index("## Details")
        < md.index("### Differences")
        < md.index("## Provenance")
    )
    first_table = re.search(r"<table[^>]*>", html)
    assert first_table is not None and first_table.group(0) == '<table id="summary-rest">'
    assert html.index('id="plot-latency-throughput"') < html.index(
        'id="details"'
    )  # key plots before details
    prov = html[html.index('<h2 id="provenance">') :]
    assert prov.index("<details>") < prov.index("<table")  # folded
    rest = md.split("### REST")[1].split("###")[0]
    for question in (
        "Best throughput with p99 ≤ 40 ms",
        "p50 latency at the lowest load",
        "p99 latency at the lowest load",
    ):
        assert question in rest, question
    # friction is per server, not per protocol: its own summary table, measured rows only
    friction = md.split("### Friction (per server, any protocol)")[1].split("###")[0]
    assert "Cold start to ready" in friction and "Cold start to ready" not in rest
    # the fixture's c=1 REST difference (50 vs 70 req/s) is called; gRPC has no TF Serving data:
    # no TF Serving column there, no "no data" cells
    assert "TF Serving better" in rest
    grpc = md.split("### GRPC")[1].split("###")[0]
    assert "TF Serving" not in grpc and "no data" not in grpc


def test_friction_rows_use_human_labels_with_units(tmp_path: Path) -> None:
    md = build_report(make_run(tmp_path / "r")).markdown.read_text()
    friction = md.split("### Operational friction")[1].split("\n## ")[0]
    rows = [
        ln.split("|")[1].strip()
        for ln in friction.splitlines()
        if ln.startswith("| ") and "---" not in ln
    ]
    labels = [r for r in rows if r != "measurement"]
    assert labels and not any(r.split(" (")[0] in FRICTION_METRICS for r in labels), labels
    assert "| Idle memory (RSS) | MiB |" in md or "| Cold start to ready | s |" in md


def test_plan_is_untouched_by_these_tests() -> None:
    assert all(p.repeat == 0 and p.steady and p.disrupted is None for p in STEP_PLAN)


def test_report_paths_print_as_paths_not_reprs(tmp_path: Path) -> None:
    paths = build_report(make_run(tmp_path / "r"))
    text = f"report: {paths}"
    assert "PosixPath" not in text and "ReportPaths" not in text
    assert str(paths.html) in text and str(paths.markdown) in text


def test_resolution_is_the_half_width_of_the_interval(tmp_path: Path) -> None:
    a, b = [100.0, 104.0, 98.0], [116.0, 118.0, 114.0]
    run = load_run(
        make_run(tmp_path / "r", plan=interleaved(rounds(TS, a, 20.0), rounds(TF, b, 20.0)))
    )
    cs = cells(run)
    v = difference("throughput_rps", cs[(TS, ("concurrency", 1.0))], cs[(TF, ("concurrency", 1.0))])
    assert v is not None and v.resolution is not None
    d = np.log(np.array(b) / np.array(a))
    assert v.resolution == pytest.approx(
        max(0.05, math.expm1(T_975_DF2 * d.std(ddof=1) / math.sqrt(3)))
    )
    assert f"resolves ≥ {fmt_pct(v.resolution)}" in describe(v)
