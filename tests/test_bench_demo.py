"""scripts/bench_demo.py without running a demo: how a design's experiment is made, and what it
prints from two runs' verdict records (the recorded fixture stands in for two runs)."""

from __future__ import annotations

import importlib.util
import json
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
    path, overrides = b.DESIGNS["quick-r5"]
    exp = b.resolved_experiment(path, overrides)
    assert exp["load"]["repeats"] == 5  # the override
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
