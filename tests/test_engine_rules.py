"""Pure engine rules: stability, validity (generator bottleneck), bounds, addresses, planning."""

from __future__ import annotations

import pytest

from servecmp.experiment import Load, Target
from servecmp.load.engine.context import Budget
from servecmp.load.engine.recorder import WindowRecorder, decode
from servecmp.load.engine.spec import AddressError, check_address, plan_steps
from servecmp.load.engine.stability import is_stable, spread
from servecmp.load.engine.validity import Asked, Measured, Sends, judge_validity
from servecmp.results.schema import WindowSummary


def w(i: int, thr: float, p99: float | None) -> WindowSummary:
    return WindowSummary(
        index=i,
        duration_s=1.0,
        ok=int(thr),
        wrong_answers=0,
        transport_errors=0,
        throughput_rps=thr,
        p99_ms=p99,
        p50_ms=p99,
    )


# ---- stability --------------------------------------------------------------------------------
def test_stable_when_last_windows_agree_on_throughput_and_p99() -> None:
    ws = [w(0, 50, 300), w(1, 100, 20), w(2, 101, 21), w(3, 99, 20.5)]
    assert is_stable(ws, 3, 0.10)
    assert not is_stable(ws[:3], 3, 0.10)  # the first (warming) window is still in the last 3


def test_unstable_when_p99_alone_drifts() -> None:
    ws = [w(0, 100, 20), w(1, 100, 30), w(2, 100, 45)]  # throughput flat, p99 growing (queue)
    assert not is_stable(ws, 3, 0.10)


def test_unstable_when_throughput_alone_drifts() -> None:
    assert not is_stable([w(0, 80, 20), w(1, 100, 20), w(2, 120, 20)], 3, 0.10)


def test_too_few_windows_or_no_answers_is_not_stable() -> None:
    assert not is_stable([w(0, 100, 20)], 2, 0.5)
    assert not is_stable([w(0, 0, None), w(1, 0, None)], 2, 0.5)  # dead server -> time bound


def test_spread() -> None:
    assert spread([90, 100, 110]) == pytest.approx(0.2)
    assert spread([0, 0]) == float("inf")


# ---- validity ---------------------------------------------------------------------------------
MEASURED = {
    "ok",
    "requests",
    "generator_cpu",
    "server_cpu",
    "completed_rps",
    "latency_mean_all_ms",
    "send_gap_ms",
    "service_p99_ms",
}
SENDS = {
    "sends": "sent",
    "late_total": "late",
    "late_generator": "late_generator",
    "late_backpressure": "late_backpressure",
    "in_flight_peak": "in_flight_peak",
}


def split(flat: dict) -> tuple[Measured, Asked]:
    """The validity rule's two records from one flat set of facts and settings."""
    m = {k: v for k, v in flat.items() if k in MEASURED}
    if "measured_s" in flat:
        m["seconds"] = flat["measured_s"]
    sends = Sends(**{SENDS[k]: v for k, v in flat.items() if k in SENDS})
    a = {
        k: v for k, v in flat.items() if k not in MEASURED and k not in SENDS and k != "measured_s"
    }
    return Measured(**m, sends=sends), Asked(**a)


def vi(**kw) -> tuple[Measured, Asked]:
    base = dict(
        mode="closed_loop",
        ok=1000,
        requests=1000,
        generator_cpu=0.3,
        generator_cpu_limit=0.9,
        server_cpu=None,
        server_cpu_budget=None,
    )
    base.update(kw)
    return split(base)


def test_valid_when_generator_idle() -> None:
    assert judge_validity(*vi()) == (True, None)


def test_generator_cpu_over_limit_with_unwatched_server_is_invalid() -> None:
    ok, why = judge_validity(*vi(generator_cpu=0.95))
    assert not ok and "generator-bound" in why and "not watched" in why


def test_generator_cpu_over_limit_with_idle_server_is_invalid() -> None:
    ok, why = judge_validity(*vi(generator_cpu=0.95, server_cpu=0.3, server_cpu_budget=1.0))
    assert not ok and "0.30 of 1.0 cores" in why


def test_generator_cpu_over_limit_with_saturated_server_is_valid() -> None:
    assert judge_validity(*vi(generator_cpu=0.95, server_cpu=0.97, server_cpu_budget=1.0))[0]


def test_busy_core_of_an_inprocess_baseline_is_its_compute_not_a_bottleneck() -> None:
    assert judge_validity(*vi(generator_cpu=0.99, inprocess=True)) == (True, None)
    # ...but the open-loop lateness rules still apply to it.
    ok, _ = judge_validity(
        *vi(
            generator_cpu=0.99,
            inprocess=True,
            mode="open_loop",
            sends=100,
            late_total=50,
            late_generator=50,
            service_p99_ms=5,
        )
    )
    assert not ok


def test_generator_late_sends_over_tolerance_are_invalid() -> None:
    ok, why = judge_validity(
        *vi(
            mode="open_loop",
            sends=1000,
            late_total=80,
            late_generator=60,
            late_send_tolerance=0.05,
            service_p99_ms=50,
        )
    )
    assert not ok and "free in-flight slot" in why


def test_backpressure_late_sends_with_slow_server_are_valid() -> None:
    # late because every slot was busy (slow server): the wait is in the latency, not invalid
    assert judge_validity(
        *vi(
            mode="open_loop",
            sends=1000,
            late_total=600,
            late_generator=3,
            late_send_tolerance=0.05,
            service_p99_ms=200,
        )
    )[0]


def test_late_sends_while_server_fast_are_invalid() -> None:
    ok, why = judge_validity(
        *vi(
            mode="open_loop",
            sends=1000,
            late_total=200,
            late_generator=0,
            late_send_tolerance=0.05,
            late_threshold_ms=10,
            service_p99_ms=4,
        )
    )
    assert not ok and "answered within" in why


def test_no_answers_is_invalid() -> None:
    ok, why = judge_validity(*vi(ok=0, requests=500))
    assert not ok and "no successful responses" in why


# ---- recorder ---------------------------------------------------------------------------------
def test_recorder_ignores_warmup_and_splits_outcomes() -> None:
    rec = WindowRecorder()
    rec.on_request(response_time=5.0, context={"outcome": "ok"})  # warm-up: ignored
    rec.open_window()
    for ms in (1.0, 2.0, 3.0, 100.0):
        rec.on_request(response_time=ms, context={"outcome": "ok", "late_ms": 0.5})
    rec.on_request(
        response_time=1.0, exception=ValueError("x"), context={"outcome": "wrong_answer"}
    )
    rec.on_request(
        response_time=1.0,
        exception=OSError(),
        context={"outcome": "transport_error", "error_kind": "connect"},
    )
    rec.on_request(
        response_time=1.0,
        exception=OSError(),
        context={"outcome": "transport_error", "error_kind": "timeout"},
    )
    win = rec.close_window()
    assert (win.ok, win.wrong, dict(win.transport)) == (4, 1, {"connect": 1, "timeout": 1})
    assert win.hist.get_total_count() == 4
    assert 99.0 < win.summary().p99_ms < 101.0
    assert decode(win.hist.encode().decode()).get_total_count() == 4  # round-trips


def test_service_histogram_only_in_open_loop() -> None:
    """Closed loop: service time == latency, so the second HDR record per request is skipped
    (generator hot path); open loop keeps latency - late."""
    closed, open_ = WindowRecorder(service=False), WindowRecorder(service=True)
    for rec in (closed, open_):
        rec.open_window()
        rec.on_request(response_time=10.0, context={"outcome": "ok", "late_ms": 4.0})
    wc, wo = closed.close_window(), open_.close_window()
    assert wc.hist.get_total_count() == 1 and wc.service.get_total_count() == 0
    assert wo.service.get_total_count() == 1 and 5.9 < wo.service.get_max_value() / 1000 < 6.1


# ---- bounds, addresses, planning ----------------------------------------------------------------
def test_budget_bounds_count_and_time() -> None:
    now = [0.0]
    b = Budget(3, 10.0, clock=lambda: now[0])
    assert [b.take() for _ in range(4)] == [True, True, True, False]
    b2 = Budget(100, 10.0, clock=lambda: now[0])
    now[0] = 10.0
    assert not b2.take()


@pytest.mark.parametrize("addr", ["127.0.0.1:8080", "http://127.0.0.1:8080/", "[::1]:7070", "::1"])
def test_loopback_addresses_allowed(addr: str) -> None:
    check_address(addr)


@pytest.mark.parametrize(
    "addr", ["10.1.2.3:80", "example.com:80", "localhost:8080", "0.0.0.0:80", "ts.ns.svc:8080"]
)
def test_other_addresses_refused(addr: str) -> None:
    with pytest.raises(AddressError, match="refusing"):
        check_address(addr)


def test_cluster_mode_accepts_service_dns_only() -> None:
    check_address("torchserve.servecmp.svc.cluster.local:8080", cluster_mode=True)
    check_address("tfserving.servecmp.svc:8500", cluster_mode=True)
    with pytest.raises(AddressError):
        check_address("example.com:80", cluster_mode=True)


def test_inprocess_targets_need_no_address() -> None:
    check_address(None, target=Target(server="pytorch", protocol="inprocess"))


def test_plan_steps() -> None:
    assert plan_steps(Load(profile="closed_loop", concurrency=[1, 4])) == [
        ("concurrency", 1.0),
        ("concurrency", 4.0),
    ]
    assert plan_steps(Load(profile="open_loop", rate=30)) == [("rate", 30.0)]
    assert plan_steps(Load(profile="rate_sweep", rates=[10, 20])) == [
        ("rate", 10.0),
        ("rate", 20.0),
    ]
