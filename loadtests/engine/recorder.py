"""HDR recording per measurement window, the stability rule, the generator self-watch and the
validity rule. Nothing here imports Locust or gevent (the recorder is a plain event listener).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
        procs: list[psutil.Process] = []
        for pid in self.pids:
            try:
                p = psutil.Process(pid)
                procs.append(p)
                if self.children:
                    procs.extend(p.children(recursive=True))
            except psutil.Error:
                continue
        for p in procs:
            try:
                t = p.cpu_times()
                self._last[p.pid] = t.user + t.system
            except psutil.Error:
                continue
        return sum(self._last.values())


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

    @property
    def duration(self) -> float:
        return max(1e-9, (self.end or time.perf_counter()) - self.start)

    def delta(self, key: str) -> int:
        return self.counters_end.get(key, 0) - self.counters_start.get(key, 0)

    @property
    def transport_total(self) -> int:
        return sum(self.transport.values())

    def summary(self) -> WindowSummary:
        lat = summarize(self.hist)
        return WindowSummary(
            index=self.index,
            duration_s=round(self.duration, 6),
            ok=self.ok,
            wrong_answers=self.wrong,
            transport_errors=self.transport_total,
            throughput_rps=self.ok / self.duration,
            p99_ms=lat.p99,
            p50_ms=lat.p50,
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
        if outcome == "ok":
            w.ok += 1
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
        self.current = w
        self.measuring = True
        return w

    def close_window(self) -> Window:
        w = self.current
        assert w is not None, "no open window"
        w.end = time.perf_counter()
        w.counters_end = self._counters()
        w.cpu_end = own_cpu_seconds()
        if self.server_watch is not None:
            w.server_cpu_end = self.server_watch.sample()
        self.windows.append(w)
        self.current = None
        self.measuring = False
        return w


# ---- stability --------------------------------------------------------------------------------
def spread(values: Sequence[float]) -> float:
    """(max - min) / mean; inf when the mean is not positive."""
    m = sum(values) / len(values)
    return (max(values) - min(values)) / m if m > 0 else float("inf")


def is_stable(windows: Sequence[WindowSummary], n: int, tolerance: float) -> bool:
    """Stable when the last ``n`` windows agree: for throughput AND p99 separately,
    ``(max - min) / mean <= tolerance``. A window without ok responses (no p99, zero
    throughput) is never stable, so a dead server runs to the time bound."""
    if len(windows) < n:
        return False
    last = windows[-n:]
    if any(w.p99_ms is None or w.throughput_rps <= 0 for w in last):
        return False
    return (spread([w.throughput_rps for w in last]) <= tolerance
            and spread([w.p99_ms for w in last if w.p99_ms is not None]) <= tolerance)


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
    return True, None
