"""Steadiness against sampling noise (issue 19): synthetic seeded streams judged by the rule, no
servers and no clocks. Each case runs over many seeds and asserts a rate, so no seed is picked
for luck: stationary streams pass at about the stated noise level, real changes fail."""

from __future__ import annotations

import numpy as np

from servecmp.load.engine.recorder import Window
from servecmp.load.engine.stability import quantile_ci, settled, steadiness
from servecmp.results.schema import WindowSummary

TOL = 0.10
# at most this fraction of stationary streams may be called unsteady: every judged statistic
# (throughput spread and trend, p50 ...) may fire by chance at 1 - stability.NOISE_LEVEL
FALSE_ALARMS = 0.05


def stream(
    seed: int,
    *,
    rate: float,
    window_s: float,
    n: int = 3,
    drift: float = 0.0,
    latency_factor: list[float] | None = None,
    median_ms: float = 20.0,
    sigma: float = 0.3,
) -> list[WindowSummary]:
    """Open-loop Poisson arrivals at ``rate`` (falling linearly by ``drift`` across the step:
    a thinned Poisson process), every arrival answered with a lognormal latency."""
    rng = np.random.default_rng(seed)
    total = n * window_s
    arrivals = np.cumsum(rng.exponential(1.0 / rate, int(rate * total * 1.5) + 50))
    arrivals = arrivals[arrivals < total]
    keep = rng.random(arrivals.size) < 1.0 - drift * arrivals / total
    arrivals = arrivals[keep]
    out = []
    for i in range(n):
        count = int(np.count_nonzero((arrivals >= i * window_s) & (arrivals < (i + 1) * window_s)))
        scale = median_ms * (latency_factor[i] if latency_factor else 1.0)
        latencies = rng.lognormal(np.log(scale), sigma, count)
        out.append(
            Window(index=i, start=0.0, end=window_s, ok=count, samples=list(latencies)).summary()
        )
    return out


def unsteady_fraction(seeds: range, **kw: object) -> float:
    judged = [
        steadiness(stream(s, **kw), 3, TOL, open_loop=True, arrival="poisson")[0] for s in seeds
    ]  # type: ignore[arg-type]
    return 1.0 - sum(judged) / len(judged)


# ---- throughput ---------------------------------------------------------------------------------
def test_open_loop_poisson_stream_at_the_offered_rate_is_steady() -> None:
    # issue 19: 30 req/s in 5 s windows, ~150 arrivals each: the count alone varies ~±8 % per
    # window, and a 10 % spread rule called 2 of 3 such steps unsteady
    assert steadiness(stream(0, rate=30, window_s=5), 3, TOL, open_loop=True)[0]
    assert unsteady_fraction(range(200), rate=30, window_s=5) <= FALSE_ALARMS


def test_the_issues_spread_and_trend_are_arrival_noise_in_open_loop_only() -> None:
    def win(i: int, thr: float) -> WindowSummary:
        return WindowSummary(
            index=i,
            duration_s=5.0,
            ok=int(thr * 5),
            wrong_answers=0,
            transport_errors=0,
            throughput_rps=thr,
            p50_ms=50.0,
            p99_ms=90.0,
        )

    ws = [win(0, 32.0), win(1, 30.0), win(2, 28.0)]  # 32 → 28 req/s, 13 % spread
    assert steadiness(ws, 3, TOL, open_loop=True, arrival="poisson") == (True, None)
    # closed loop (no latency spread known: zero noise) keeps the tolerance rule
    steady, why = steadiness(ws, 3, TOL)
    assert not steady and why is not None and "trend: throughput falling" in why


def test_a_real_ten_percent_drift_across_the_step_is_unsteady() -> None:
    # 2,000 req/s in 5 s windows: ~10,000 arrivals a window, noise ~1 %
    assert unsteady_fraction(range(30), rate=2000, window_s=5) <= 0.10
    assert unsteady_fraction(range(30), rate=2000, window_s=5, drift=0.10) >= 0.90
    steady, why = steadiness(stream(1, rate=2000, window_s=5, drift=0.10), 3, TOL, open_loop=True)
    assert not steady and why is not None and "throughput" in why


def test_uniform_arrivals_and_closed_loop_keep_the_tolerance() -> None:
    def win(i: int, thr: float, sd_ms: float = 1.0) -> WindowSummary:
        return WindowSummary(
            index=i,
            duration_s=2.0,
            ok=int(thr * 2),
            wrong_answers=0,
            transport_errors=0,
            throughput_rps=thr,
            p50_ms=10.0,
            p99_ms=20.0,
            mean_ms=10.0,
            sd_ms=sd_ms,
        )

    agree = [win(0, 500), win(1, 520), win(2, 505)]
    apart = [win(0, 500), win(1, 590), win(2, 505)]  # 17 %, far beyond a CV 0.1 renewal count
    for kw in ({}, {"open_loop": True, "arrival": "uniform"}):
        assert steadiness(agree, 3, TOL, **kw)[0]  # type: ignore[arg-type]
        steady, why = steadiness(apart, 3, TOL, **kw)  # type: ignore[arg-type]
        assert not steady and why is not None and "throughput spread 17%" in why
    # latency that varies a lot makes a closed loop's completion count vary: noise, not a change
    noisy = [win(i, w.throughput_rps, sd_ms=30.0) for i, w in enumerate(apart)]
    assert steadiness(noisy, 3, TOL)[0]


# ---- latency quantiles --------------------------------------------------------------------------
def test_small_windows_with_stationary_latency_are_steady() -> None:
    # ~150 answers a window: p50 rests on its order-statistic interval; p99 is not judged
    ws = stream(3, rate=30, window_s=5, sigma=0.3)
    assert all(w.p99_ci_ms is not None and w.p99_ci_ms[1] is None for w in ws)
    assert unsteady_fraction(range(100), rate=30, window_s=5, sigma=0.3) <= FALSE_ALARMS


def test_a_real_latency_shift_in_small_windows_is_unsteady() -> None:
    shift = [1.0, 1.0, 1.5]  # the last window answers 50 % slower
    assert (
        unsteady_fraction(range(100), rate=30, window_s=5, sigma=0.3, latency_factor=shift) >= 0.90
    )
    steady, why = steadiness(
        stream(4, rate=30, window_s=5, sigma=0.3, latency_factor=shift), 3, TOL, open_loop=True
    )
    assert not steady and why is not None and "p50" in why


def test_p99_of_large_windows_is_judged_with_its_interval() -> None:
    big = dict(rate=600, window_s=5, sigma=0.5)  # ~3,000 answers: p99 rests on ~30 samples
    ws = stream(5, **big)  # type: ignore[arg-type]
    assert all(w.p99_ci_ms is not None and None not in w.p99_ci_ms for w in ws)
    assert unsteady_fraction(range(40), **big) <= FALSE_ALARMS  # type: ignore[arg-type]
    # the last window's slowest 5 % answer 50 % slower; its median and throughput do not move
    x = np.random.default_rng(8).lognormal(np.log(20.0), 0.5, 3000)
    x[x > np.quantile(x, 0.95)] *= 1.5
    shifted = Window(index=2, start=0.0, end=5.0, ok=x.size, samples=list(x)).summary()
    steady, why = steadiness([ws[0], ws[1], shifted], 3, TOL, open_loop=True)
    assert not steady and why is not None and "p99 spread" in why and "throughput" not in why


def test_quantile_interval_covers_the_quantile_and_opens_when_samples_are_too_few() -> None:
    rng = np.random.default_rng(9)
    covered = 0
    for _ in range(200):
        lo, hi = quantile_ci(rng.exponential(1.0, 400), 0.5)
        assert lo is not None and hi is not None
        covered += lo <= np.log(2) <= hi
    assert covered >= 0.90 * 200  # a 95 % interval
    assert quantile_ci(rng.exponential(1.0, 50), 0.99)[1] is None  # 50 samples cannot bound p99
    assert quantile_ci([], 0.5) == (None, None)


# ---- burn-in ------------------------------------------------------------------------------------
def test_burn_in_settles_once_throughput_stops_changing_beyond_noise() -> None:
    def win(i: int, thr: float) -> WindowSummary:
        return WindowSummary(
            index=i,
            duration_s=2.0,
            ok=int(thr * 2),
            wrong_answers=0,
            transport_errors=0,
            throughput_rps=thr,
            p50_ms=10.0,
            p99_ms=20.0,
            mean_ms=10.0,
            sd_ms=1.0,
        )

    rising = [win(i, t) for i, t in enumerate([40, 60, 80, 95, 100, 101])]
    assert [settled(rising[: k + 1], 3, TOL)[0] for k in range(len(rising))] == [
        False,
        False,
        False,
        False,
        False,
        True,
    ]
    assert "trend: throughput rising" in (settled(rising[:5], 3, TOL)[1] or "")
    assert settled(rising[:2], 3, TOL) == (
        False,
        "only 2 measurement window(s), 3 needed to judge steadiness",
    )
