"""The tail around a disruption: per-second windows from ``before_s`` before the event (t = 0)
to ``after_s`` after it, of the requests the probe's steady load sent, and their summary.

Windows bucket requests by when their answer (or failure) came back: throughput is answers per
second, p50/p99 are of the ok answers' latencies, errors are the failures. Summary:

- ``p99_ratio``: p99 of the ok answers to requests of the event (answered after t = 0 and sent
  before the event's end: the new state answering; a request in flight at t = 0 included) over
  the steady p99 (requests sent and answered before t = 0);
- ``longest_gap_s``: the longest time without an ok answer arriving, within the span;
- ``errors``: failures of requests sent from t = 0 to the span's end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Protocol

import numpy as np

from servecmp.load.engine.stability import quantile_ci, steadiness
from servecmp.results.schema import WindowSummary

BASELINE_TOLERANCE = 0.0
"""The baseline runs a fixed paced rate against an unchanged server, so, as for an open loop's
Poisson throughput (stability.py), any change beyond sampling noise is real: a baseline drifting
by the steps' 10 % tolerance would pass with it, and the ratio would inherit the drift."""


class Answered(Protocol):
    t: float  # sent (seconds on the load's clock)
    ok: bool
    done: float  # answered or failed (same clock)


def _p(values: Sequence[float], q: float) -> float | None:
    # "higher": a reported percentile is a latency some request really had
    return float(np.percentile(values, q, method="higher")) if values else None


def baseline_windows(
    samples: Sequence[Answered], lo: float, t0: float, n: int
) -> list[WindowSummary]:
    """The steady span [lo, t0) cut into ``n`` equal windows of the requests sent and answered
    in it (by answer time), summarized as the step engine summarizes its windows (recorder.py)."""
    width = (t0 - lo) / n
    lat: list[list[float]] = [[] for _ in range(n)]
    err = [0] * n
    for s in samples:
        if not (lo <= s.t and lo <= s.done < t0):
            continue
        k = min(n - 1, int((s.done - lo) // width))
        if s.ok:
            lat[k].append((s.done - s.t) * 1000.0)
        else:
            err[k] += 1
    out = []
    for k, x in enumerate(lat):
        a = np.asarray(x, dtype=float)
        out.append(
            WindowSummary(
                index=k,
                duration_s=width,
                ok=len(x),
                wrong_answers=0,
                transport_errors=err[k],
                throughput_rps=len(x) / width,
                p99_ms=_p(x, 99),
                p50_ms=_p(x, 50),
                mean_ms=float(a.mean()) if x else None,
                sd_ms=float(a.std()) if x else None,
                p50_ci_ms=quantile_ci(a, 0.5) if x else None,
                p99_ci_ms=quantile_ci(a, 0.99) if x else None,
            )
        )
    return out


def baseline_steadiness(
    samples: Sequence[Answered],
    lo: float,
    t0: float,
    *,
    windows: int,
    tolerance: float = BASELINE_TOLERANCE,
) -> tuple[bool, str | None]:
    """(steady, why not) of the span before the event, by the steps' rule. The event load is
    paced (run/underload.py: each sender at rate/senders), so its throughput is judged as an
    open loop with uniform arrivals."""
    ws = baseline_windows(samples, lo, t0, windows)
    return steadiness(ws, windows, tolerance, open_loop=True, arrival="uniform")


def event_timeline(
    samples: Sequence[Answered],
    t0: float,
    *,
    before_s: float,
    after_s: float,
    event_end: float | None,
    window_s: float = 1.0,
    steady_windows: int = 3,
) -> dict[str, Any]:
    """Windows and summary of ``samples`` around the event at ``t0`` (the load's clock).
    ``event_end``: when the new state answered (None: it never did within the span).
    ``steady_windows``: the steps' window count (load.stability.windows): the baseline before
    the event is judged over that many windows before the event's p99 is divided by its p99."""
    lo, hi = t0 - before_s, t0 + after_s
    n = math.ceil((before_s + after_s) / window_s - 1e-9)
    lat: list[list[float]] = [[] for _ in range(n)]
    ok = [0] * n
    err = [0] * n
    for s in samples:
        if not lo <= s.done < hi:
            continue
        k = min(n - 1, int((s.done - lo) // window_s))
        if s.ok:
            ok[k] += 1
            lat[k].append((s.done - s.t) * 1000.0)
        else:
            err[k] += 1
    windows = [
        {
            "t": round(-before_s + k * window_s, 3),
            "throughput_rps": ok[k] / window_s,
            "p50_ms": _p(lat[k], 50),
            "p99_ms": _p(lat[k], 99),
            "errors": err[k],
        }
        for k in range(n)
    ]
    # a request in flight at t = 0 is the event's, not the steady state's
    steady = [(s.done - s.t) * 1000.0 for s in samples if s.ok and lo <= s.t and s.done < t0]
    end = event_end if event_end is not None else hi
    during = [(s.done - s.t) * 1000.0 for s in samples if s.ok and s.done >= t0 and s.t <= end]
    steady_p99, event_p99 = _p(steady, 99), _p(during, 99)
    base_ok, base_why = baseline_steadiness(samples, lo, t0, windows=steady_windows)
    ratio = event_p99 / steady_p99 if event_p99 and steady_p99 and base_ok else None
    arrivals = sorted(s.done for s in samples if s.ok and lo <= s.done < hi)
    edges = [lo, *arrivals, hi]
    gap = max((b - a for a, b in pairwise(edges)), default=hi - lo)
    return {
        "t0": round(t0, 4),
        "before_s": before_s,
        "after_s": after_s,
        "window_s": window_s,
        "windows": windows,
        "summary": {
            "steady_p99_ms": steady_p99,
            "event_p99_ms": event_p99,
            "p99_ratio": ratio,
            "p99_ratio_why": None if base_ok else f"baseline not steady: {base_why}",
            "baseline_steady": base_ok,
            "steady_requests": len(steady),
            "event_ok": len(during),
            "event_end_s": None if event_end is None else round(event_end - t0, 4),
            "longest_gap_s": round(gap, 4),
            "errors": sum(1 for s in samples if not s.ok and t0 <= s.t < hi),
        },
    }
