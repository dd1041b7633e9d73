"""Report from stored results: numbers equal the stored JSON, unavailable/invalid shown honestly,
noise labels follow the documented rule, comparisons refuse unfair pairs, bad inputs are clear."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest
from adapters_for_tests import MODULES, registry_of
from fixtures.report_runs import (
    INVALID_REASON,
    STEP_PLAN,
    UNAVAILABLE_REASON,
    UNAVAILABLE_TARGET,
    experiment,
    make_run,
    make_step,
    truncate_with_partial_step,
)

from servecmp.report.build import CompareRefused, ReportError, build_report, build_report_cli
from servecmp.report.format import DECIMALS, METRIC_LABEL, NOT_SIGNIFICANT
from servecmp.report.rules import NOISE_RULE
from servecmp.report.stats import compare_values
from servecmp.report.tables.all_steps import ALL_STEP_METRICS
from servecmp.report.tables.head_to_head import HEAD_METRICS
from servecmp.results import FormatVersionError, RunStore, StepResult
from servecmp.results.metrics import METRICS
from servecmp.results.provenance import build_meta
from servecmp.results.store import StoreError

# server labels and baselines come from the registry: here its test adapters
pytestmark = pytest.mark.usefixtures("test_registry")


# ---- helpers ---------------------------------------------------------------------------------
def md_tables(text: str) -> dict[str, list[list[str]]]:
    """Markdown tables by the heading above them (header row first, separator dropped)."""
    out: dict[str, list[list[str]]] = {}
    heading = ""
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            current = None
            continue
        if line.startswith("|"):
            cells = [
                c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]
            ]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if current is None:
                current = out.setdefault(heading, [])
            current.append(cells)
        else:
            current = None if line.strip() else current
    return out


def rounded(v: float | None, unit: str) -> float | None:
    return None if v is None else round(v, DECIMALS[unit])


def stored_steps(run_dir: Path) -> list[StepResult]:
    return RunStore(run_dir).read_steps().steps


@pytest.fixture()
def run_a(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run-a")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One report of ``make_run()`` for the tests that only read it (built once per module)."""
    with registry_of(MODULES):
        run = make_run(tmp_path_factory.mktemp("built") / "run-a")
        paths = build_report(run)
        return run, paths.markdown.read_text(), paths.html.read_text()


# ---- numbers ---------------------------------------------------------------------------------
def test_all_steps_table_equals_stored_json(built: tuple[Path, str, str]) -> None:
    run_dir, md, _ = built
    rows = md_tables(md)["All steps"]
    header, body = rows[0], rows[1:]
    steps = stored_steps(run_dir)
    assert [r[0] for r in body] == [s.step_id for s in steps]  # every step, in order
    for row, s in zip(body, steps, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert cells["target"] == s.target
        if not s.valid:
            continue
        for m in ALL_STEP_METRICS:
            metric = METRICS[m]
            col = f"{METRIC_LABEL[m]} ({metric.unit})"
            assert float(cells[col]) == rounded(metric.value(s), metric.unit), (s.step_id, m)


def test_side_by_side_is_the_median_of_comparable_repeats(built: tuple[Path, str, str]) -> None:
    run_dir, md, _ = built
    tables = md_tables(md)
    steps = stored_steps(run_dir)
    for conc in (1, 4):
        rows = tables[f"concurrency {conc}"]
        header = rows[0]
        by_metric = {r[0]: r for r in rows[1:]}
        for col, label in enumerate(header):
            if col < 3 or label.startswith("best"):
                continue
            target = label.split(" [")[0]
            valid = [s for s in steps if s.target == target and s.concurrency == conc and s.valid]
            if target == UNAVAILABLE_TARGET:
                assert by_metric["step status"][col] == "unavailable (note 1)"
                continue
            if not valid:
                continue
            for name in (
                "throughput_rps",
                "latency_p50_ms",
                "latency_p90_ms",
                "latency_p95_ms",
                "latency_p99_ms",
                "latency_p999_ms",
                "latency_max_ms",
                "error_fraction",
            ):
                m = METRICS[name]
                cell = by_metric[METRIC_LABEL[name]][col]
                expected = statistics.median(m.value(s) for s in valid)  # the documented rule
                assert float(cell) == rounded(expected, m.unit), (target, conc, name)
            for kind in ("timeout", "connection"):
                assert int(by_metric[f"transport errors: {kind}"][col]) == valid[
                    -1
                ].transport_errors.get(kind, 0)
    # the repeated cell shows the median of its repeats (96 and 100), not one of them
    header = tables["concurrency 4"][0]
    col = header.index("torchserve-rest-json")
    thr_row = next(r for r in tables["concurrency 4"] if r[0] == "throughput")
    assert thr_row[col] == "98.00"


def test_overhead_is_server_minus_baseline(built: tuple[Path, str, str]) -> None:
    run_dir, md, _ = built
    steps = stored_steps(run_dir)
    rows = md_tables(md)["Serving overhead vs in-process baselines"]
    row = next(r for r in rows if r[0] == "concurrency 1" and r[1] == "tfserving-rest-json")
    srv = next(s for s in steps if s.target == "tfserving-rest-json" and s.concurrency == 1)
    base = next(s for s in steps if s.target == "tensorflow-inprocess" and s.concurrency == 1)
    assert row[2] == "tensorflow-inprocess"
    assert float(row[3]) == round(srv.latency_ms.p50 - base.latency_ms.p50, 3)
    assert float(row[5]) == round(srv.throughput_rps / base.throughput_rps, 3)


# ---- unavailable / invalid -------------------------------------------------------------------
def test_unavailable_target_is_shown_with_reason(built: tuple[Path, str, str]) -> None:
    _, md, html = built
    targets = md_tables(md)["Targets"]
    row = next(r for r in targets if r[0] == UNAVAILABLE_TARGET)
    assert row[5] == "unavailable (note 1)"
    notes = md_tables(md)["Notes"]
    assert notes[1] == ["1", f"{UNAVAILABLE_TARGET} unavailable: {UNAVAILABLE_REASON}"]
    for conc in (1, 4):  # a column of every side-by-side table, never dropped
        rows = md_tables(md)[f"concurrency {conc}"]
        col = rows[0].index(UNAVAILABLE_TARGET)
        assert rows[1][col] == "unavailable (note 1)"
        assert all(r[col] == "unavailable" for r in rows[2:])
    # the reason is written in the note and in the summary's one line for that server, never in cells
    assert md.count(UNAVAILABLE_REASON) == 2
    assert html.count(UNAVAILABLE_REASON) == 2
    summary_line = next(
        ln for ln in md.splitlines() if ln.startswith("- ") and UNAVAILABLE_REASON in ln
    )
    assert summary_line.startswith("- TF Serving (gRPC): ")
    # recommendations say "no data" for the server whose gRPC target is unavailable
    recs = md_tables(md)["Recommendations"]
    grpc = [r for r in recs[1:] if r[1] == "grpc"]
    assert grpc and all(r[3].startswith("no data") for r in grpc)


def test_invalid_steps_are_not_shown_as_numbers(built: tuple[Path, str, str]) -> None:
    run_dir, md, _ = built
    invalid = [s for s in stored_steps(run_dir) if not s.valid]
    assert invalid
    rows = md_tables(md)["All steps"]
    for s in invalid:
        row = next(r for r in rows if r[0] == s.step_id)
        assert row[4] == f"invalid: {INVALID_REASON}"
        assert row[5:-1] == ["invalid"] * len(ALL_STEP_METRICS)
    c4 = md_tables(md)["concurrency 4"]
    col = c4[0].index("torchserve-rest-raw [native extra]")
    assert c4[1][col] == f"invalid: {INVALID_REASON}"
    assert all(r[col] == "invalid" for r in c4[2:])


# ---- noise -----------------------------------------------------------------------------------
def _spread(vals: list[float]) -> float:
    return (max(vals) - min(vals)) / (sum(vals) / len(vals)) if len(vals) > 1 else 0.0


def _expected_significant(steps: list[StepResult], a: str, b: str, conc: int, metric: str) -> bool:
    """The documented rule, recomputed from the stored JSON independently of the report code."""
    window_stat = {
        "throughput_rps": "throughput_rps",
        "latency_p50_ms": "p50_ms",
        "latency_p99_ms": "p99_ms",
    }[metric]
    m = METRICS[metric]
    vals, noises = [], []
    for target in (a, b):
        valid = [s for s in steps if s.target == target and s.concurrency == conc and s.valid]
        rep = valid[-1]
        vals.append(statistics.median(m.value(s) for s in valid))
        noises.append(
            max(
                _spread([m.value(s) for s in valid]),
                _spread([getattr(w, window_stat) for w in rep.windows[-rep.reported_windows :]]),
            )
        )
    rel = abs(vals[0] - vals[1]) / ((vals[0] + vals[1]) / 2)
    return rel > max(0.05, *noises)


def test_not_significant_exactly_when_the_rule_says(built: tuple[Path, str, str]) -> None:
    run_dir, md, html = built
    steps = stored_steps(run_dir)
    rows = md_tables(md)["Servers head to head, every pair (same protocol, common encoding)"]
    header = rows[0]
    assert header == [
        "load",
        "protocol",
        "metric",
        "unit",
        "a",
        "b",
        "a value",
        "b value",
        "difference",
        "verdict",
    ]
    assert {(r[4], r[5]) for r in rows[1:]} == {
        ("TorchServe", "TF Serving")
    }  # two servers: one pair
    metric_of = {METRIC_LABEL[m]: m for m in HEAD_METRICS}
    seen = set()
    for r in rows[1:]:
        cells = dict(zip(header, r, strict=True))
        if cells["protocol"] != "rest":
            assert cells["verdict"] == "no data"  # TF Serving gRPC unavailable
            continue
        conc = int(cells["load"].split()[-1])
        sig = _expected_significant(
            steps, "torchserve-rest-json", "tfserving-rest-json", conc, metric_of[cells["metric"]]
        )
        assert (cells["verdict"] == NOT_SIGNIFICANT) == (not sig), cells
        seen.add(sig)
    assert seen == {True, False}, "the fixture must exercise both sides of the rule"
    # throughput at c=4: 98 (median of 96, 100) vs 103 is inside noise; at c=1: 50 vs 70 is not
    thr = {r[0]: r[-1] for r in rows[1:] if r[1] == "rest" and r[2] == "throughput"}
    assert thr == {"concurrency 4": NOT_SIGNIFICANT, "concurrency 1": "TF Serving better"}
    assert "How verdicts are decided" in md and NOISE_RULE in md
    assert "How verdicts are decided" in html


@pytest.mark.parametrize(
    ("a", "b", "noise_a", "noise_b", "significant"),
    [
        (100.0, 104.0, 0.0, 0.0, False),  # 3.9 % < 5 % floor
        (100.0, 106.0, 0.0, 0.0, True),  # 5.8 % > 5 %
        (100.0, 106.0, 0.08, 0.0, False),  # inside a's window spread
        (100.0, 110.0, 0.02, 0.08, True),  # 9.5 % > 8 %
    ],
)
def test_noise_rule_both_sides(
    a: float, b: float, noise_a: float, noise_b: float, significant: bool
) -> None:
    v = compare_values(METRICS["throughput_rps"], a, b, noise_a, noise_b)
    assert v.significant is significant
    assert (not v.significant) is (not significant)
    assert v.better == ("b" if significant else None)


# ---- recommendations / friction / resources --------------------------------------------------
def test_recommendations_slo_levels_and_friction(built: tuple[Path, str, str]) -> None:
    _, md, _ = built
    recs = md_tables(md)["Recommendations"]
    assert sorted({r[0] for r in recs[1:]}, key=lambda x: float(x.split()[1])) == [
        "≤ 25 ms",
        "≤ 40 ms",
        "≤ 50 ms",
        "≤ 100 ms",
        "≤ 250 ms",
    ]  # standard levels + experiment's 40
    rest40 = next(r for r in recs if r[0] == "≤ 40 ms" and r[1] == "rest")
    assert rest40[4].startswith("TF Serving") and "peak RSS" in rest40[3]
    start = md_tables(md)["start-up"]
    assert start[0] == ["measurement", "unit", "better", "TorchServe", "TF Serving", "winner"]
    assert start[1] == ["Cold start to ready", "s", "lower", "12.500", "3.250", "TF Serving"]
    pack = md_tables(md)["packaging"]
    assert pack[1][0] == "Container image size (kubernetes)" and pack[1][1] == "MiB"
    assert pack[1][3] == "unavailable (note 2)"
    assert md_tables(md)["Notes"][2][1].endswith("unavailable: no cluster in this run (local path)")
    res = md_tables(md)["Server resources (Prometheus series)"]
    assert {r[0] for r in res[1:]} == {"torchserve", "tfserving"}


def test_no_series_says_not_recorded(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", series=False, friction=False)
    paths = build_report(run)
    md, html = paths.markdown.read_text(), paths.html.read_text()
    assert "not recorded" in md.split("## Server resources")[1].split("##")[0]
    assert 'id="plot-resources-missing"' in html
    assert "not recorded (no friction.jsonl)" in md


def test_plotly_is_inline_once(built: tuple[Path, str, str]) -> None:
    _, _, html = built
    assert html.count("Plotly.newPlot") == 5
    assert not re.search(r"<script[^>]+src=\"https?:", html)  # opens offline
    assert html.count("window.PlotlyConfig") == 1  # the library itself, embedded exactly once


# ---- comparing runs --------------------------------------------------------------------------
def test_compare_refuses_different_cpu_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run(tmp_path / "run-a", cpus=1.0)
    b = make_run(tmp_path / "run-b", cpus=2.0)
    with pytest.raises(CompareRefused) as exc:
        build_report(a, compare=b)
    msg = str(exc.value)
    assert "resources.cpus: 1.0" in msg and "vs 2.0" in msg and str(b) in msg
    assert not (a / "report" / "report.html").exists()
    assert build_report_cli(a, str(b), force=False) != 0
    err = capsys.readouterr().err
    assert "resources.cpus" in err and "1.0" in err and "2.0" in err and "--force" in err

    paths = build_report(a, compare=b, force=True)
    md = paths.markdown.read_text()
    assert "## Compared with run run-b" in md
    assert (
        "comparison forced although the fairness settings differ" in md and "resources.cpus" in md
    )


def test_compare_same_settings_shows_deltas_with_noise_label(tmp_path: Path) -> None:
    a = make_run(tmp_path / "run-a")
    faster = [
        p
        if p.target != "torchserve-grpc-bytes"
        else type(p)(
            p.target, p.concurrency, p.throughput * 1.5, tuple(x * 1.5 for x in p.window_thr), p.p50
        )
        for p in STEP_PLAN
    ]
    b = make_run(tmp_path / "run-b", plan=faster)
    md = build_report(a, compare=b).markdown.read_text()
    rows = md_tables(md)["Compared with run run-b"]
    thr = {(r[0], r[1]): r for r in rows[1:] if r[2] == "throughput"}
    assert thr[("torchserve-rest-json", "concurrency 1")][-1].startswith(NOT_SIGNIFICANT)
    grpc = thr[("torchserve-grpc-bytes", "concurrency 4")]
    assert grpc[4:6] == ["150.00", "225.00"] and grpc[-1] == "other run better"
    unavail = next(r for r in rows[1:] if r[0] == UNAVAILABLE_TARGET)  # never dropped
    assert (
        unavail[4] == unavail[5] == f"unavailable: {UNAVAILABLE_REASON}"
        and unavail[-1] == "no data"
    )


def test_compare_without_fairness_record_needs_force(tmp_path: Path) -> None:
    a = make_run(tmp_path / "run-a")
    b = make_run(tmp_path / "run-b")
    (b / "experiment.yaml").unlink()
    store = RunStore(b)  # a run written before meta.json carried its fairness settings
    store.write_meta(store.read_meta().model_copy(update={"fairness": {}}))
    with pytest.raises(CompareRefused, match="no fairness settings"):
        build_report(a, compare=b)
    assert build_report(a, compare=b, force=True).markdown.exists()


# ---- bad inputs ------------------------------------------------------------------------------
def test_truncated_steps_reports_complete_steps_with_warning(run_a: Path) -> None:
    truncate_with_partial_step(run_a)
    paths = build_report(run_a)
    md, html = paths.markdown.read_text(), paths.html.read_text()
    assert "> **WARNING:** steps.jsonl ends with a truncated line" in md
    assert "truncated last line ignored" in md
    assert f"shows the {len(STEP_PLAN)} complete step(s)" in md
    assert len(md_tables(md)["All steps"]) - 1 == len(STEP_PLAN)
    assert 'class="warning" role="alert"' in html and "truncated" in html


def test_wrong_format_version_is_a_clear_error(
    run_a: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = RunStore(run_a)
    meta = build_meta(experiment(), "run-a")
    store.write_meta(meta.model_copy(update={"format_version": 0}))
    with pytest.raises(FormatVersionError, match="format_version 0 is not supported"):
        build_report(run_a)
    assert build_report_cli(run_a, None, False) == 2
    err = capsys.readouterr().err
    assert "meta.json" in err and "format_version 0" in err and "reads format_version 1" in err


def test_newer_step_format_names_file_and_line(run_a: Path) -> None:
    store = RunStore(run_a)
    store.append_step(make_step("run-a", 50, STEP_PLAN[0]).model_copy(update={"format_version": 2}))
    with pytest.raises(
        FormatVersionError, match=rf"steps.jsonl line {len(STEP_PLAN) + 1}.*format_version 2"
    ):
        build_report(run_a)


def test_missing_dir_and_missing_meta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReportError, match="run directory not found"):
        build_report(tmp_path / "nope")
    assert build_report_cli(tmp_path / "nope", None, False) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"meta.json: not found"):
        build_report(tmp_path / "empty")
    assert build_report_cli(tmp_path / "empty", None, False) == 2
    with pytest.raises(ReportError, match="run directory not found"):
        build_report(make_run(tmp_path / "ok"), compare=tmp_path / "missing-other")


def test_cli_prints_where_it_wrote(run_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_report_cli(run_a, None, False) == 0
    out = capsys.readouterr().out
    assert (
        str(run_a / "report" / "report.html") in out and str(run_a / "report" / "report.md") in out
    )


def test_run_without_steps_still_reports(tmp_path: Path) -> None:
    """A run that died before its first step: provenance + targets + a warning, no crash."""
    run = make_run(tmp_path / "r", plan=[], series=False, friction=False)
    md = build_report(run).markdown.read_text()
    assert "> **WARNING:**" in md and "no step finished in this run" in md
    assert f"unavailable: {UNAVAILABLE_REASON}" in md


def test_report_modules_have_one_job_each_and_no_catch_all() -> None:
    """The report's public names live in small modules (no analysis.py re-exporting them all)."""
    import importlib
    import importlib.util

    assert importlib.util.find_spec("servecmp.report.analysis") is None
    where = {
        "cells": "cells",
        "difference": "stats",
        "compare_friction": "stats",
        "server_pairs": "servers",
        "fmt": "format",
        "Table": "table",
        "NOISE_RULE": "rules",
        "FRICTION_RULE": "rules",
        "side_by_side": "tables.side_by_side",
        "head_to_head": "tables.head_to_head",
        "summary_tables": "tables.summary",
        "friction_tables": "tables.friction",
        "recommendations": "tables.recommendations",
        "differences": "tables.differences",
        "all_steps": "tables.all_steps",
        "notes_table": "tables.notes",
        "resource_table": "tables.resources",
        "overhead": "tables.overhead",
    }
    for name, module in where.items():
        assert hasattr(importlib.import_module(f"servecmp.report.{module}"), name), (module, name)
