"""Measurement: windows of ``stability.window_s`` until the last ``stability.windows`` are
steady (a burn-in: until throughput has settled), ``stability.max_windows`` ran or the request
bound was hit; then the reported windows merged into what the step reports and is judged on.
Nothing here imports Locust or gevent: the caller passes its clock and sleep.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from servecmp.experiment import Stability
from servecmp.load.engine.context import Budget
from servecmp.load.engine.recorder import Window, WindowRecorder, new_hist, summarize
from servecmp.load.engine.validity import Measured, Sends
from servecmp.results.schema import WindowSummary


def run_for(
    rec: WindowRecorder,
    budget: Budget,
    seconds: float,
    *,
    warmup: bool,
    clock: Callable[[], float],
    sleep: Callable[[float], Any],
) -> Window:
    """Record one window of ``seconds`` (shorter once the budget is exhausted)."""
    rec.open_window(warmup=warmup)
    end = clock() + seconds
    while (left := end - clock()) > 0 and not budget.exhausted:
        sleep(min(0.05, left))
    return rec.close_window(warmup=warmup)


@dataclass(frozen=True)
class Measurement:
    summaries: list[WindowSummary]  # every measurement window
    stop_reason: str  # "stable" | "time_bound" | "request_bound"


def measure(
    next_window: Callable[[], Window],
    st: Stability,
    budget: Budget,
    done: Callable[[list[WindowSummary]], bool],
) -> Measurement:
    """Windows until ``done(summaries)`` (``stop_reason="stable"``), the time bound
    (``"time_bound"``; also when the budget's safety deadline stopped the users) or the request
    bound (``"request_bound"``)."""
    summaries: list[WindowSummary] = []
    for _ in range(st.max_windows):
        summaries.append(next_window().summary())
        if budget.count_exhausted:
            return Measurement(summaries, "request_bound")
        if budget.exhausted:  # the safety deadline: users have stopped
            break
        if done(summaries):
            return Measurement(summaries, "stable")
    return Measurement(summaries, "time_bound")


@dataclass(frozen=True)
class Reported:
    """The reported windows (the last ``stability.windows``) merged."""

    windows: list[Window]
    hist: HdrHistogram
    service: HdrHistogram
    transport: Counter[str]
    ok: int
    wrong: int
    seconds: float  # wall seconds (1e-9 when there is no window, so rates stay finite)
    generator_cpu: float
    server_cpu: float | None

    @classmethod
    def of(cls, windows: Sequence[Window], k: int, *, server_watched: bool) -> Reported:
        rep = list(windows[-k:]) if k else []
        hist, service = new_hist(), new_hist()
        transport: Counter[str] = Counter()
        for w in rep:
            hist.add(w.hist)
            service.add(w.service)
            transport.update(w.transport)
        seconds = sum(w.duration for w in rep) or 1e-9
        server_cpu = None
        if server_watched and rep:
            server_cpu = (
                sum((w.server_cpu_end or 0.0) - (w.server_cpu_start or 0.0) for w in rep) / seconds
            )
        return cls(
            windows=rep,
            hist=hist,
            service=service,
            transport=transport,
            ok=sum(w.ok for w in rep),
            wrong=sum(w.wrong for w in rep),
            seconds=seconds,
            generator_cpu=sum(w.cpu_end - w.cpu_start for w in rep) / seconds,
            server_cpu=server_cpu,
        )

    @property
    def requests(self) -> int:
        return self.ok + self.wrong + sum(self.transport.values())

    @property
    def completed(self) -> int:
        return sum(w.completed for w in self.windows)

    def delta(self, key: str) -> int:
        """A load counter's change over the reported windows."""
        return sum(w.delta(key) for w in self.windows)

    @property
    def send_gap_ms(self) -> float | None:
        gaps = self.delta("gaps")
        return self.delta("gap_ms_sum") / gaps if gaps else None

    @property
    def in_flight_peak(self) -> int:
        return max((w.in_flight_peak for w in self.windows), default=0)

    def measured(self, *, open_loop: bool) -> Measured:
        """The validity rule's input."""
        completed = self.completed
        return Measured(
            ok=self.ok,
            requests=self.requests,
            generator_cpu=self.generator_cpu,
            server_cpu=self.server_cpu,
            seconds=self.seconds if self.windows else 0.0,
            completed_rps=completed / self.seconds,
            latency_mean_all_ms=sum(w.latency_sum_all_ms for w in self.windows) / completed
            if completed
            else None,
            send_gap_ms=self.send_gap_ms,
            service_p99_ms=summarize(self.service).p99 if open_loop else None,
            sends=Sends(
                sent=self.delta("sent"),
                late=self.delta("late"),
                late_generator=self.delta("late_generator"),
                late_backpressure=self.delta("late_backpressure"),
                in_flight_peak=self.in_flight_peak,
            ),
        )
