"""HDR recording per measurement window and the generator self-watch. Nothing here imports
Locust or gevent (the recorder is a plain event listener).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
from hdrh.histogram import HdrHistogram

from servecmp.load.engine.stability import quantile_ci
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

    def rss(self) -> int:
        """Resident memory of the tree now (bytes); processes gone meanwhile are skipped."""
        total = 0
        for p in process_tree(self.pids, children=self.children):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue
        return total


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
    server_rss_end: int | None = None
    # the server's own counters (results/breakdown.py) read at the window's edges
    server_counters_start: dict[str, float] | None = None
    server_counters_end: dict[str, float] | None = None
    server_read_error: str | None = None

    @property
    def duration(self) -> float:
        return max(1e-9, (self.end or time.perf_counter()) - self.start)

    def delta(self, key: str) -> int:
        return self.counters_end.get(key, 0) - self.counters_start.get(key, 0)

    @property
    def transport_total(self) -> int:
        return sum(self.transport.values())

    def summary(self) -> WindowSummary:
        p50 = p99 = mean = sd = None
        p50_ci = p99_ci = None
        if self.samples:
            x = np.asarray(self.samples)
            p50, p99 = (float(v) for v in np.percentile(x, [50, 99], method="higher"))
            mean, sd = float(x.mean()), float(x.std())
            p50_ci, p99_ci = quantile_ci(x, 0.5), quantile_ci(x, 0.99)
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
            mean_ms=mean,
            sd_ms=sd,
            p50_ci_ms=p50_ci,
            p99_ci_ms=p99_ci,
            server_cpu=(
                (self.server_cpu_end - self.server_cpu_start) / self.duration
                if self.server_cpu_end is not None and self.server_cpu_start is not None
                else None
            ),
            server_rss_bytes=self.server_rss_end,
        )


class WindowRecorder:
    """A ``locust.events.request`` listener that records into the current window.

    Requests completing during warm-up (``measuring`` False) are ignored. Latency histograms
    hold ok responses only; wrong answers and transport errors (by ``error_kind``) are counted.
    ``late_ms`` from the event context gives the service time (latency - late) in open loop.
    """

    def __init__(
        self,
        counters: Any = None,
        server_watch: CpuWatch | None = None,
        *,
        service: bool = True,
        server_read: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        # service=False (closed loop): service time == latency, so the second histogram (an HDR
        # record per request on the generator's hot path) is not kept.
        self.service = service
        self.measuring = False
        self.windows: list[Window] = []
        self.warmup_windows: list[Window] = []
        self.current: Window | None = None
        self.counters = counters
        self.server_watch = server_watch
        # reads the server's own counters (raises on failure); at each edge of every window,
        # before the window's clock starts and before it stops, so both sides see one span
        self.server_read = server_read

    def _read_server(self) -> tuple[dict[str, float] | None, str | None]:
        """(the server's counters, None) or (None, why they could not be read)."""
        if self.server_read is None:
            return None, None
        try:
            return self.server_read(), None
        except Exception as err:  # any failure: this window has no breakdown, and says why
            return None, f"{type(err).__name__}: {err}"[:300]

    def _counters(self) -> dict[str, int]:
        return self.counters.snapshot() if self.counters is not None else {}

    def on_request(
        self,
        request_type: str = "",
        name: str = "",
        response_time: float = 0.0,
        response_length: int = 0,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
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
            kind = (
                ctx.get("error_kind")
                or getattr(exception, "kind", None)
                or type(exception).__name__
            )
            w.transport[str(kind)] += 1

    def open_window(self, *, warmup: bool = False) -> Window:
        got, why = (None, None) if warmup else self._read_server()
        now = time.perf_counter()
        w = Window(
            index=len(self.windows),
            start=now,
            counters_start=self._counters(),
            cpu_start=own_cpu_seconds(),
            server_counters_start=got,
            server_read_error=why,
        )
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
        if not warmup and w.server_read_error is None:
            w.server_counters_end, w.server_read_error = self._read_server()
        w.end = time.perf_counter()
        w.counters_end = self._counters()
        w.cpu_end = own_cpu_seconds()
        if self.server_watch is not None:
            w.server_cpu_end = self.server_watch.sample()
            w.server_rss_end = self.server_watch.rss()
        if self.counters is not None and hasattr(self.counters, "in_flight_peak"):
            w.in_flight_peak = int(self.counters.in_flight_peak)
        (self.warmup_windows if warmup else self.windows).append(w)
        self.current = None
        self.measuring = False
        return w
