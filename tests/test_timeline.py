"""The per-second timeline around a disruption (servecmp/run/timeline.py) from a scripted
sequence of answers: windows, steady vs event p99, the longest gap and the errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from servecmp.run.timeline import event_timeline


@dataclass
class S:
    t: float
    ok: bool
    done: float


def test_windows_and_summary() -> None:
    steady = [S(t, True, t + 0.010) for t in (-1.9, -1.5, -1.1, -0.7, -0.3)]  # 10 ms each
    # at t=0 the server goes away: two failures, then the first answer takes 1.5 s
    event = [S(0.05, False, 0.06), S(0.10, False, 0.11), S(0.2, True, 1.7)]
    after = [S(t, True, t + 0.020) for t in (1.8, 2.2, 2.6)]
    tl = event_timeline(steady + event + after, 0.0, before_s=2.0, after_s=3.0, event_end=1.7)
    assert [w["t"] for w in tl["windows"]] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert [w["throughput_rps"] for w in tl["windows"]] == [3.0, 2.0, 0.0, 2.0, 2.0]
    assert [w["errors"] for w in tl["windows"]] == [0, 0, 2, 0, 0]
    assert tl["windows"][2]["p99_ms"] is None  # no ok answer in that second: no number
    s = tl["summary"]
    assert s["steady_p99_ms"] == pytest.approx(10.0)
    assert s["event_p99_ms"] == pytest.approx(1500.0)
    assert s["p99_ratio"] == pytest.approx(150.0)
    assert s["longest_gap_s"] == pytest.approx(1.7 - (-0.29))
    assert s["errors"] == 2


def test_an_event_that_never_ends_spans_to_the_end_and_the_gap_reaches_it() -> None:
    steady = [S(-1.0, True, -0.99)]
    tl = event_timeline(steady, 0.0, before_s=1.0, after_s=2.0, event_end=None)
    s = tl["summary"]
    assert s["event_p99_ms"] is None and s["p99_ratio"] is None
    assert s["longest_gap_s"] == pytest.approx(2.99)
    assert s["event_end_s"] is None


def test_a_request_in_flight_at_t0_belongs_to_the_event() -> None:
    """Sent just before the update, answered only once the update let it through: the event's
    tail, not the steady state's."""
    steady = [S(t, True, t + 0.05) for t in (-1.8, -1.4, -1.0, -0.6)]
    straddling = S(-0.1, True, 5.4)
    tl = event_timeline([*steady, straddling], 0.0, before_s=2.0, after_s=6.0, event_end=5.4)
    s = tl["summary"]
    assert s["steady_p99_ms"] == pytest.approx(50.0)
    assert s["event_p99_ms"] == pytest.approx(5500.0)
