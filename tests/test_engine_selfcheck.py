"""Trust rules (issue 11): Little's law and the open-loop self-checks reject steps that break
them, steadiness flags trends and disagreeing windows, a changed process tree is described."""

from __future__ import annotations

from test_engine_rules import split

from servecmp.load.engine.stability import P99_MIN_OK, steadiness
from servecmp.load.engine.step import tree_change
from servecmp.load.engine.validity import (
    LITTLE_TOLERANCE,
    Asked,
    Measured,
    judge_validity,
    sent_tolerance,
)
from servecmp.results.schema import StepResult, WindowSummary


def closed(
    concurrency: int, rps: float, mean_ms: float, n: int = 500, **kw: object
) -> tuple[Measured, Asked]:
    base: dict = dict(
        mode="closed_loop",
        ok=n,
        requests=n,
        generator_cpu=0.2,
        generator_cpu_limit=0.9,
        server_cpu=None,
        server_cpu_budget=None,
        concurrency=concurrency,
        completed_rps=rps,
        latency_mean_all_ms=mean_ms,
    )
    base.update(kw)
    return split(base)


def opened(
    rate: float, sends: int, measured_s: float = 6.0, **kw: object
) -> tuple[Measured, Asked]:
    base: dict = dict(
        mode="open_loop",
        ok=sends,
        requests=sends,
        generator_cpu=0.2,
        generator_cpu_limit=0.9,
        server_cpu=None,
        server_cpu_budget=None,
        sends=sends,
        offered_rps=rate,
        measured_s=measured_s,
        arrival="uniform",
        max_in_flight=64,
    )
    base.update(kw)
    return split(base)


# ---- Little's law (closed loop) ---------------------------------------------------------------
def test_littles_law_holds_for_a_consistent_closed_loop_step() -> None:
    # 4 users, 36.3 req/s, mean 110 ms: 4.0 in flight (TorchServe REST raw measured here)
    assert judge_validity(*closed(4, 36.3, 110.0)) == (True, None)
    assert judge_validity(*closed(1, 34.0, 29.8)) == (True, None)


def test_the_old_inprocess_baseline_at_c4_breaks_littles_law() -> None:
    # issue 11: pytorch-inprocess at c=4 reported 40 req/s at 14.7 ms: 0.59 in flight, not 4
    ok, why = judge_validity(*closed(4, 40.0, 14.7, send_gap_ms=85.0, inprocess=True))
    assert not ok and why is not None
    assert "Little's law" in why and "0.59 requests in flight" in why and "4 users" in why
    assert "85.00 ms from a response to the next send" in why


def test_a_third_of_the_cycle_outside_the_latency_is_rejected_and_the_tolerance_is_the_stated_one() -> (
    None
):
    assert not judge_validity(*closed(1, 100.0, 6.7))[0]  # 0.67: issue 11's c=1 baseline
    edge = 1.0 - LITTLE_TOLERANCE
    assert judge_validity(*closed(1, 100.0, (edge + 0.01) * 10.0))[0]
    assert not judge_validity(*closed(1, 100.0, (edge - 0.01) * 10.0))[0]
    assert not judge_validity(*closed(2, 100.0, 30.0))[0]  # 3 in flight with 2 users: too many


def test_littles_law_is_not_judged_on_too_few_requests_or_in_open_loop() -> None:
    assert judge_validity(*closed(4, 40.0, 14.7, n=20))[0]
    assert judge_validity(
        *opened(20.0, 120, concurrency=None, completed_rps=20.0, latency_mean_all_ms=1.0)
    )[0]


# ---- open loop --------------------------------------------------------------------------------
def test_open_loop_sending_the_offered_rate_is_valid() -> None:
    assert judge_validity(*opened(20.0, 118)) == (True, None)


def test_open_loop_more_in_flight_than_the_bound_is_rejected() -> None:
    ok, why = judge_validity(*opened(20.0, 120, in_flight_peak=65))
    assert (
        not ok and why is not None and "65 requests in flight" in why and "max_in_flight 64" in why
    )
    assert judge_validity(*opened(20.0, 120, in_flight_peak=64))[0]


def test_open_loop_sending_less_than_offered_with_free_slots_is_rejected() -> None:
    ok, why = judge_validity(*opened(30.0, 90))  # 15 req/s of 30 offered, no backpressure
    assert not ok and why is not None and "sent 15.0 req/s against 30 offered" in why


def test_open_loop_shortfall_from_backpressure_is_the_servers_number() -> None:
    assert judge_validity(
        *opened(
            30.0,
            90,
            late_backpressure=40,
            late_total=40,
            late_threshold_ms=10.0,
            service_p99_ms=400.0,
        )
    )[0]


def test_open_loop_sending_more_than_offered_is_rejected() -> None:
    ok, why = judge_validity(*opened(20.0, 180))
    assert not ok and why is not None and "more than scheduled" in why


def test_poisson_tolerance_grows_with_few_expected_sends() -> None:
    assert sent_tolerance(10_000, "poisson") == 0.10
    assert abs(sent_tolerance(100, "poisson") - 0.30) < 1e-9
    assert sent_tolerance(100, "uniform") == 0.10


# ---- steadiness -------------------------------------------------------------------------------
def win(i: int, thr: float, p50: float, p99: float) -> WindowSummary:
    return WindowSummary(
        index=i,
        duration_s=2.0,
        ok=int(thr * 2),
        wrong_answers=0,
        transport_errors=0,
        throughput_rps=thr,
        p50_ms=p50,
        p99_ms=p99,
    )


def test_a_draining_queue_is_not_steady() -> None:
    # issue 11: open loop at 30 req/s on TorchServe REST JSON, p50 per window
    ws = [win(i, 30.0, p50, p50 * 2) for i, p50 in enumerate([1274, 1966, 760, 162])]
    steady, why = steadiness(ws, 3, 0.10)
    assert (
        not steady
        and why is not None
        and "trend: p50 falling" in why
        and "1,966 ms → 760 ms → 162 ms" in why
    )


def test_a_slow_trend_within_the_spread_of_p99_is_still_a_trend() -> None:
    ws = [win(0, 30, 100, 200), win(1, 30, 93, 205), win(2, 30, 86, 210)]  # p50 falls 15 %
    steady, why = steadiness(ws, 3, 0.10)
    assert not steady and why is not None and why.startswith("trend: p50 falling")


def test_windows_that_never_agree_are_not_steady() -> None:
    # >= P99_MIN_OK answers a window: the p99 is well sampled and compared
    ws = [win(0, 600, 100, 200), win(1, 900, 100, 200), win(2, 600, 100, 320)]
    assert all(w.ok >= P99_MIN_OK for w in ws)
    steady, why = steadiness(ws, 3, 0.10)
    assert not steady and why is not None
    assert "never agreed" in why and "throughput spread" in why and "p99 spread" in why


def test_p99_of_small_windows_is_sampling_noise_judged_by_p50_instead() -> None:
    # ~150 answers a window (the quick demo's 1.5 s windows): p99 rests on 1-2 samples
    small = [win(0, 100, 9.2, 21.0), win(1, 101, 9.3, 32.0), win(2, 100, 9.1, 25.0)]
    assert steadiness(small, 3, 0.10) == (True, None)
    # the same p99 spread in well-sampled windows is a disagreement
    big = [win(i, w.throughput_rps * 10, w.p50_ms or 0, w.p99_ms or 0) for i, w in enumerate(small)]
    steady, why = steadiness(big, 3, 0.10)
    assert not steady and why is not None and "p99 spread" in why
    # small windows whose p50 disagrees are still not steady, and the reason says why p50
    wobbly = [win(0, 100, 9.0, 21.0), win(1, 100, 12.0, 22.0), win(2, 100, 9.5, 21.0)]
    steady, why = steadiness(wobbly, 3, 0.10)
    assert not steady and why is not None and "p50 spread" in why and "p99 not judged" in why


def test_agreeing_windows_are_steady_and_noise_is_not_a_trend() -> None:
    ws = [win(0, 30, 100, 200), win(1, 31, 104, 205), win(2, 30.5, 99, 198)]
    assert steadiness(ws, 3, 0.10) == (True, None)
    assert steadiness(ws[:2], 3, 0.10)[0] is False


# ---- disruption -------------------------------------------------------------------------------
def test_tree_change_names_what_exited_and_what_started() -> None:
    before = {10: (1.0, "java"), 11: (2.0, "python")}
    assert tree_change(before, dict(before)) is None
    after = {10: (1.0, "java"), 12: (9.0, "python")}
    why = tree_change(before, after)
    assert (
        why is not None and "exited: python (pid 11)" in why and "started: python (pid 12)" in why
    )
    reused = {10: (1.0, "java"), 11: (9.0, "python")}  # same pid, new process
    assert "exited: python (pid 11)" in (tree_change(before, reused) or "")


def test_only_valid_steady_undisturbed_steps_are_comparable() -> None:
    base = dict(
        run_id="r",
        step_id="s",
        target="t",
        server="torchserve",
        protocol="rest",
        encoding="json",
        sweep="closed_loop",
        mode="closed_loop",
        started_at="x",
        warmup_s=1,
        window_s=1,
        stop_reason="stable",
    )
    assert StepResult(**base).comparable
    assert not StepResult(**base, valid=False).comparable
    assert not StepResult(**base, steady=False, unsteady_reason="trend").comparable
    assert not StepResult(**base, disrupted="outage").comparable


def test_a_process_that_renames_itself_is_not_a_tree_change() -> None:
    """Ray's workers retitle themselves per task (setproctitle: ``ray::ServeReplica:app:M`` ->
    ``...M.handle_request_with_rejection``): same pid, same start time, so the same process."""
    before = {20: (5.0, "ray::ServeReplica:resnet:TorchScriptModel")}
    after = {20: (5.0, "ray::ServeReplica:resnet:TorchScriptModel.handle_request")}
    assert tree_change(before, after) is None
