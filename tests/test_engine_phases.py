"""The step's phases on their own (issue 17): warm-up, measurement loop, reported-window merge,
judging. Controlled clocks and windows: no Locust, no servers, nothing timing can flip."""

from __future__ import annotations

from collections.abc import Iterator

from servecmp.experiment import Load, Stability, Target
from servecmp.load.engine.context import Budget, SendCounters
from servecmp.load.engine.judge import Observed, disruption, judge
from servecmp.load.engine.measure import Measurement, Reported, measure
from servecmp.load.engine.recorder import Window, record_ms
from servecmp.load.engine.spec import StepSpec
from servecmp.load.engine.warmup import Warmup, latency_flat, warm_up


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def window(
    i: int,
    latencies: list[float],
    *,
    seconds: float = 1.0,
    transport: dict[str, int] | None = None,
    counters: dict[str, int] | None = None,
) -> Window:
    w = Window(index=i, start=0.0, end=seconds, ok=len(latencies), samples=list(latencies))
    for ms in latencies:
        record_ms(w.hist, ms)
    w.completed = len(latencies) + sum((transport or {}).values())
    w.latency_sum_all_ms = sum(latencies)
    w.transport.update(transport or {})
    w.counters_end = dict(counters or {})
    return w


# ---- warm-up ------------------------------------------------------------------------------------
def slices(clock: FakeClock, p50s: list[float]) -> Iterator[Window]:
    for i, p50 in enumerate(p50s):
        yield window(i, [p50] * 5)


def run_warmup(p50s: list[float], warmup_s: float, bound_s: float) -> Warmup:
    clock = FakeClock()
    it = slices(clock, p50s)

    def run_slice(seconds: float) -> Window:
        clock.t += seconds
        return next(it)

    load = Load(warmup_s=warmup_s, stability=Stability(tolerance=0.10))
    return warm_up(run_slice, load, bound_s, clock=clock, stopped=lambda: False)


def test_warmup_off_runs_nothing_and_measures_zero() -> None:
    w = run_warmup([], 0.0, 0.0)
    assert (w.seconds, w.end, w.slices_p50_ms) == (0.0, "off", [])


def test_warmup_ends_when_latency_stops_falling_after_its_minimum() -> None:
    # slices of 0.5 s: falling 100 → 60 → 40, then flat; the minimum (1 s) is long past
    w = run_warmup([100, 60, 40, 39, 39, 39], 1.0, 10.0)
    assert w.end == "latency_flat" and w.slices_p50_ms == [100, 60, 40, 39] and w.seconds == 2.0


def test_warmup_stops_at_its_bound_while_latency_still_falls() -> None:
    w = run_warmup([100 * 0.8**i for i in range(20)], 1.0, 3.0)  # 20 % faster each slice
    assert w.end == "bound" and w.seconds == 3.0 and len(w.slices_p50_ms) == 6


def test_latency_flat_rule() -> None:
    assert latency_flat(100.0, 95.0, 0.10) and not latency_flat(100.0, 85.0, 0.10)
    assert not latency_flat(None, 95.0, 0.10) and not latency_flat(100.0, None, 0.10)


# ---- measurement loop ---------------------------------------------------------------------------
def run_measure(windows: list[Window], budget: Budget, done_after: int | None) -> Measurement:
    it = iter(windows)
    st = Stability(window_s=1.0, windows=2, max_windows=len(windows), tolerance=0.1)
    return measure(
        lambda: next(it), st, budget, lambda ws: done_after is not None and len(ws) >= done_after
    )


def test_measure_stops_when_the_rule_says_so_or_at_the_time_bound() -> None:
    ws = [window(i, [10.0] * 10) for i in range(5)]
    m = run_measure(ws, Budget(1000, 100.0), done_after=3)
    assert m.stop_reason == "stable" and len(m.summaries) == 3
    m = run_measure([window(i, [10.0]) for i in range(5)], Budget(1000, 100.0), done_after=None)
    assert m.stop_reason == "time_bound" and len(m.summaries) == 5


def test_measure_stops_at_the_request_bound() -> None:
    budget = Budget(3, 100.0)
    for _ in range(3):
        budget.take()
    m = run_measure([window(i, [10.0]) for i in range(5)], budget, done_after=None)
    assert m.stop_reason == "request_bound" and len(m.summaries) == 1


# ---- reported windows and judging ---------------------------------------------------------------
def test_reported_merges_only_the_last_windows() -> None:
    ws = [
        window(0, [500.0] * 4),
        window(1, [10.0] * 10, counters={"sent": 10}),
        window(2, [12.0] * 10, transport={"timeout": 2}, counters={"sent": 12}),
    ]
    rep = Reported.of(ws, 2, server_watched=False)
    assert (rep.ok, rep.requests, rep.seconds, rep.delta("sent")) == (20, 22, 2.0, 22)
    m = rep.measured(open_loop=True)
    assert m.sends.sent == 22 and m.completed_rps == 11.0 and m.server_cpu is None
    assert m.latency_mean_all_ms == (100 + 120) / 22
    empty = Reported.of(ws, 0, server_watched=True)
    assert empty.measured(open_loop=False).seconds == 0.0 and empty.server_cpu is None


def test_disruption_counts_outages_in_warmup_too() -> None:
    assert disruption(None, [window(0, [1.0])]) is None
    note = disruption("tree changed", [window(0, [1.0], transport={"connect": 3, "timeout": 1})])
    assert note == "tree changed; outage: 3 request(s) found no server listening (3 connect)"


def test_judge_builds_the_result_from_what_was_observed() -> None:
    load = Load(
        warmup_s=0.0, stability=Stability(window_s=1.0, windows=2, max_windows=3, tolerance=0.25)
    )
    spec = StepSpec(
        run_id="r",
        step_id="s",
        target=Target(server="torchserve", protocol="rest"),
        address="127.0.0.1:9",
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=1,
        load=load,
    )
    ws = [window(i, [10.0] * 100) for i in range(3)]
    for w in ws:
        w.counters_end = {"gaps": 100, "gap_ms_sum": 1}
    observed = Observed(
        started_at="t0",
        warmup=Warmup(0.0, "off"),
        windows=ws,
        warmup_windows=[],
        measurement=Measurement([w.summary() for w in ws], "stable"),
        counters=SendCounters(),
        budget_taken=300,
        client_ready_s=0.5,
    )
    r = judge(spec, observed)
    # 1 user, 100 answers/s at 10 ms: Little's law holds; generator CPU 0 (synthetic windows)
    assert r.valid and r.steady and r.disrupted is None, (r.invalid_reason, r.unsteady_reason)
    assert (r.ok, r.reported_windows, r.measured_s, r.throughput_rps) == (200, 2, 2.0, 100.0)
    assert r.totals["warmup_end"] == "off" and r.totals["warmup_measured_s"] == 0.0
    assert r.windows[0].p50_ci_ms == (10.0, 10.0)
