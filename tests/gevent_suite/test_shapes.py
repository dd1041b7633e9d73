"""LoadTestShape tick sequences, driven by a fake clock (no runner, no network)."""

from __future__ import annotations

from servecmp.experiment import Load, Stability
from servecmp.load.shapes import (
    ConcurrencySweepShape,
    OpenLoopShape,
    RateSweepShape,
    stage_seconds,
)
from servecmp.load.users import ClosedLoopUser, OpenLoopUser

LOAD = dict(
    warmup_s=1.0, stability=Stability(window_s=1.0, windows=2, max_windows=2)
)  # stage = 3 s


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def ticks(shape, clock: Clock, times: list[float]) -> list:
    out = []
    for t in times:
        clock.t = t
        out.append(shape.tick())
    return out


def test_stage_seconds() -> None:
    assert stage_seconds(Load(**LOAD)) == 3.0


def test_open_loop_shape() -> None:
    clock = Clock()
    shape = OpenLoopShape(load=Load(profile="open_loop", rate=40, **LOAD), clock=clock)
    assert ticks(shape, clock, [0, 1, 2.9, 3.0]) == [(1, 1.0, [OpenLoopUser])] * 3 + [None]
    assert shape.current_rate == 0.0  # stopped


def test_concurrency_sweep_shape() -> None:
    clock = Clock()
    shape = ConcurrencySweepShape(
        load=Load(profile="closed_loop", concurrency=[1, 4, 8], **LOAD), clock=clock
    )
    got = ticks(shape, clock, [0, 2.9, 3, 5.9, 6, 8.9, 9])
    assert [g[0] if g else None for g in got] == [1, 1, 4, 4, 8, 8, None]
    assert got[0][2] == [ClosedLoopUser]


def _feed(shape: RateSweepShape, ms: float, n: int = 200) -> None:
    for _ in range(n):
        shape.probe.on_request(response_time=ms, context={"outcome": "ok"})


def test_rate_sweep_stops_at_first_rate_breaking_slo() -> None:
    clock = Clock()
    shape = RateSweepShape(
        load=Load(profile="rate_sweep", rates=[10, 20, 40, 80], slo_p99_ms=50, **LOAD), clock=clock
    )
    seq = []
    for t, latency in [
        (0, None),
        (1.5, 10),
        (3, None),
        (4.5, 30),
        (6, None),
        (7.5, 200),
        (9, None),
    ]:
        clock.t = t
        seq.append((shape.tick(), shape.current_rate, shape.probe.active))
        if latency is not None:
            _feed(shape, latency)
    assert [s[1] for s in seq[:6]] == [10, 10, 20, 20, 40, 40]
    assert [s[2] for s in seq[:6]] == [False, True, False, True, False, True]  # warm-up not probed
    assert seq[-1][0] is None  # 40 req/s broke the SLO at the stage boundary
    assert shape.outcome.max_sustained_rps == 20 and shape.outcome.broke_at_rps == 40
    assert shape.tick() is None  # stays stopped


def test_rate_sweep_all_pass() -> None:
    clock = Clock()
    shape = RateSweepShape(
        load=Load(profile="rate_sweep", rates=[10, 20], slo_p99_ms=50, **LOAD), clock=clock
    )
    for t in (0, 1.5, 3, 4.5, 6):
        clock.t = t
        shape.tick()
        if shape.probe.active:
            _feed(shape, 5)
    assert shape.outcome.max_sustained_rps == 20 and shape.outcome.broke_at_rps is None
