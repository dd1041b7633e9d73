"""Typed metric definitions the report uses (name, unit, which direction is better).

Modelled on Triton Model Analyzer's objectives: every number a report shows comes from one of
these definitions, so its unit and "better" direction are never guessed per chart.

    from servecmp.results.metrics import METRICS, get_metric
    m = get_metric("latency_p99_ms"); m.value(step); m.better_of(a, b)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from servecmp.results.schema import StepResult


class Better(StrEnum):
    higher = "higher"
    lower = "lower"  # type: ignore[assignment]  # shadows str.lower on purpose: the enum reads best
    neither = "neither"  # context, not a score (e.g. generator CPU)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: Better
    description: str
    extract: Callable[[StepResult], float | None]

    def value(self, step: StepResult) -> float | None:
        return self.extract(step)

    def is_better(self, a: float, b: float) -> bool:
        """True when value ``a`` is strictly better than ``b``."""
        if self.better is Better.higher:
            return a > b
        if self.better is Better.lower:
            return a < b
        return False

    def better_of(self, a: StepResult, b: StepResult) -> StepResult | None:
        """The better step by this metric (None when equal, missing or direction-less)."""
        va, vb = self.value(a), self.value(b)
        if va is None or vb is None or va == vb or self.better is Better.neither:
            return None
        return a if self.is_better(va, vb) else b


def _lat(attr: str) -> Callable[[StepResult], float | None]:
    return lambda s: getattr(s.latency_ms, attr)


def _late_fraction(s: StepResult) -> float | None:
    if s.late is None:
        return None
    sent = round((s.sent_rps or 0.0) * s.measured_s)
    return s.late.total / sent if sent else None


_DEFS = [
    Metric(
        "throughput_rps",
        "req/s",
        Better.higher,
        "correct responses per second",
        lambda s: s.throughput_rps,
    ),
    Metric(
        "achieved_rps",
        "req/s",
        Better.higher,
        "completed requests per second (any outcome)",
        lambda s: s.achieved_rps,
    ),
    Metric(
        "offered_rps",
        "req/s",
        Better.neither,
        "open loop: configured arrival rate",
        lambda s: s.offered_rps,
    ),
    Metric(
        "latency_p50_ms",
        "ms",
        Better.lower,
        "median latency (open loop: from scheduled send time)",
        _lat("p50"),
    ),
    Metric("latency_p90_ms", "ms", Better.lower, "90th percentile latency", _lat("p90")),
    Metric("latency_p95_ms", "ms", Better.lower, "95th percentile latency", _lat("p95")),
    Metric("latency_p99_ms", "ms", Better.lower, "99th percentile latency", _lat("p99")),
    Metric("latency_p999_ms", "ms", Better.lower, "99.9th percentile latency", _lat("p999")),
    Metric("latency_max_ms", "ms", Better.lower, "maximum latency", _lat("max")),
    Metric("latency_mean_ms", "ms", Better.lower, "mean latency", _lat("mean")),
    Metric(
        "error_fraction",
        "fraction",
        Better.lower,
        "wrong answers + transport errors / requests",
        lambda s: s.error_fraction,
    ),
    Metric(
        "wrong_answers",
        "count",
        Better.lower,
        "answers that differ from the expected logits",
        lambda s: float(s.wrong_answers),
    ),
    Metric(
        "transport_errors",
        "count",
        Better.lower,
        "requests without a decodable answer",
        lambda s: float(s.transport_error_count),
    ),
    Metric(
        "late_send_fraction",
        "fraction",
        Better.lower,
        "open loop: sends started later than the late threshold",
        _late_fraction,
    ),
    Metric(
        "generator_cpu",
        "cores",
        Better.neither,
        "load generator process CPU (1.0 = one core)",
        lambda s: s.generator.cpu_fraction if s.generator else None,
    ),
]

METRICS: dict[str, Metric] = {m.name: m for m in _DEFS}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}") from None
