"""The report and console present N servers: a column per server, a verdict for every pair of
servers (the noise rule), recommendations over all of them, baselines and labels from the
adapters; a server the registry does not know still shows, under its stored name.

The fixture is a stored run with THREE servers (tests/fixtures/report_runs.py: TorchServe,
TF Serving with its gRPC target unavailable, and "kserve"); the registry holds test adapters
(tests/adapters_for_tests.py)."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
from adapters_for_tests import WITH_KSERVE, registry_of
from fixtures.report_runs import (
    STEP_PLAN,
    THIRD_SERVER_PLAN,
    THIRD_SERVER_TARGETS,
    UNAVAILABLE_TARGET,
    make_run,
)
from rich.console import Console
from test_report import md_tables

from servecmp.console import summary_table
from servecmp.report.build import build_report
from servecmp.report.data import load_run
from servecmp.report.format import NOT_SIGNIFICANT, sig3
from servecmp.report.servers import ServerFacts, server_facts, server_label, server_pairs, servers
from servecmp.results.store import RunStore
from servecmp.servers import registry

LABELS = ["TorchServe", "TF Serving", "KServe"]  # the test adapters' labels, registry order
PAIRS = [f"{a} vs {b}" for a, b in combinations(LABELS, 2)]


@pytest.fixture()
def three(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run-3", third_server=True)


@pytest.fixture(scope="module")
def built3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One report of the three-server run for the tests that only read it (built once per module)."""
    with registry_of(WITH_KSERVE):
        run = make_run(tmp_path_factory.mktemp("built3") / "run-3", third_server=True)
        paths = build_report(run)
        return run, paths.markdown.read_text(), paths.html.read_text()


def test_servers_come_from_the_stored_run_in_registry_order(
    three: Path, test_registry_with_kserve: None
) -> None:
    run = load_run(three)
    assert servers(run) == ["torchserve", "tfserving", "kserve"]
    assert server_pairs(servers(run)) == [
        ("torchserve", "tfserving"),
        ("torchserve", "kserve"),
        ("tfserving", "kserve"),
    ]
    assert (
        [server_label(s) for s in servers(run)]
        == LABELS
        == [registry.get(s).label for s in servers(run)]
    )


def test_summary_has_three_columns_and_a_verdict_per_pair(built3: tuple[Path, str, str]) -> None:
    run_dir, md, html = built3
    steps = RunStore(run_dir).read_steps().steps

    def _p50(target: str) -> float:  # c=1 (the lowest load) has one comparable step per target
        (s,) = [s for s in steps if s.target == target and s.concurrency == 1]
        return s.latency_ms.p50

    rest = md_tables(md)["REST"]
    assert rest[0] == ["question", "unit", *LABELS, *PAIRS]
    best = next(r for r in rest if r[0].startswith("Best throughput"))
    verdicts = dict(zip(PAIRS, best[5:], strict=True))
    assert len(verdicts) == 3
    # best under p99 <= 40 ms (the experiment's SLO), 1 repeat: the fallback rule's relative difference
    assert verdicts["TorchServe vs KServe"].startswith(
        "KServe better: KServe vs TorchServe differ by "
    )
    assert verdicts["TF Serving vs KServe"].startswith(
        "KServe better: KServe vs TF Serving differ by "
    )
    assert all(v.endswith("(1 repeat), resolves ≥ 5.0 %") for v in verdicts.values())
    p50 = next(r for r in rest if r[0].startswith("p50 latency"))
    assert p50[2:5] == [
        sig3(_p50(t)) for t in ("torchserve-rest-json", "tfserving-rest-json", "kserve-rest-json")
    ]
    # one-off friction: each pair judged on its own, against the stated measurement error
    cold = next(
        r
        for r in md_tables(md)["Friction (per server, any protocol)"]
        if r[0] == "Cold start to ready"
    )
    assert cold[2:] == [
        "12.5",
        "3.25",
        "5.5",
        "TF Serving better: differ by 117 % > 50.0 % error (one measurement)",
        "KServe better: differ by 77.8 % > 50.0 % error (one measurement)",
        "TF Serving better: differ by 51.4 % > 50.0 % error (one measurement)",
    ]
    # TF Serving's gRPC target is unavailable: no column there, one line in the summary
    grpc = md_tables(md)["GRPC"]
    assert grpc[0] == ["question", "unit", "TorchServe", "KServe", "TorchServe vs KServe"]
    assert 'id="summary-rest"' in html


def test_head_to_head_judges_every_pair_with_the_noise_rule(built3: tuple[Path, str, str]) -> None:
    _, md, _ = built3
    rows = md_tables(md)["Servers head to head, every pair (same protocol, common encoding)"]
    header = rows[0]
    cells = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    got = {(c["load"], c["protocol"], c["metric"], c["a"], c["b"]): c["verdict"] for c in cells}
    for load in ("concurrency 1", "concurrency 4"):
        for proto in ("rest", "grpc"):
            pairs = {
                (a, b) for (ld, p, m, a, b) in got if (ld, p, m) == (load, proto, "throughput")
            }
            assert pairs == set(combinations(LABELS, 2)), (load, proto, pairs)
    thr = {(ld, p, a, b): v for (ld, p, m, a, b), v in got.items() if m == "throughput"}
    assert thr[("concurrency 1", "rest", "TorchServe", "KServe")] == "KServe better"
    assert thr[("concurrency 1", "rest", "TF Serving", "KServe")] == "KServe better"
    assert thr[("concurrency 1", "rest", "TorchServe", "TF Serving")] == "TF Serving better"
    assert (
        thr[("concurrency 4", "rest", "TorchServe", "TF Serving")] == NOT_SIGNIFICANT
    )  # within noise
    assert (
        thr[("concurrency 4", "rest", "TF Serving", "KServe")] == "KServe better"
    )  # 26 % > its 12 % spread
    assert thr[("concurrency 1", "grpc", "TorchServe", "KServe")] == NOT_SIGNIFICANT  # 61 vs 60
    assert thr[("concurrency 4", "grpc", "TorchServe", "KServe")] == "KServe better"
    # TF Serving's gRPC target is unavailable: every pair with it says so
    assert thr[("concurrency 1", "grpc", "TorchServe", "TF Serving")] == "no data"
    assert thr[("concurrency 1", "grpc", "TF Serving", "KServe")] == "no data"
    no_data = next(
        c
        for c in cells
        if (c["load"], c["protocol"], c["a"], c["b"])
        == ("concurrency 1", "grpc", "TF Serving", "KServe")
    )
    assert no_data["a value"] == f"no data ({UNAVAILABLE_TARGET} unavailable)"


def test_recommendations_rank_all_servers(built3: tuple[Path, str, str]) -> None:
    _, md, _ = built3
    recs = md_tables(md)["Recommendations"]
    assert recs[0] == ["p99 SLO", "protocol", *LABELS, "recommendation"]
    rest250 = next(r for r in recs if r[0] == "≤ 250 ms" and r[1] == "rest")
    # best: KServe 130 req/s at c=4; runner-up TF Serving 70 at c=1 (its c=4 step failed 0.11 % > 0.1 %)
    assert rest250[5].startswith("KServe (KServe vs TF Serving throughput 60.0 %"), rest250
    assert "130.00 req/s" in rest250[4] and "kserve-rest-json" in rest250[4]
    grpc25 = next(r for r in recs if r[0] == "≤ 25 ms" and r[1] == "grpc")
    assert grpc25[5] == "none of the measured servers meets this SLO (no data for TF Serving)"
    grpc250 = next(r for r in recs if r[0] == "≤ 250 ms" and r[1] == "grpc")
    assert grpc250[3].startswith("no data") and grpc250[5].startswith(
        "KServe (KServe vs TorchServe"
    )


def test_baseline_rows_come_from_the_adapters(built3: tuple[Path, str, str]) -> None:
    _, md, _ = built3
    rows = md_tables(md)["Serving overhead vs in-process baselines"]
    base = {(r[0], r[1]): r[2] for r in rows[1:]}
    for load in ("concurrency 1", "concurrency 4"):
        assert (
            base[(load, "kserve-rest-json")]
            == registry.get("kserve").baseline
            == "pytorch-inprocess"
        )
        assert base[(load, "kserve-grpc-oip")] == "pytorch-inprocess"
        assert base[(load, "torchserve-rest-json")] == "pytorch-inprocess"
        assert base[(load, "tfserving-rest-json")] == "tensorflow-inprocess"
    # kserve-rest-json at c=1: 90 req/s over pytorch-inprocess's 200
    assert next(r for r in rows if r[:2] == ["concurrency 1", "kserve-rest-json"])[5] == "0.450"


def test_side_by_side_and_friction_have_a_column_per_server(built3: tuple[Path, str, str]) -> None:
    _, md, _ = built3
    c1 = md_tables(md)["concurrency 1"]
    for t in THIRD_SERVER_TARGETS:
        assert t in c1[0]
    start = md_tables(md)["start-up"]
    assert start[0] == ["measurement", "unit", "better", *LABELS, "winner"]
    # the winner beats the runner-up (KServe 5.5 s) beyond the one-off error: 51 % > 50 %
    assert start[1] == [
        "Cold start to ready",
        "s",
        "lower",
        "12.500",
        "3.250",
        "5.500",
        "TF Serving",
    ]
    res = md_tables(md)["resources"]
    peak = next(r for r in res if r[0].startswith("Peak memory"))
    # 429 vs 668 MiB, one measurement each: 43 % is within the stated 50 % error
    assert peak[3:] == [
        "858.3",
        "429.2",
        "667.6",
        "one measurement: no verdict (differ by 43.5 % ≤ 50.0 % error)",
    ]


def test_a_server_missing_from_the_registry_still_shows(three: Path, test_registry: None) -> None:
    """Reports are rebuilt from stored results: a stored server this registry does not know gets
    its stored name as label, no baseline row, and every pairwise verdict."""
    with pytest.raises(KeyError):
        registry.get("kserve")
    run = load_run(three)
    assert server_facts("kserve") == ServerFacts("kserve", "kserve", None, registered=False)
    assert servers(run) == ["torchserve", "tfserving", "kserve"]
    md = build_report(three).markdown.read_text()
    rest = md_tables(md)["REST"]
    assert rest[0] == [
        "question",
        "unit",
        "TorchServe",
        "TF Serving",
        "kserve",
        "TorchServe vs TF Serving",
        "TorchServe vs kserve",
        "TF Serving vs kserve",
    ]
    overhead = md_tables(md)["Serving overhead vs in-process baselines"]
    assert not any(r[1].startswith("kserve") for r in overhead[1:])
    pairs = md_tables(md)["Differences between targets (paired over interleaved repeats)"]
    assert not any(
        r[1] == "pytorch-inprocess [baseline]" and r[2].startswith("kserve") for r in pairs[1:]
    )


def test_two_server_run_keeps_two_columns(tmp_path: Path, test_registry_with_kserve: None) -> None:
    """A registered server absent from the run gets no column."""
    md = build_report(make_run(tmp_path / "run-2")).markdown.read_text()
    assert md_tables(md)["REST"][0] == [
        "question",
        "unit",
        "TorchServe",
        "TF Serving",
        "TorchServe vs TF Serving",
    ]
    assert md_tables(md)["Recommendations"][0] == [
        "p99 SLO",
        "protocol",
        "TorchServe",
        "TF Serving",
        "recommendation",
    ]


def test_console_lists_every_server_target(three: Path) -> None:
    table, _ = summary_table(three)
    con = Console(width=80, record=True)
    con.print(table)
    text = con.export_text()
    for plan in (*STEP_PLAN, *THIRD_SERVER_PLAN):
        assert plan.target in text
    rows = [line for line in text.splitlines() if line.startswith("kserve-")]
    assert len(rows) == 4 and all(line.rstrip().endswith("ok") for line in rows)
