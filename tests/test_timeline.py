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


def _baseline(drift: float, seed: int = 3) -> list[S]:
    """10 s at 20 req/s before t = 0 (the event load's defaults), latency 10 ms with 0.3 ms of
    seeded jitter, rising linearly by ``drift`` (a fraction) from the first request to the last;
    then one slow answer during the event."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sent = np.arange(-10.0, 0.0, 0.05)
    lat = 0.010 * (1 + drift * (sent + 10.0) / 10.0) + rng.normal(0, 0.0003, sent.size)
    return [S(float(t), True, float(t + d)) for t, d in zip(sent, lat, strict=True)] + [
        S(0.01, True, 0.51)
    ]


def test_a_steady_baseline_passes_the_steps_rule_and_the_ratio_is_given() -> None:
    tl = event_timeline(_baseline(0.0), 0.0, before_s=10.0, after_s=2.0, event_end=0.51)
    s = tl["summary"]
    assert s["baseline_steady"] is True and s["p99_ratio_why"] is None
    assert s["p99_ratio"] == pytest.approx(500.0 / s["steady_p99_ms"])


@pytest.mark.parametrize("windows", [2, 3, 5])
def test_a_baseline_drifting_by_10_percent_is_not_steady_and_nothing_is_divided(
    windows: int,
) -> None:
    tl = event_timeline(
        _baseline(0.10), 0.0, before_s=10.0, after_s=2.0, event_end=0.51, steady_windows=windows
    )
    s = tl["summary"]
    assert s["baseline_steady"] is False
    assert s["p99_ratio"] is None
    assert s["p99_ratio_why"].startswith("baseline not steady: ")
    assert "p50" in s["p99_ratio_why"]  # the drift is named
    assert s["steady_p99_ms"] is not None and s["event_p99_ms"] == pytest.approx(500.0)


def test_a_baseline_window_without_an_answer_is_not_steady() -> None:
    samples = [s for s in _baseline(0.0) if not -4.0 <= s.t < -2.0]  # the server stalled 2 s
    tl = event_timeline(samples, 0.0, before_s=10.0, after_s=2.0, event_end=0.51, steady_windows=5)
    assert tl["summary"]["p99_ratio"] is None
    assert "no successful response" in tl["summary"]["p99_ratio_why"]
