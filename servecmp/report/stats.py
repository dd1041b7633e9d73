"""Statistics of the comparisons: noise, paired t-intervals and the verdicts they give.

With interleaved repeats (``load.repeats``), two cells are compared over the steps of the same
round, paired: the difference and its 95 % t-interval come from those pairs (:func:`difference`);
with a single repeat the window-noise rule applies (:func:`compare_values`). Friction
measurements (cold start, memory, recovery …) are compared by :func:`compare_friction`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from servecmp.report.cells import Cell, reported_windows
from servecmp.results.friction import FrictionMetric
from servecmp.results.metrics import METRICS, Better, Metric

MIN_REL_DIFF = 0.05  # below 5 % nothing is called a difference, however quiet the run
CONFIDENCE = 0.95  # of the paired intervals
# A friction metric measured fewer than MIN_FRICTION_ROUNDS times per server is trusted only to
# within ONE_OFF_ERROR (relative): cold start, memory and recovery times of one run on a shared
# machine move by tens of percent from one run to the next.
ONE_OFF_ERROR = 0.5
MIN_FRICTION_ROUNDS = 3
# friction units that are measured (and so carry a measurement error); the others are counted
MEASURED_FRICTION_UNITS = frozenset({"s", "bytes", "cores", "requests"})


# window statistic that tracks each metric (for the within-step noise estimate)
WINDOW_STAT: dict[str, str] = {
    "throughput_rps": "throughput_rps",
    "achieved_rps": "throughput_rps",
    "latency_p50_ms": "p50_ms",
    "latency_mean_ms": "p50_ms",
    "latency_p90_ms": "p99_ms",
    "latency_p95_ms": "p99_ms",
    "latency_p99_ms": "p99_ms",
    "latency_p999_ms": "p99_ms",
    "latency_max_ms": "p99_ms",
}
NOISY_METRICS = tuple(WINDOW_STAT)


def _spread(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    if len(vs) < 2:
        return None
    mean = sum(vs) / len(vs)
    if mean <= 0:
        return None
    return (max(vs) - min(vs)) / mean


def noise(cell: Cell, metric: str) -> float:
    """Relative run-to-run noise of ``metric`` in this cell (0.0 when nothing tells us)."""
    if metric not in WINDOW_STAT:
        return 0.0
    m = METRICS[metric]
    parts: list[float] = []
    rep_spread = _spread(m.value(s) for s in cell.valid_steps)
    if rep_spread is not None:
        parts.append(rep_spread)
    if cell.rep is not None:
        stat = WINDOW_STAT[metric]
        w_spread = _spread(getattr(w, stat) for w in reported_windows(cell.rep))
        if w_spread is not None:
            parts.append(w_spread)
    return max(parts, default=0.0)


@dataclass(frozen=True)
class Verdict:
    a: float
    b: float
    rel_diff: float
    threshold: float
    significant: bool
    better: str | None  # "a" | "b" | None (not significant, equal or no direction)
    # paired over interleaved repeats: b / a - 1, its confidence interval, the pairs, the noise
    change: float | None = None
    interval: tuple[float, float] | None = None
    n_pairs: int = 0
    noise: float | None = None  # standard deviation of the paired log-ratios
    resolution: float | None = None  # smallest difference the rule could call (half-width, >= 5 %)
    # which rule decided: paired t-interval, window-noise threshold, a one-off measurement's
    # stated error, or an exact count
    rule: Literal["paired", "window", "one-off", "exact"] = "window"
    n_a: int = 1  # measurements behind a and b (friction)
    n_b: int = 1
    # a second run of the same commit would call the same winner (:func:`reproducible`)
    stable: bool = False
    # where a rerun's estimate may land (:func:`rerun_interval`) and the between-run component
    # (log-ratio standard deviation) it allows for
    rerun: tuple[float, float] | None = None
    between_run: float = 0.0

    @property
    def paired(self) -> bool:
        return self.interval is not None


def compare_values(metric: Metric, a: float, b: float, noise_a: float, noise_b: float) -> Verdict:
    mean = (abs(a) + abs(b)) / 2
    rel = abs(a - b) / mean if mean > 0 else 0.0
    thr = max(MIN_REL_DIFF, noise_a, noise_b)
    sig = rel > thr
    return Verdict(
        a, b, rel, thr, sig, _better(metric.better, a, b) if sig else None, resolution=thr
    )


def _better(direction: Better, a: float, b: float) -> str | None:
    """ "a" or "b" by ``direction``; None when equal or without a direction."""
    if direction is Better.neither or a == b:
        return None
    return "a" if (a > b) == (direction is Better.higher) else "b"


def compare_cells(metric: str, ca: Cell, cb: Cell) -> Verdict | None:
    """Unpaired rule (single repeats, or two different runs): window / repeat noise thresholds."""
    va, vb = ca.value(metric), cb.value(metric)
    if va is None or vb is None:
        return None
    return compare_values(METRICS[metric], va, vb, noise(ca, metric), noise(cb, metric))


def paired_verdict(
    metric: Metric | FrictionMetric,
    pairs: list[tuple[float, float]],
    a: float,
    b: float,
    between_run: float | None = None,
) -> Verdict:
    """b vs a over paired repeats: exp(mean ln(b/a)) - 1 with a Student-t interval.

    ``between_run``: the between-run component tau the stable rule allows for (log-ratio
    standard deviation); None takes the machine's measured one (:data:`BETWEEN_RUN`) for load
    steps' metrics and 0 for friction, where it was not measured."""
    tau = between_run_for(metric.name) if between_run is None else between_run
    d = np.log(np.array([y / x for x, y in pairs], dtype=float))
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd < 1e-12:  # identical ratios in every round: the interval is the point
        lo = hi = mean
    else:
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(CONFIDENCE)
        lo, hi = float(ci.low), float(ci.high)
    resolution = max(MIN_REL_DIFF, math.expm1((hi - lo) / 2))
    change = math.expm1(mean)
    sig = (lo > 0 or hi < 0) and abs(change) > MIN_REL_DIFF
    interval = (math.expm1(lo), math.expm1(hi))
    stable = sig and reproducible(*interval, len(pairs), tau)
    return Verdict(
        a,
        b,
        abs(change),
        MIN_REL_DIFF,
        sig,
        _better(metric.better, 1.0, 1.0 + change) if sig else None,
        change=change,
        interval=interval,
        n_pairs=len(pairs),
        noise=sd,
        resolution=resolution,
        rule="paired",
        stable=stable,
        rerun=rerun_interval(*interval, len(pairs), tau),
        between_run=tau,
    )


# How much wider a rerun's interval may be: its noise estimate's one-sided upper confidence
# bound at this level (chi-square on n-1 degrees of freedom). Four recorded idle demo runs of
# 2026-12-07 had a pair's round-to-round noise differ up to 2.5x between two runs of one commit.
RERUN_NOISE_CONFIDENCE = 0.90


def rerun_width_factor(n_pairs: int) -> float:
    """The factor by which a rerun's interval may be wider than this one's: the upper confidence
    bound of sd / sd-estimate from ``n_pairs`` rounds (1 when nothing is known)."""
    if n_pairs < 2:
        return 1.0
    df = n_pairs - 1
    return math.sqrt(df / float(stats.chi2.ppf(1 - RERUN_NOISE_CONFIDENCE, df)))


@dataclass(frozen=True)
class BetweenRun:
    """A machine's between-run component: the standard deviation tau of the shift of a paired
    log-ratio's true value from one run of a commit to the next (machine state over minutes),
    beyond what each run's own rounds show. Two runs' estimates e1, e2 of one verdict then
    differ with E[(e1 - e2)^2] = se1^2 + se2^2 + 2 tau^2."""

    tau: float
    low: float  # profile-likelihood interval of tau at `confidence`
    high: float
    confidence: float
    pairs: int  # recorded pairs of runs of one commit
    comparisons: int  # verdicts compared across those pairs
    machine: str
    date: str
    script: str = "scripts/between_run.py"

    def statement(self) -> str:
        return (
            f"between-run component τ = {self.tau * 100:.1f} % "
            f"({self.confidence:.0%} interval {self.low * 100:.1f}-{self.high * 100:.1f} %; from "
            f"{self.pairs} recorded run pairs, {self.comparisons} verdicts, on {self.machine}, "
            f"{self.date}; recompute with {self.script})"
        )


# Measured: `.venv/bin/python scripts/between_run.py tests/data/verdict_reproduction*.json`,
# the four recorded pairs of idle demo runs of 2026-12-07 (4-5 rounds, 6 load verdicts each; each
# pair of one commit). Pooled over throughput, p50 and p99: separate tau per family fit no better
# (likelihood ratio 1.76 on 2 df, p = 0.42; 8 verdicts each). Leave one out, each pair's two runs
# agree under tau from the other three (tests/test_verdict_reproduction.py).
BETWEEN_RUN = BetweenRun(
    tau=0.0431,
    low=0.0091,
    high=0.0747,
    confidence=0.90,
    pairs=4,
    comparisons=24,
    machine="the 2-core AMD EPYC build machine, idle",
    date="2026-12-07",
)


def between_run_for(metric: str) -> float:
    """The tau the stable rule allows for on ``metric``: the measured one for load steps'
    metrics, 0 for friction measurements (their between-run shift was not measured)."""
    return BETWEEN_RUN.tau if metric in WINDOW_STAT else 0.0


def rerun_interval(
    lo: float, hi: float, n_pairs: int | None = None, between_run: float = 0.0
) -> tuple[float, float]:
    """Where a rerun's estimate may land, as relative differences: this run's interval [lo, hi]
    widened by the between-run component, exp(m +- sqrt(h^2 + (t * sqrt(2) * tau)^2)) - 1 with
    m, h the interval's log-scale centre and half-width and t its Student-t quantile on
    ``n_pairs`` - 1 degrees of freedom. With tau = 0 it is [lo, hi]."""
    if not math.isfinite(between_run) or between_run < 0:
        raise ValueError(f"between_run: expected a finite tau >= 0, got {between_run!r}")
    low, high = math.log1p(lo), math.log1p(hi)
    m, h = (low + high) / 2, (high - low) / 2
    if between_run > 0:
        if n_pairs is None or n_pairs < 2:
            raise ValueError(f"n_pairs: a between-run component needs >= 2 rounds, got {n_pairs}")
        t = float(stats.t.ppf((1 + CONFIDENCE) / 2, n_pairs - 1))
        h = math.hypot(h, t * math.sqrt(2) * between_run)
    return math.expm1(m - h), math.expm1(m + h)


def reproducible(
    lo: float, hi: float, n_pairs: int | None = None, between_run: float = 0.0
) -> bool:
    """Whether a paired verdict whose relative difference has the interval [lo, hi] (as the
    report shows it) would be called again by a second run of the same commit.

    The rule: the rerun's estimate may move from this one by this run's within-run uncertainty
    plus the between-run component tau = ``between_run`` (:func:`rerun_interval`: this interval
    widened by t * sqrt(2) * tau in quadrature on the log scale; :func:`paired_verdict` passes
    :data:`BETWEEN_RUN`); the rerun calls the verdict again when its own interval, centred
    anywhere in that rerun interval, still excludes zero. Its half-width is this one's times
    :func:`rerun_width_factor` (``n_pairs`` rounds): the rerun's within-run noise, whose
    estimate from a few rounds is itself uncertain. So: stable when the rerun interval's near
    edge clears zero by more than that half-width, and by more than MIN_REL_DIFF. On the four
    recorded pairs, 40 of 48 rerun estimates lay inside the other run's interval, 44 inside its
    rerun interval with tau estimated without that pair, 48 with the stored tau
    (scripts/between_run.py). With tau = 0 the rerun interval is this interval: the rule before
    the between-run component, which called stable a gRPC p50 whose rerun landed outside it.
    Judged on the relative figures the reader sees, at least as strict as the same test on
    log-ratios."""
    rlo, rhi = rerun_interval(lo, hi, n_pairs, between_run)
    near = min(abs(rlo), abs(rhi)) if rlo > 0 or rhi < 0 else 0.0
    half = (math.log1p(hi) - math.log1p(lo)) / 2
    if n_pairs is not None:
        half *= rerun_width_factor(n_pairs)
    return near > max(math.expm1(half), MIN_REL_DIFF)


def difference(metric: str, ca: Cell, cb: Cell) -> Verdict | None:
    """b (``cb``) vs a (``ca``): paired over interleaved rounds when both have >= 2 rounds in
    common, else the unpaired fallback rule. None when either side has no comparable step."""
    va, vb = ca.value(metric), cb.value(metric)
    if va is None or vb is None:
        return None
    ra, rb = ca.by_repeat(metric), cb.by_repeat(metric)
    pairs = [(ra[r], rb[r]) for r in sorted(set(ra) & set(rb)) if ra[r] > 0 and rb[r] > 0]
    if len(pairs) >= 2:
        return paired_verdict(METRICS[metric], pairs, va, vb)
    return compare_cells(metric, ca, cb)


def compare_friction(
    metric: FrictionMetric, a: dict[int, float], b: dict[int, float]
) -> Verdict | None:
    """b vs a for one friction metric; ``a`` and ``b`` map a measurement round to its value.

    Counted metrics (files, knobs …) compare exactly. Measured ones with >= MIN_FRICTION_ROUNDS
    rounds in common, all positive, are paired like steps (:func:`paired_verdict`); otherwise
    their medians differ only beyond ONE_OFF_ERROR. None when a side has no measurement."""
    if not a or not b:
        return None
    va, vb = float(statistics.median(a.values())), float(statistics.median(b.values()))
    mean = (abs(va) + abs(vb)) / 2
    rel = abs(va - vb) / mean if mean > 0 else 0.0
    if metric.unit not in MEASURED_FRICTION_UNITS:
        sig = va != vb and metric.better is not Better.neither
        return Verdict(
            va,
            vb,
            rel,
            0.0,
            sig,
            _better(metric.better, va, vb),
            resolution=0.0,
            rule="exact",
            stable=sig,  # a count does not move between runs
            n_a=len(a),
            n_b=len(b),
        )
    rounds = sorted(set(a) & set(b))
    pairs = [(a[r], b[r]) for r in rounds]
    if len(pairs) >= MIN_FRICTION_ROUNDS and all(x > 0 and y > 0 for x, y in pairs):
        return dataclasses.replace(paired_verdict(metric, pairs, va, vb), n_a=len(a), n_b=len(b))
    sig = rel > ONE_OFF_ERROR
    return Verdict(
        va,
        vb,
        rel,
        ONE_OFF_ERROR,
        sig,
        _better(metric.better, va, vb) if sig else None,
        resolution=ONE_OFF_ERROR,
        rule="one-off",
        n_a=len(a),
        n_b=len(b),
    )
