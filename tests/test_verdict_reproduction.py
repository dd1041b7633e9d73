"""Verdicts that reproduce: the stable-verdict rule (stats.reproducible) on two recorded runs of
one commit, and its pieces. The fixture (tests/data/verdict_reproduction.json) holds only what
the summary's verdicts are computed from; refresh it with
``scripts/record_verdict_fixture.py RUN1 RUN2``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.report_runs import make_run
from test_report_summary import repeated_rounds, summary_tables

from servecmp.report.build import build_report
from servecmp.report.data import load_run
from servecmp.report.format import STABLE, UNSTABLE, verdict_brief
from servecmp.report.reproduce import disagreements, summary_inputs, verdict_of
from servecmp.report.servers import short_label
from servecmp.report.stats import paired_verdict, reproducible, rerun_width_factor
from servecmp.results.metrics import METRICS

FIXTURE = Path(__file__).parent / "data" / "verdict_reproduction.json"

pytestmark = pytest.mark.usefixtures("test_registry_with_kserve")


# Pairs of idle-machine demo runs of one commit (scripts/record_verdict_fixture.py): 4 rounds of
# 1 s windows (17:39-17:50), 5 rounds of 0.75 s windows (20:09-20:20), 5 rounds of 1 s windows
# (20:20-20:31), all 2026-12-07; the demo's design once more below.
RECORDED = [
    pytest.param(FIXTURE, id="r4-w1"),
    pytest.param(FIXTURE.with_name("verdict_reproduction_r5w075.json"), id="r5-w0.75"),
    # the demo's design: 4 rounds of 1 s windows, baselines once (20:34-20:43)
    pytest.param(FIXTURE.with_name("verdict_reproduction_r4w1_once.json"), id="r4-w1-once"),
    pytest.param(
        FIXTURE.with_name("verdict_reproduction_r5w1.json"),
        id="r5-w1",
        marks=pytest.mark.xfail(
            strict=True,
            reason="known: gRPC p50 moved between the two runs (-13.0 % [-26.6, +3.0] vs -23.3 % "
            "[-28.3, -17.9]): the first run's estimate lies outside the second run's interval, "
            "a shift between runs that no within-run interval covers",
        ),
    ),
]


@pytest.mark.parametrize("fixture", RECORDED)
def test_two_recorded_runs_of_one_commit_never_disagree(fixture: Path) -> None:
    first, second = (r["verdicts"] for r in json.loads(fixture.read_text())["runs"])
    assert disagreements(first, second) == []
    assert disagreements(second, first) == []
    # not vacuous: the rule does call some verdicts stable in these runs
    assert any((v := verdict_of(rec)) is not None and v.stable for rec in first + second)


def test_a_rerun_may_be_noisier_than_the_run_that_called_a_verdict_stable() -> None:
    """5 rounds of 0.75 s windows, recorded: run 2 called gRPC best throughput "stable" at a
    noise of 12 %, run 1 measured 19 % and called it not significant. The stable margin allows
    for a noisier rerun (the noise estimate's upper confidence bound), so run 2's is not stable."""
    runs = json.loads(FIXTURE.with_name("verdict_reproduction_r5w075.json").read_text())["runs"]
    (rec,) = (
        r for r in runs[1]["verdicts"] if r["key"] == "grpc/best_throughput/torchserve~kserve"
    )
    v = verdict_of(rec)
    assert v is not None and v.significant and not v.stable
    lo, hi = v.interval
    assert reproducible(lo, hi)  # what the rule said before: a rerun assumed as wide as this run
    assert rerun_width_factor(4) > rerun_width_factor(5) > rerun_width_factor(20) > 1.0


def _rec(key: str, rounds: list[tuple[float, float]]) -> dict:
    return {
        "key": key,
        "metric": "latency_p50_ms",
        "values": [rounds[0][0], rounds[0][1]],
        "rounds": {str(i): list(p) for i, p in enumerate(rounds)},
        "noise": [0.0, 0.0],
    }


def test_a_stable_verdict_lost_on_rerun_is_a_disagreement_an_unstable_one_is_not() -> None:
    clear = _rec("q", [(14.9, 10.4), (14.4, 10.1), (13.6, 9.6)])  # -30 % [-32, -28]: stable
    edge = _rec("q", [(14.3, 11.3), (12.9, 11.3), (12.3, 10.7)])  # -16 % [-28, -2]: not
    gone = _rec("q", [(12.0, 11.9), (12.1, 12.0), (11.9, 12.1)])  # no difference
    flipped = _rec("q", [(10.0, 12.0), (10.2, 12.3), (9.9, 11.8)])  # the other way round
    sv, ev = verdict_of(clear), verdict_of(edge)
    assert sv is not None and sv.significant and sv.stable
    assert ev is not None and not ev.stable
    assert disagreements([clear], [gone]) != []
    assert disagreements([gone], [clear]) != []  # either order
    assert disagreements([edge], [gone]) == []
    assert disagreements([clear], [flipped]) != []


def test_reproducible_needs_the_near_edge_beyond_the_resolving_power() -> None:
    # the two demo runs of 2026-12-07: REST p50 held, gRPC p50 flipped to "not significant"
    assert reproducible(-0.282, -0.155)
    assert not reproducible(-0.275, -0.018)
    assert not reproducible(-0.05, 0.03)  # the interval holds zero
    assert not reproducible(0.045, 0.047)  # beyond zero, but under the 5 % floor
    assert reproducible(0.06, 0.07)


def test_summary_cells_say_whether_a_verdict_is_stable() -> None:
    m = METRICS["latency_p50_ms"]
    stable = paired_verdict(m, [(14.9, 10.4), (14.4, 10.1), (13.6, 9.6)], 14.4, 10.1)
    shaky = paired_verdict(m, [(14.3, 11.3), (12.9, 11.3), (12.3, 10.7)], 12.9, 11.3)
    assert shaky.significant and not shaky.stable
    assert verdict_brief(stable, "A", "B")[0].endswith(f"; {STABLE}")
    assert verdict_brief(shaky, "A", "B")[0].endswith(f"; {UNSTABLE}")


def test_the_records_give_the_summary_s_own_verdicts(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "r", third_server=True, plan=repeated_rounds(3))
    md = build_report(run_dir).markdown.read_text()
    shown = [cell for rows in summary_tables(md).values() for row in rows[1:] for cell in row]
    recs = summary_inputs(load_run(run_dir))
    assert any(r["key"].startswith("rest/") for r in recs)
    for rec in recs:
        if "friction" in rec:
            continue
        a, b = rec["key"].rsplit("/", 1)[1].split("~")
        text, _ = verdict_brief(verdict_of(rec), short_label(a), short_label(b))
        assert text in shown, (rec["key"], text)
