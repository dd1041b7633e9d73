"""Steadiness: do the last measurement windows agree beyond what sampling alone explains?

Each window's throughput and latency quantiles carry a sampling error:

- throughput, open loop with Poisson arrivals: a window's count is Poisson, its standard
  deviation ``sqrt(expected)`` (expected = the pooled rate x the window's duration). The
  offered rate is fixed, so no tolerance is added: any change beyond the noise is real;
- throughput, closed loop (and uniform arrivals): completions of ``N`` users are renewal
  processes, ``sd(count) = CV(latency) x sqrt(count)``; the configured tolerance still applies;
- a latency quantile: the distribution-free confidence interval from the window's order
  statistics (``scipy.stats.quantile_test``), stored with the window; its half-width gives the
  standard deviation. An interval open at one end (too few answers for that quantile) means
  the quantile is not judged.

Windows DISAGREE on a statistic when ``(max - min) / mean`` exceeds the tolerance plus the
range that ``n`` windows reach by sampling alone only ``1 - NOISE_LEVEL`` of the time (the
studentized range, ``scipy.stats.studentized_range``, of the largest window sd). They TREND when
the values move the same way from each window to the next (``n >= 3``) and the first-to-last
change exceeds the tolerance plus the two-sided ``NOISE_LEVEL`` normal bound of a difference of
two windows. Windows stored without the noise fields (older runs) are judged with zero noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import numpy as np
from scipy import stats

from servecmp.results.schema import WindowSummary

NOISE_LEVEL = 0.99
"""A spread or trend counts only when sampling alone would exceed it less than 1 % of the time."""
CI_LEVEL = 0.95
"""Confidence level of the per-window quantile intervals (``WindowSummary.p50_ci_ms`` ...)."""
P99_MIN_OK = 1000
"""Windows stored without quantile intervals: answers a window needs before its p99 (then >= 10
samples above it) is compared between windows."""


def spread(values: Sequence[float]) -> float:
    """(max - min) / mean; inf when the mean is not positive."""
    m = sum(values) / len(values)
    return (max(values) - min(values)) / m if m > 0 else float("inf")


def _monotone(values: Sequence[float]) -> str | None:
    if all(b > a for a, b in pairwise(values)):
        return "rising"
    if all(b < a for a, b in pairwise(values)):
        return "falling"
    return None


def _ms(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


@lru_cache(maxsize=64)
def range_factor(n: int) -> float:
    """The range of ``n`` independent normal values, in standard deviations, that sampling
    alone exceeds with probability ``1 - NOISE_LEVEL``."""
    return float(stats.studentized_range.ppf(NOISE_LEVEL, n, np.inf))


def difference_factor() -> float:
    """Two-sided ``NOISE_LEVEL`` bound of one normal value, in standard deviations."""
    return float(stats.norm.ppf(0.5 + NOISE_LEVEL / 2))


def quantile_ci(
    samples: Sequence[float] | np.ndarray, p: float
) -> tuple[float | None, float | None]:
    """Distribution-free ``CI_LEVEL`` interval of the ``p`` quantile from the window's samples
    (order statistics; None: the interval is open at that end, too few samples)."""
    if len(samples) == 0:
        return None, None
    ci = stats.quantile_test(np.asarray(samples, dtype=float), q=0.0, p=p).confidence_interval(
        CI_LEVEL
    )
    lo, hi = float(ci.low), float(ci.high)
    return (None if math.isnan(lo) else lo), (None if math.isnan(hi) else hi)


@dataclass(frozen=True)
class Series:
    """One statistic over the judged windows, with each window's sampling sd (same units)."""

    label: str
    values: list[float]
    sd: list[float]
    tolerance: float
    fmt: Callable[[float], str]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    def allowed_spread(self) -> float:
        """Relative spread the windows may show: tolerance + what sampling alone reaches."""
        m = self.mean
        if m <= 0:
            return self.tolerance
        return self.tolerance + range_factor(len(self.values)) * max(self.sd) / m

    def allowed_change(self) -> float:
        """Relative first-to-last change a trend needs to count."""
        m = self.mean
        if m <= 0:
            return self.tolerance
        return self.tolerance + difference_factor() * math.hypot(self.sd[0], self.sd[-1]) / m

    def trend(self) -> str | None:
        direction = _monotone(self.values)
        if direction and spread(self.values) > self.allowed_change():
            return direction
        return None

    def disagreement(self) -> str | None:
        s, allowed = spread(self.values), self.allowed_spread()
        if s <= allowed:
            return None
        if allowed - self.tolerance <= 0.005:
            return f"{self.label} spread {s:.0%}"
        what = (
            "sampling noise allows" if self.tolerance == 0 else "tolerance + sampling noise allow"
        )
        return f"{self.label} spread {s:.0%} ({what} {allowed:.0%})"


# ---- per-statistic noise ------------------------------------------------------------------------
def throughput_series(
    last: Sequence[WindowSummary], tolerance: float, *, open_loop: bool, arrival: str
) -> Series:
    values = [w.throughput_rps for w in last]
    if open_loop and arrival == "poisson":
        rate = sum(w.ok for w in last) / sum(w.duration_s for w in last)
        sd = [math.sqrt(rate * w.duration_s) / w.duration_s for w in last]
        tol = 0.0  # the offered rate does not change: only the arrival noise may
    elif open_loop:  # uniform arrivals: a window's count is fixed up to one send at each edge
        sd = [1.0 / w.duration_s for w in last]
        tol = tolerance
    else:
        sd = [_cv(w) * math.sqrt(w.ok) / w.duration_s for w in last]
        tol = tolerance
    return Series("throughput", values, sd, tol, lambda v: f"{v:.1f} req/s")


def _cv(w: WindowSummary) -> float:
    if w.mean_ms is None or w.sd_ms is None or w.mean_ms <= 0:
        return 0.0
    return w.sd_ms / w.mean_ms


def _quantile_sd(value: float, ci: tuple[float | None, float | None] | None) -> float:
    """Sampling sd of a quantile from its interval (the wider side); inf when it is open."""
    if ci is None:
        return 0.0
    lo, hi = ci
    if lo is None or hi is None:
        return math.inf
    return max(hi - value, value - lo) / float(stats.norm.ppf(0.5 + CI_LEVEL / 2))


def latency_series(last: Sequence[WindowSummary], label: str, tolerance: float) -> Series:
    if label == "p50":
        values = [float(w.p50_ms or 0.0) for w in last]
        sd = [_quantile_sd(v, w.p50_ci_ms) for v, w in zip(values, last, strict=True)]
    else:
        values = [float(w.p99_ms or 0.0) for w in last]
        sd = [_quantile_sd(v, w.p99_ci_ms) for v, w in zip(values, last, strict=True)]
    return Series(label, values, sd, tolerance, lambda v: f"{_ms(v)} ms")


def _p99_unjudged(last: Sequence[WindowSummary]) -> str | None:
    """Why the windows' p99 cannot be compared (None: it can)."""
    cis = [w.p99_ci_ms for w in last]
    if all(ci is not None for ci in cis):
        if any(ci is not None and None in ci for ci in cis):
            return "too few answers a window to bound it"
        return None
    return None if all(w.ok >= P99_MIN_OK for w in last) else f"< {P99_MIN_OK} answers a window"


# ---- the rules ------------------------------------------------------------------------------------
def _check_windows(
    windows: Sequence[WindowSummary], n: int
) -> tuple[list[WindowSummary], str | None]:
    if len(windows) < n:
        return [], f"only {len(windows)} measurement window(s), {n} needed to judge steadiness"
    last = list(windows[-n:])
    if any(w.p99_ms is None or w.p50_ms is None or w.throughput_rps <= 0 for w in last):
        return [], "a measurement window had no successful response"
    return last, None


def _trend_reason(series: Series, n: int) -> str | None:
    direction = series.trend() if n >= 3 else None
    if direction is None:
        return None
    seq = " → ".join(series.fmt(v) for v in series.values)
    return f"trend: {series.label} {direction} over the last {n} windows ({seq})"


def steadiness(
    windows: Sequence[WindowSummary],
    n: int,
    tolerance: float,
    *,
    open_loop: bool = False,
    arrival: str = "poisson",
) -> tuple[bool, str | None]:
    """Is the system in steady state over the last ``n`` windows? (steady, why not).

    Not steady when a window has no ok response; when p50 or throughput TRENDS beyond its noise
    (e.g. a queue draining: p50 1,274 → 1,966 → 760 → 162 ms never agrees); or when the windows
    DISAGREE on throughput, p50 or p99 beyond their noise plus the tolerance (p99 only when its
    interval is closed, or, without intervals, at >= :data:`P99_MIN_OK` answers a window)."""
    last, why = _check_windows(windows, n)
    if why is not None:
        return False, why
    thr = throughput_series(last, tolerance, open_loop=open_loop, arrival=arrival)
    p50 = latency_series(last, "p50", tolerance)
    for series in (p50, thr):
        reason = _trend_reason(series, n)
        if reason:
            return False, reason
    parts = [d for d in (thr.disagreement(), p50.disagreement()) if d]
    unjudged = _p99_unjudged(last)
    if unjudged is None:
        d = latency_series(last, "p99", tolerance).disagreement()
        if d:
            parts.append(d)
    elif parts and parts[-1].startswith("p50"):
        parts[-1] += f" (p99 not judged: {unjudged})"
    if parts:
        return (
            False,
            f"windows never agreed: {', '.join(parts)} over the last {n} (tolerance {tolerance:.0%})",
        )
    return True, None


def is_stable(
    windows: Sequence[WindowSummary],
    n: int,
    tolerance: float,
    *,
    open_loop: bool = False,
    arrival: str = "poisson",
) -> bool:
    """Stable when the last ``n`` windows are steady (see :func:`steadiness`). A window without
    ok responses is never stable, so a dead server runs to the time bound."""
    return steadiness(windows, n, tolerance, open_loop=open_loop, arrival=arrival)[0]


def settled(
    windows: Sequence[WindowSummary],
    n: int,
    tolerance: float,
    *,
    open_loop: bool = False,
    arrival: str = "poisson",
) -> tuple[bool, str | None]:
    """Burn-in: has throughput stopped changing beyond its noise over the last ``n`` windows?"""
    last, why = _check_windows(windows, n)
    if why is not None:
        return False, why
    thr = throughput_series(last, tolerance, open_loop=open_loop, arrival=arrival)
    reason = _trend_reason(thr, n) or thr.disagreement()
    return (reason is None), reason
