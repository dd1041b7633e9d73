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
from servecmp.report.stats import paired_verdict, reproducible
from servecmp.results.metrics import METRICS

FIXTURE = Path(__file__).parent / "data" / "verdict_reproduction.json"

pytestmark = pytest.mark.usefixtures("test_registry_with_kserve")


def test_two_recorded_runs_of_one_commit_never_disagree() -> None:
    first, second = (r["verdicts"] for r in json.loads(FIXTURE.read_text())["runs"])
    assert disagreements(first, second) == []
    assert disagreements(second, first) == []
    # not vacuous: the rule does call some verdicts stable in these runs
    assert any((v := verdict_of(rec)) is not None and v.stable for rec in first + second)


def _rec(key: str, rounds: list[tuple[float, float]]) -> dict:
    return {
        "key": key,
        "metric": "latency_p50_ms",
        "values": [rounds[0][0], rounds[0][1]],
        "rounds": {str(i): list(p) for i, p in enumerate(rounds)},
        "noise": [0.0, 0.0],
    }


def test_a_stable_verdict_lost_on_rerun_is_a_disagreement_an_unstable_one_is_not() -> None:
    clear = _rec("q", [(14.9, 11.3), (14.4, 11.6), (13.6, 10.6)])  # -22 % [-28, -16]: stable
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
    stable = paired_verdict(m, [(14.9, 11.3), (14.4, 11.6), (13.6, 10.6)], 14.4, 11.3)
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
