"""scripts/bench_demo.py without running a demo: how a design's experiment is made, and what it
prints from two runs' verdict records (the recorded fixture stands in for two runs)."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_demo", ROOT / "scripts" / "bench_demo.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_demo"] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_a_design_is_the_quick_profile_then_its_overrides() -> None:
    b = _bench()
    path, overrides = b.DESIGNS["quick-r6-w0.5"]
    exp = b.resolved_experiment(path, overrides)
    assert exp["load"]["repeats"] == 6 and exp["load"]["stability"]["window_s"] == 0.5
    previous = b.resolved_experiment(*b.DESIGNS["previous"])  # the design measured 2026-12-07
    assert previous["load"]["repeats"] == 4 and previous["load"]["baseline_rounds"] == "every"
    assert previous["load"]["stability"]["window_s"] == 1.0
    assert exp["load"]["warmup_s"] <= 0.5 and exp["friction"]["startups"] <= 3  # --quick's
    with pytest.raises(SystemExit, match="'nope' is not a section"):
        b.resolved_experiment(path, {"load.nope.x": 1})
    with pytest.raises(Exception, match=r"load\.repeats"):
        b.resolved_experiment(path, {"load.repeats": 0})  # validated like any experiment file


def test_it_prints_resolving_power_per_pair_and_rerun_agreement() -> None:
    b = _bench()
    runs = json.loads((ROOT / "tests" / "data" / "verdict_reproduction.json").read_text())["runs"]
    first, second = (b.Outcome("quick", 300.0, None, r["verdicts"]) for r in runs)
    lines = b.pair_lines(first)
    assert lines and all("resolves" in ln and "noise" in ln for ln in lines)
    assert not any(ln.strip().startswith("friction/") for ln in lines)  # same-protocol pairs only
    assert b.worst_resolution(first) is not None and b.worst_resolution(first) >= 0.05
    text = b.agreement(first, second)
    assert "disagreements under the stable rule: none" in text
    assert "rerun estimates inside the first run's interval" in text


def test_wall_time_prints_whole_minutes() -> None:
    """296 s is "4 min 56 s" (a rounded-up "5 min 56 s" overstated the demo by a minute)."""
    assert _bench().minutes_seconds(296.4) == "4 min 56 s"
    assert _bench().minutes_seconds(59.6) == "1 min 0 s"


def test_predict_reproduces_the_report_s_resolving_power_at_the_recorded_rounds() -> None:
    """--predict's arithmetic (noise x t(n-1)/sqrt(n)) at the recorded number of rounds is the
    resolving power the report stated for that run; more rounds shrink it by t(n-1)/sqrt(n)."""
    from servecmp.report.reproduce import verdict_of

    b = _bench()
    runs = b.recorded_runs(ROOT / "tests" / "data" / "verdict_reproduction.json")
    checked = 0
    for _, recs in runs:
        for rec in recs:
            v = verdict_of(rec)
            d = b.log_ratios(rec) if "friction" not in rec else []
            if v is None or len(d) < 3:
                continue
            half = statistics.stdev(d) * b.round_factor(len(d))
            assert max(0.05, math.expm1(half)) == pytest.approx(v.resolution, rel=1e-9)
            checked += 1
    assert checked >= 6
    assert b.round_factor(5) / b.round_factor(4) == pytest.approx(1.242 / 1.591, rel=1e-3)
    lines = b.predicted_lines(runs, 5)
    assert any(ln.startswith("pooled over 2 runs") for ln in lines)
    assert all("without round 1" in ln for ln in lines if "/" in ln and "rounds" in ln)


def test_predict_refuses_what_is_not_a_run_or_a_fixture(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit, match=r"--predict .*x\.json: expected a run directory"):
        _bench().recorded_runs(bad)
    with pytest.raises(SystemExit, match="at least 2 rounds"):
        _bench().main(["--predict", str(bad), "--rounds", "1"])


def test_predict_states_what_would_be_called_stable_with_the_between_run_component() -> None:
    """--predict's "stable >=" is the stable rule's threshold (stats.reproducible) at that noise,
    rounds and tau; with tau > 0 more rounds cannot bring it under t(n-1) sqrt(2) tau."""
    from scipy import stats

    from servecmp.report.stats import BETWEEN_RUN, reproducible

    b = _bench()
    for sd, n, tau in [(0.08, 4, 0.0), (0.08, 4, 0.03), (0.2, 5, 0.05), (0.01, 20, 0.04)]:
        floor, half = b.stable_floor(sd, n, tau), sd * b.round_factor(n)
        for eps, called in ((1e-6, True), (-1e-6, False)):
            m = math.log1p(floor) + eps
            assert reproducible(math.expm1(m - half), math.expm1(m + half), n, tau) is called
    for n in (4, 50, 500):
        assert b.stable_floor(0.05, n, 0.03) > math.expm1(stats.t.ppf(0.975, n - 1) * 0.03 * 2**0.5)
    assert b.stable_floor(0.05, 4, 0.03) > b.stable_floor(0.05, 4, 0.0)
    runs = b.recorded_runs(ROOT / "tests" / "data" / "verdict_reproduction.json")
    lines = b.predicted_lines(runs, 5)
    assert lines[0] == f"between-run component tau = {BETWEEN_RUN.tau:.2%} (log-ratio sd)"
    assert all("stable >= " in ln for ln in lines if "rounds" in ln)
    with pytest.raises(SystemExit, match=r"--between-run -0\.1: expected a log-ratio sd"):
        b.main(
            [
                "--predict",
                str(ROOT / "tests" / "data" / "verdict_reproduction.json"),
                "--between-run",
                "-0.1",
            ]
        )
