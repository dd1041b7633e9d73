"""The summary fits one screen and says how much each verdict can resolve: short server names in
verdict cells (version and flavour in the column headers), at most three significant figures, one
line for a server without data instead of a column of "no data", "resolves ≥ x" on every pair,
and friction verdicts that respect how often (and how precisely) a quantity was measured.

Stored runs come from tests/fixtures/report_runs.py; the registry holds test adapters, KServe's
label made as long as the real adapter's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from adapters_for_tests import KServeForTests
from fixtures.report_runs import (
    STEP_PLAN,
    THIRD_SERVER_PLAN,
    UNAVAILABLE_REASON,
    PlannedStep,
    make_run,
)
from test_report import md_tables

from servecmp.report.build import build_report
from servecmp.report.format import pct3, sig3
from servecmp.report.rules import FRICTION_RULE, NOISE_RULE
from servecmp.report.stats import ONE_OFF_ERROR, compare_friction
from servecmp.results.friction import FRICTION_METRICS, append_friction, record
from servecmp.results.schema import TargetAvailability
from servecmp.results.store import RunStore

LONG = "KServe 0.21 (Python model server)"
FRICTION = "Friction (per server, any protocol)"

pytestmark = pytest.mark.usefixtures("test_registry_with_kserve")


@pytest.fixture(autouse=True)
def long_kserve_label(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like the real adapter: a label with version and flavour, and a short name."""
    monkeypatch.setattr(KServeForTests, "label", LONG)
    monkeypatch.setattr(KServeForTests, "short_label", "KServe", raising=False)


def summary_md(md: str) -> str:
    return md.split("## Summary")[1].split("### Notes")[0]


def summary_tables(md: str) -> dict[str, list[list[str]]]:
    return {k: v for k, v in md_tables(summary_md(md)).items() if k in ("REST", "GRPC", FRICTION)}


def repeated_rounds(n: int) -> list[PlannedStep]:
    """Every step of the three-server plan, ``n`` interleaved rounds, a little spread per round."""
    out = []
    for r in range(n):
        for p in STEP_PLAN + THIRD_SERVER_PLAN:
            if p.valid:
                f = 1.0 + 0.02 * ((r + len(p.target)) % 3 - 1)
                out.append(
                    PlannedStep(
                        p.target,
                        p.concurrency,
                        p.throughput * f,
                        tuple(x * f for x in p.window_thr),
                        p.p50 / f,
                        repeat=r,
                    )
                )
    return out


def friction_run(
    tmp_path: Path, values: dict[str, list[float]], metric: str = "idle_rss_bytes"
) -> str:
    """A three-server run whose only friction is ``metric``: per server its measurements, round by
    round, interleaved (round k of every server before round k + 1)."""
    run = make_run(tmp_path / "r", third_server=True, friction=False, series=False)
    for k in range(max(len(v) for v in values.values())):
        for server, vs in values.items():
            if k < len(vs):
                append_friction(run, record(server, metric, vs[k]))
    return build_report(run).markdown.read_text()


# ---- short names, three significant figures ------------------------------------------------------
def test_verdict_cells_use_short_names_and_headers_keep_the_version(tmp_path: Path) -> None:
    md = build_report(make_run(tmp_path / "r", third_server=True)).markdown.read_text()
    tables = summary_tables(md)
    rest = tables["REST"]
    assert rest[0][2:5] == ["TorchServe", "TF Serving", LONG]
    assert rest[0][5:] == [
        "TorchServe vs TF Serving",
        "TorchServe vs KServe",
        "TF Serving vs KServe",
    ]
    for name, rows in tables.items():
        for row in rows[1:]:
            for cell in row:
                assert "0.21" not in cell and "Python model server" not in cell, (name, cell)
    assert next(r for r in rest if r[0].startswith("Best throughput"))[6].startswith(
        "KServe better: KServe vs TorchServe"
    )


def _decimal_digits(number: str) -> int:
    """Significant digits of a decimal number as written ("17.903": 5, "0.0123": 3)."""
    return len(number.replace(".", "").lstrip("0"))


@pytest.mark.parametrize("repeats", [1, 3])
def test_summary_numbers_have_at_most_three_significant_figures(
    tmp_path: Path, repeats: int
) -> None:
    plan = repeated_rounds(repeats) if repeats > 1 else None
    run = make_run(tmp_path / "r", third_server=True, plan=plan)
    for k in range(1, 3):  # several measurements per server, too
        for server, rss in (
            ("torchserve", 465.123e6),
            ("tfserving", 300.456e6),
            ("kserve", 435.789e6),
        ):
            append_friction(run, record(server, "idle_rss_bytes", rss * (1 + 0.013 * k)))
    md = build_report(run).markdown.read_text()
    checked = 0
    for name, rows in summary_tables(md).items():
        for row in rows[1:]:
            for cell in row[2:]:
                for number in re.findall(r"\d[\d,]*\.\d+", cell):  # integers (1,274) stay whole
                    checked += 1
                    assert _decimal_digits(number) <= 3, (name, row[0], cell)
    assert checked > 20


def test_three_significant_figures() -> None:
    assert [sig3(x) for x in (1274.4, 82.37, 3.3, 0.012345, 99.96, 5.0, None)] == [
        "1,274",
        "82.4",
        "3.3",
        "0.0123",
        "100",
        "5",
        "—",
    ]
    assert [pct3(x, True) for x in (0.1483, -0.0512, 1.659, 0.0)] == [
        "+14.8 %",
        "-5.1 %",
        "+166 %",
        "+0.0 %",
    ]
    assert pct3(0.05) == "5.0 %"


# ---- an unavailable server: one line, no column ------------------------------------------------
def test_a_server_unavailable_in_one_protocol_gets_one_line_not_a_column(tmp_path: Path) -> None:
    md = build_report(make_run(tmp_path / "r")).markdown.read_text()
    tables = summary_tables(md)
    assert tables["GRPC"][0] == ["question", "unit", "TorchServe"]
    assert not any("no data" in c or "unavailable" in c for r in tables["GRPC"] for c in r)
    lines = [ln for ln in summary_md(md).splitlines() if ln.startswith("- ")]
    assert lines == [f"- TF Serving (gRPC): unavailable: {UNAVAILABLE_REASON}"]


def test_a_server_unavailable_everywhere_gets_one_line(tmp_path: Path) -> None:
    plan = [p for p in STEP_PLAN + THIRD_SERVER_PLAN if not p.target.startswith("tfserving-")]
    run = make_run(tmp_path / "r", plan=plan, third_server=True)
    RunStore(run).append_target(
        TargetAvailability(target="tfserving-rest-json", available=False, reason=UNAVAILABLE_REASON)
    )
    md = build_report(run).markdown.read_text()
    lines = [ln for ln in summary_md(md).splitlines() if ln.startswith("- ")]
    assert lines == [f"- TF Serving (REST, gRPC): unavailable: {UNAVAILABLE_REASON}"]
    for proto in ("REST", "GRPC"):
        assert "TF Serving" not in " ".join(summary_tables(md)[proto][0])


# ---- resolving power -----------------------------------------------------------------------------
@pytest.mark.parametrize("repeats", [1, 3])
def test_every_pair_verdict_states_what_it_resolves(tmp_path: Path, repeats: int) -> None:
    plan = repeated_rounds(repeats) if repeats > 1 else None
    md = build_report(make_run(tmp_path / "r", third_server=True, plan=plan)).markdown.read_text()
    tables = summary_tables(md)
    pair_cells = []
    for proto in ("REST", "GRPC"):
        header = tables[proto][0]
        cols = [i for i, h in enumerate(header) if " vs " in h]
        pair_cells += [r[i] for r in tables[proto][1:] for i in cols]
    assert len(pair_cells) >= 12  # 3 REST pairs and 1 gRPC pair, 3 questions each
    for cell in pair_cells:
        assert re.search(r", resolves ≥ \d[\d.,]* %(; stable|; may not reproduce)?$", cell), cell
        if repeats > 1:
            assert re.search(r" \[[+-]\d", cell), cell  # the paired interval
    assert "resolves ≥ x" in NOISE_RULE and "single-step threshold" in NOISE_RULE


# ---- friction verdicts ---------------------------------------------------------------------------
def test_one_measurement_each_is_no_verdict_within_the_stated_error(tmp_path: Path) -> None:
    md = friction_run(
        tmp_path, {"torchserve": [465 * 2**20], "kserve": [435 * 2**20], "tfserving": [300 * 2**20]}
    )
    row = next(r for r in summary_tables(md)[FRICTION] if r[0] == "Idle memory (RSS)")
    header = summary_tables(md)[FRICTION][0]
    cells = dict(zip(header, row, strict=True))
    assert cells["TorchServe"] == "465" and cells[LONG] == "435"
    assert cells["TorchServe vs KServe"].startswith("one measurement: no verdict"), cells
    # 300 vs 465 MiB: 43 % apart, still within the 50 % a single measurement is trusted to
    assert cells["TorchServe vs TF Serving"].startswith("one measurement: no verdict"), cells
    # the friction section's winner column follows the same rule
    detail = next(r for r in md_tables(md)["resources"] if r[0] == "Idle memory (RSS)")
    assert detail[-1].startswith("one measurement: no verdict"), detail


def test_one_measurement_each_beyond_the_error_is_called(tmp_path: Path) -> None:
    md = friction_run(
        tmp_path,
        {"torchserve": [12.5], "tfserving": [3.25], "kserve": [12.0]},
        "cold_start_ready_s",
    )
    rows = summary_tables(md)[FRICTION]
    cells = dict(zip(rows[0], next(r for r in rows if r[0] == "Cold start to ready"), strict=True))
    assert cells["TorchServe vs TF Serving"] == (
        f"TF Serving better: differ by 117 % > {pct3(ONE_OFF_ERROR)} error (one measurement)"
    )
    assert cells["TorchServe vs KServe"].startswith("one measurement: no verdict")


def test_three_interleaved_measurements_are_paired(tmp_path: Path) -> None:
    mib = 2**20
    md = friction_run(
        tmp_path,
        {
            "torchserve": [465 * mib, 480 * mib, 470 * mib],
            "kserve": [435 * mib, 452 * mib, 441 * mib],  # 6 % below, every round
            "tfserving": [300 * mib, 520 * mib, 410 * mib],
        },
    )  # all over the place
    rows = summary_tables(md)[FRICTION]
    cells = dict(zip(rows[0], next(r for r in rows if r[0] == "Idle memory (RSS)"), strict=True))
    assert cells["TorchServe"] == "470 (median of 3)" and cells[LONG] == "441 (median of 3)"
    assert re.fullmatch(
        r"KServe better: KServe vs TorchServe -6\.\d % \[-\d+\.\d %, -\d+\.\d %\], resolves ≥ .*",
        cells["TorchServe vs KServe"],
    ), cells
    assert cells["TorchServe vs TF Serving"].startswith(
        "not significant: TF Serving vs TorchServe "
    ), cells


def test_stored_startup_indexes_pair_the_rounds_whatever_the_file_order(tmp_path: Path) -> None:
    # The run stores each start-up's index; a server written out of order still pairs by round.
    mib = 2**20
    run = make_run(tmp_path / "r", third_server=True, friction=False, series=False)
    for server, vals, order in (
        ("torchserve", [400, 420, 440], [2, 0, 1]),
        ("kserve", [380, 399, 418], [0, 1, 2]),
    ):
        for k in order:
            append_friction(run, record(server, "idle_rss_bytes", vals[k] * mib, index=k))
    rows = summary_tables(build_report(run).markdown.read_text())[FRICTION]
    cells = dict(zip(rows[0], next(r for r in rows if r[0] == "Idle memory (RSS)"), strict=True))
    # paired by index: KServe is 5 % below TorchServe in every round; in file order it would not be
    assert cells["TorchServe vs KServe"].startswith("KServe better: KServe vs TorchServe -5."), (
        cells
    )


def test_friction_rule_compares_counts_exactly_and_needs_three_rounds_to_pair() -> None:
    knobs = FRICTION_METRICS["config_knobs_changed"]
    v = compare_friction(knobs, {0: 3.0}, {0: 4.0})
    assert v is not None and v.rule == "exact" and v.significant and v.better == "a"
    assert not compare_friction(knobs, {0: 3.0}, {0: 3.0}).significant  # type: ignore[union-attr]
    rss = FRICTION_METRICS["idle_rss_bytes"]
    two = compare_friction(rss, {0: 100.0, 1: 101.0}, {0: 120.0, 1: 121.0})
    assert two is not None and two.rule == "one-off" and not two.significant and two.n_a == 2
    three = compare_friction(rss, {0: 100.0, 1: 101.0, 2: 99.0}, {0: 120.0, 1: 121.0, 2: 119.0})
    assert (
        three is not None and three.rule == "paired" and three.significant and three.better == "a"
    )
    assert compare_friction(rss, {}, {0: 1.0}) is None


def test_the_friction_rule_is_written_into_the_report(tmp_path: Path) -> None:
    paths = build_report(make_run(tmp_path / "r"))
    md, html = paths.markdown.read_text(), paths.html.read_text()
    rules = md.split("## How verdicts are decided")[1].split("\n## ")[0]
    assert FRICTION_RULE in rules and 'id="friction-rule"' in html
    assert pct3(ONE_OFF_ERROR).replace(" ", "") in FRICTION_RULE.replace(" ", "")
    assert "one measurement: no verdict" in FRICTION_RULE and "median" in FRICTION_RULE


def test_every_friction_metric_has_a_report_label() -> None:
    from servecmp.report.format import FRICTION_LABEL

    assert set(FRICTION_METRICS) <= set(FRICTION_LABEL), set(FRICTION_METRICS) - set(FRICTION_LABEL)


def test_baselines_measured_in_round_one_only_leave_the_pairs_paired(tmp_path: Path) -> None:
    """load.baseline_rounds: first — the in-process references have one step per level, the
    server pairs keep every round: the summary's pair verdicts are those of a run that measured
    the baselines in every round, and the baselines still show."""
    every = repeated_rounds(5)
    first = [p for p in every if not (p.target.endswith("-inprocess") and p.repeat)]
    summaries = {}
    for name, plan in (("every", every), ("first", first)):
        run = make_run(tmp_path / name, third_server=True, plan=plan)
        md = build_report(run).markdown.read_text()
        summaries[name] = {k: v for k, v in summary_tables(md).items() if k != FRICTION}
        assert "pytorch-inprocess" in md

    # the same cells called (the fixture's values move with each step's index), each paired
    def pairs(summary: dict[str, list[list[str]]]) -> list[str]:
        return [c for rows in summary.values() for r in rows[1:] for c in r if " vs " in c]

    called = pairs(summaries["first"])
    assert len(called) == len(pairs(summaries["every"])) >= 4
    assert all(re.search(r" \[[+-]\d", c) for c in called), called


def test_the_provenance_states_the_rounds_that_ran_and_where_the_baselines_were(
    tmp_path: Path,
) -> None:
    """The demo's 4-round report said "interleaved rounds (load.repeats) | 1": the run's meta
    did not record load.repeats. Now it does (and load.baseline_rounds); a run stored without it
    shows the rounds its steps ran, and a run cut short says how many were planned."""
    from fixtures.report_runs import experiment

    from servecmp.experiment import Load
    from servecmp.results.provenance import build_meta

    plan = [p for p in repeated_rounds(5) if not (p.target.endswith("-inprocess") and p.repeat)]
    run = make_run(tmp_path / "r", third_server=True, plan=plan)
    store = RunStore(run)
    meta = store.read_meta()
    exp = experiment().model_copy(update={"load": Load(repeats=5, baseline_rounds="first")})
    recorded = build_meta(exp, meta.run_id, placement=meta.placement).load
    assert recorded["repeats"] == 5 and recorded["baseline_rounds"] == "first"

    def row(name: str) -> str:
        md = build_report(run).markdown.read_text()
        return next(ln for ln in md.splitlines() if ln.startswith(f"| {name} |"))

    store.write_meta(meta.model_copy(update={"load": recorded}))
    assert row("interleaved rounds (load.repeats)") == "| interleaved rounds (load.repeats) | 5 |"
    assert row("in-process baselines measured in").endswith("| round 1 only |")
    store.write_meta(meta.model_copy(update={"load": {**recorded, "repeats": 6}}))
    assert row("interleaved rounds (load.repeats)").endswith("| 5 of 6 planned |")
    older = {k: v for k, v in recorded.items() if k not in ("repeats", "baseline_rounds")}
    store.write_meta(meta.model_copy(update={"load": older}))
    assert row("interleaved rounds (load.repeats)").endswith("| 5 |")
    assert row("in-process baselines measured in").endswith("| every round |")
