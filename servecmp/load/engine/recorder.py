"""HDR recording per measurement window, the stability rule, the generator self-watch and the
validity rule. Nothing here imports Locust or gevent (the recorder is a plain event listener).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import psutil
from hdrh.histogram import HdrHistogram

from servecmp.results.schema import LatencySummary, WindowSummary

# HDR range: 1 us .. 10 min, 3 significant digits.
HDR_LOW_US = 1
HDR_HIGH_US = 600_000_000
HDR_DIGITS = 3


def new_hist() -> HdrHistogram:
    return HdrHistogram(HDR_LOW_US, HDR_HIGH_US, HDR_DIGITS)


def record_ms(hist: HdrHistogram, ms: float) -> None:
    us = int(ms * 1000.0)
    hist.record_value(min(max(us, HDR_LOW_US), HDR_HIGH_US))


def summarize(hist: HdrHistogram) -> LatencySummary:
    n = hist.get_total_count()
    if n == 0:
        return LatencySummary(count=0)
    pct = hist.get_percentile_to_value_dict([50, 90, 95, 99, 99.9])
    return LatencySummary(
        count=n,
        mean=hist.get_mean_value() / 1000.0,
        p50=pct[50] / 1000.0,
        p90=pct[90] / 1000.0,
        p95=pct[95] / 1000.0,
        p99=pct[99] / 1000.0,
        p999=pct[99.9] / 1000.0,
        max=hist.get_max_value() / 1000.0,
    )


def encode(hist: HdrHistogram) -> str | None:
    return hist.encode().decode("ascii") if hist.get_total_count() else None


def decode(b64: str) -> HdrHistogram:
    return HdrHistogram.decode(b64.encode("ascii"))


# ---- CPU self-watch ---------------------------------------------------------------------------
class CpuWatch:
    """CPU seconds (user+system) used by a set of processes (and their children).

    ``sample()`` returns cumulative seconds; dead processes keep their last reading so a server
    dying mid-step does not make CPU go backwards.
    """

    def __init__(self, pids: Sequence[int], *, children: bool = True) -> None:
        self.pids = list(pids)
        self.children = children
        self._last: dict[int, float] = {}

    def sample(self) -> float:
        for p in process_tree(self.pids, children=self.children):
            try:
                t = p.cpu_times()
                self._last[p.pid] = t.user + t.system
            except psutil.Error:
                continue
        return sum(self._last.values())


def process_tree(pids: Sequence[int], *, children: bool = True) -> list[psutil.Process]:
    """The processes ``pids`` (and, with ``children``, all their descendants) still running."""
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs.append(p)
            if children:
                procs.extend(p.children(recursive=True))
        except psutil.Error:
            continue
    return procs


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# ---- windows ----------------------------------------------------------------------------------
@dataclass
class Window:
    index: int
    start: float
    end: float | None = None
    hist: HdrHistogram = field(default_factory=new_hist)
    service: HdrHistogram = field(default_factory=new_hist)
    ok: int = 0
    wrong: int = 0
    transport: Counter[str] = field(default_factory=Counter)
    counters_start: dict[str, int] = field(default_factory=dict)
    counters_end: dict[str, int] = field(default_factory=dict)
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    server_cpu_start: float | None = None
    server_cpu_end: float | None = None
    # ok latencies (ms) of this window: percentiles for the stability rule from a sort, not from
    # the HDR histogram's iterator, which takes tens of ms per window and would stall the event
    # loop between windows (with requests in flight)
    samples: list[float] = field(default_factory=list)
    latency_sum_all_ms: float = 0.0  # every completed request, any outcome (Little's law)
    completed: int = 0
    in_flight_peak: int = 0  # open loop: most requests in flight at once in this window

    @property
    def duration(self) -> float:
        return max(1e-9, (self.end or time.perf_counter()) - self.start)

    def delta(self, key: str) -> int:
        return self.counters_end.get(key, 0) - self.counters_start.get(key, 0)

    @property
    def transport_total(self) -> int:
        return sum(self.transport.values())

    def summary(self) -> WindowSummary:
        p50 = p99 = None
        if self.samples:
            p50, p99 = (float(v) for v in np.percentile(np.asarray(self.samples), [50, 99], method="higher"))
        return WindowSummary(
            index=self.index,
            duration_s=round(self.duration, 6),
            ok=self.ok,
            wrong_answers=self.wrong,
            transport_errors=self.transport_total,
            throughput_rps=self.ok / self.duration,
            p99_ms=p99,
            p50_ms=p50,
            scheduled=self.delta("scheduled"),
            late_sends=self.delta("late"),
            generator_cpu=(self.cpu_end - self.cpu_start) / self.duration,
        )


class WindowRecorder:
    """A ``locust.events.request`` listener that records into the current window.

    Requests completing during warm-up (``measuring`` False) are ignored. Latency histograms
    hold ok responses only; wrong answers and transport errors (by ``error_kind``) are counted.
    ``late_ms`` from the event context gives the service time (latency - late) in open loop.
    """

    def __init__(self, counters: Any = None, server_watch: CpuWatch | None = None, *, service: bool = True) -> None:
        # service=False (closed loop): service time == latency, so the second histogram (an HDR
        # record per request on the generator's hot path) is not kept.
        self.service = service
        self.measuring = False
        self.windows: list[Window] = []
        self.warmup_windows: list[Window] = []
        self.current: Window | None = None
        self.counters = counters
        self.server_watch = server_watch

    def _counters(self) -> dict[str, int]:
        return self.counters.snapshot() if self.counters is not None else {}

    def on_request(self, request_type: str = "", name: str = "", response_time: float = 0.0,
                   response_length: int = 0, exception: BaseException | None = None,
                   context: dict[str, Any] | None = None, **_: Any) -> None:
        w = self.current
        if not self.measuring or w is None:
            return
        ctx = context or {}
        outcome = ctx.get("outcome") or ("ok" if exception is None else "transport_error")
        w.completed += 1
        w.latency_sum_all_ms += response_time
        if outcome == "ok":
            w.ok += 1
            w.samples.append(response_time)
            record_ms(w.hist, response_time)
            if self.service:
                record_ms(w.service, response_time - float(ctx.get("late_ms") or 0.0))
        elif outcome == "wrong_answer":
            w.wrong += 1
        else:
            kind = ctx.get("error_kind") or getattr(exception, "kind", None) or type(exception).__name__
            w.transport[str(kind)] += 1

    def open_window(self) -> Window:
        now = time.perf_counter()
        w = Window(index=len(self.windows), start=now, counters_start=self._counters(), cpu_start=own_cpu_seconds())
        if self.server_watch is not None:
            w.server_cpu_start = self.server_watch.sample()
        if self.counters is not None and hasattr(self.counters, "in_flight_peak"):
            self.counters.in_flight_peak = self.counters.in_flight  # the peak restarts per window
        self.current = w
        self.measuring = True
        return w

    def close_window(self, *, warmup: bool = False) -> Window:
        """Close the current window; a ``warmup`` window is kept apart from the measured ones."""
        w = self.current
        assert w is not None, "no open window"
        w.end = time.perf_counter()
        w.counters_end = self._counters()
        w.cpu_end = own_cpu_seconds()
        if self.server_watch is not None:
            w.server_cpu_end = self.server_watch.sample()
        if self.counters is not None and hasattr(self.counters, "in_flight_peak"):
            w.in_flight_peak = int(self.counters.in_flight_peak)
        (self.warmup_windows if warmup else self.windows).append(w)
        self.current = None
        self.measuring = False
        return w


# ---- stability --------------------------------------------------------------------------------
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


P99_MIN_OK = 1000
"""Answers a window needs before its p99 (then >= 10 samples above it) is compared between windows."""


def steadiness(windows: Sequence[WindowSummary], n: int, tolerance: float) -> tuple[bool, str | None]:
    """Is the system in steady state over the last ``n`` windows? (steady, why not).

    Not steady when a window has no ok response; when the windows TREND — p50 latency or
    throughput moves the same way from each window to the next (``n >= 3``) by more than
    ``tolerance`` overall, e.g. a queue built during the start and draining: p50
    1,274 → 1,966 → 760 → 162 ms never agrees, and 900 → 600 → 400 ms is a trend even if a
    later window would agree — or when they DISAGREE: throughput or p99
    ``(max - min) / mean > tolerance`` (p50 instead of p99 while a window holds fewer than
    :data:`P99_MIN_OK` answers)."""
    if len(windows) < n:
        return False, f"only {len(windows)} measurement window(s), {n} needed to judge steadiness"
    last = windows[-n:]
    if any(w.p99_ms is None or w.p50_ms is None or w.throughput_rps <= 0 for w in last):
        return False, "a measurement window had no successful response"
    p50 = [float(w.p50_ms) for w in last if w.p50_ms is not None]
    thr = [w.throughput_rps for w in last]
    if n >= 3:
        for label, values, fmt in (("p50", p50, lambda v: f"{_ms(v)} ms"), ("throughput", thr, lambda v: f"{v:.1f} req/s")):
            direction = _monotone(values)
            if direction and spread(values) > tolerance:
                seq = " → ".join(fmt(v) for v in values)
                return False, f"trend: {label} {direction} over the last {n} windows ({seq})"
    parts = []
    s_thr = spread(thr)
    if s_thr > tolerance:
        parts.append(f"throughput spread {s_thr:.0%}")
    # A window's p99 rests on its slowest 1 %: below P99_MIN_OK answers that is under 10 samples,
    # and its window-to-window spread is sampling noise, not a change of state (measured: p99
    # spreads of 17-71 % between 1.5 s windows of ~150 answers whose p50 agreed within 3 %).
    # Such windows are judged on p50 instead, and the reason says so.
    if all(w.ok >= P99_MIN_OK for w in last):
        s_p99 = spread([float(w.p99_ms) for w in last if w.p99_ms is not None])
        if s_p99 > tolerance:
            parts.append(f"p99 spread {s_p99:.0%}")
    else:
        s_p50 = spread(p50)
        if s_p50 > tolerance:
            parts.append(f"p50 spread {s_p50:.0%} (p99 not judged: < {P99_MIN_OK} answers a window)")
    if parts:
        return False, f"windows never agreed: {', '.join(parts)} over the last {n} (tolerance {tolerance:.0%})"
    return True, None


def is_stable(windows: Sequence[WindowSummary], n: int, tolerance: float) -> bool:
    """Stable when the last ``n`` windows agree (throughput AND p99 — p50 in small windows —
    ``(max - min) / mean <= tolerance``) and do not trend (see :func:`steadiness`). A window without ok responses is
    never stable, so a dead server runs to the time bound."""
    return steadiness(windows, n, tolerance)[0]


# ---- validity ---------------------------------------------------------------------------------
SERVER_SATURATED_FRACTION = 0.90


@dataclass(frozen=True)
class ValidityInput:
    mode: str  # "closed_loop" | "open_loop"
    ok: int
    requests: int
    generator_cpu: float  # fraction of one core over the reported windows
    generator_cpu_limit: float
    server_cpu: float | None  # cores used by the server processes (None: not watched)
    server_cpu_budget: float | None  # cores the server was given
    sends: int = 0  # open loop: sends started in the reported windows
    late_total: int = 0
    late_generator: int = 0
    late_send_tolerance: float = 0.05
    late_threshold_ms: float = 10.0
    service_p99_ms: float | None = None  # open loop: from actual send start
    inprocess: bool = False  # the target runs inside the generator process (baseline)
    # Little's law (closed loop): completed requests / s and their mean latency, any outcome
    concurrency: int | None = None
    completed_rps: float = 0.0
    latency_mean_all_ms: float | None = None
    send_gap_ms: float | None = None  # mean time from a response to the user's next send
    # open loop: the offered schedule, and what the generator really did
    offered_rps: float | None = None
    measured_s: float = 0.0
    arrival: str = "poisson"
    late_backpressure: int = 0
    max_in_flight: int | None = None
    in_flight_peak: int = 0


# Little's law for a closed loop of N users: N = throughput x (latency + time between a response
# and the user's next send). That gap is the generator's own work (check the answer, record it,
# schedule the next send): tens of microseconds against milliseconds of latency, so mean latency
# x throughput / N must be 1 within LITTLE_TOLERANCE; the rest absorbs requests straddling a
# window edge (<= N per window). Fewer than LITTLE_MIN_REQUESTS completions: not judged.
LITTLE_TOLERANCE = 0.15
LITTLE_MIN_REQUESTS = 50
# Open loop: sends in the reported windows vs offered rate x time. Poisson arrivals vary by
# sqrt(expected): the tolerance is the larger of 10 % and 3 standard deviations.
SENT_TOLERANCE = 0.10


def sent_tolerance(expected: float, arrival: str) -> float:
    if expected <= 0:
        return float("inf")
    noise = 3.0 / expected**0.5 if arrival == "poisson" else 2.0 / expected
    return max(SENT_TOLERANCE, noise)


def judge_validity(v: ValidityInput) -> tuple[bool, str | None]:
    """Was this a measurement of the *server*? Returns (valid, invalid_reason).

    The step is marked ``valid=false`` when any rule fires (first match is reported):

    R0 no answer: zero ok responses in the reported windows -> no latency/throughput to report.

    R1 generator CPU: ``generator_cpu >= generator_cpu_limit`` (the step process's CPU seconds /
       wall seconds over the reported windows; 1.0 = one full core: the gevent generator cannot
       use more) while the target was NOT shown to be saturated. The target counts as saturated
       only when its processes were watched (``server_pids``) and used
       >= 90% of ``server_cpu_budget`` cores. Unwatched servers (cluster, or no pids given) are
       never assumed saturated: a busy generator then always invalidates the step.
       Not applied to in-process baselines: there the generator process *is* the computation
       being measured, so its full core is the model's compute, not a generator bottleneck.

    R2 generator-late sends (open loop): sends that started more than ``late_threshold_ms``
       after ``max(scheduled time, moment an in-flight slot became free)`` exceed
       ``late_send_tolerance`` of sends. Such lateness is the generator's own scheduling delay
       (event loop busy), not backpressure from a slow server. Late sends caused by all
       in-flight slots being busy are the server's queueing: they stay in the reported latency
       (measured from the scheduled time) and do not invalidate the step.

    R3 late while the server was fast (open loop): all late sends exceed
       ``late_send_tolerance`` of sends while the service-time p99 (from actual send start) was
       within ``late_threshold_ms``: a server answering that fast cannot have caused the
       lateness (it catches R2's blind spot, e.g. the in-flight bound set too low).

    Self-checks (a violation is a measurement bug, not a server property):

    L1 Little's law (closed loop, >= ``LITTLE_MIN_REQUESTS`` completions): with X completed
       requests/s and W their mean latency, ``|X * W / concurrency - 1| <= LITTLE_TOLERANCE``.
       Below: time in each user's cycle is outside the measured latency (e.g. a blocking call
       that keeps the other users from sending: their wait is in no one's latency).

    O1 in flight (open loop): more requests in flight at once than ``max_in_flight``.

    O2 sent vs offered (open loop): the sends in the reported windows differ from
       ``offered_rps * measured_s`` by more than :func:`sent_tolerance` — unless every
       in-flight slot was busy (backpressure: the server's queue, which stays in its latency).
    """
    if v.ok == 0:
        return False, f"no successful responses ({v.requests} requests completed)"
    saturated = (
        v.server_cpu is not None
        and v.server_cpu_budget is not None
        and v.server_cpu >= SERVER_SATURATED_FRACTION * v.server_cpu_budget
    )
    if v.generator_cpu >= v.generator_cpu_limit and not saturated and not v.inprocess:
        if v.server_cpu is None:
            why = "server CPU not watched"
        else:
            why = f"server used {v.server_cpu:.2f} of {v.server_cpu_budget} cores"
        return False, (
            f"generator-bound: load generator used {v.generator_cpu:.0%} of one core "
            f"(limit {v.generator_cpu_limit:.0%}) while the target was not saturated ({why})"
        )
    if (v.mode == "closed_loop" and v.concurrency and v.requests >= LITTLE_MIN_REQUESTS
            and v.latency_mean_all_ms is not None):
        product = v.completed_rps * v.latency_mean_all_ms / 1000.0
        ratio = product / v.concurrency
        if abs(ratio - 1.0) > LITTLE_TOLERANCE:
            gap = "" if v.send_gap_ms is None else f"; mean {v.send_gap_ms:.2f} ms from a response to the next send"
            return False, (
                f"self-check failed (Little's law): throughput {v.completed_rps:.1f} req/s x mean "
                f"latency {v.latency_mean_all_ms:.2f} ms = {product:.2f} requests in flight, but "
                f"{v.concurrency} users were sending ({ratio:.2f}x, tolerance "
                f"±{LITTLE_TOLERANCE:.0%}){gap}: part of each request's time is not in its latency"
            )
    if v.mode == "open_loop" and v.sends > 0:
        limit = v.late_send_tolerance * v.sends
        if v.late_generator > limit:
            return False, (
                f"generator-bound: {v.late_generator} of {v.sends} sends started > "
                f"{v.late_threshold_ms:g} ms late with a free in-flight slot "
                f"(tolerance {v.late_send_tolerance:.0%})"
            )
        if (v.late_total > limit and v.service_p99_ms is not None
                and v.service_p99_ms <= v.late_threshold_ms):
            return False, (
                f"generator-bound: {v.late_total} of {v.sends} sends were late while the server "
                f"answered within {v.service_p99_ms:.1f} ms p99 (<= {v.late_threshold_ms:g} ms)"
            )
    if v.mode == "open_loop" and v.max_in_flight is not None and v.in_flight_peak > v.max_in_flight:
        return False, (
            f"self-check failed: {v.in_flight_peak} requests in flight at once, above "
            f"max_in_flight {v.max_in_flight}"
        )
    if v.mode == "open_loop" and v.offered_rps and v.measured_s > 0:
        expected = v.offered_rps * v.measured_s
        tol = sent_tolerance(expected, v.arrival)
        dev = v.sends / expected - 1.0
        if dev > tol or (dev < -tol and v.late_backpressure == 0):
            return False, (
                f"self-check failed: sent {v.sends / v.measured_s:.1f} req/s against "
                f"{v.offered_rps:g} offered ({dev:+.0%}, tolerance ±{tol:.0%}) "
                + ("with a free in-flight slot for every send" if dev < 0 else "(more than scheduled)")
            )
    return True, None
