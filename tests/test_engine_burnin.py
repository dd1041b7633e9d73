"""Burn-in (issue 19): its settings, its step, its record, and when the local run burns a server
in (before round 1, again after a restart). One real step process against the echo double."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_engine_doubles import save_echo_payloads, start_echo_server

from servecmp.experiment import Experiment, ExperimentError, parse_experiment
from servecmp.load.engine.burnin import burn_in_spec, describe, record_of, run_burn_in
from servecmp.results.schema import BurnInRecord, StepResult, WindowSummary
from servecmp.results.store import RunStore

BASE = {
    "name": "bi",
    "model": "tiny",
    "targets": [{"server": "torchserve", "protocol": "rest", "encoding": "raw"}],
}


def exp(**load: object) -> Experiment:
    return parse_experiment({**BASE, "load": load})


# ---- settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("burn_in", "field", "expected"),
    [
        ({"max_s": -1}, "load.burn_in.max_s", "greater than or equal to 0"),
        ({"max_s": 7200}, "load.burn_in.max_s", "less than or equal to 3600"),
        ({"window_s": 0}, "load.burn_in.window_s", "greater than 0"),
        ({"max_s": 3, "window_s": 2}, "load.burn_in", "must allow 3 windows of window_s (2 s)"),
        ({"max_s": "soon"}, "load.burn_in.max_s", "valid number"),
        ({"max_seconds": 5}, "load.burn_in.max_seconds", "unknown field"),
    ],
)
def test_bad_burn_in_settings_are_refused_naming_the_field(
    burn_in: dict, field: str, expected: str
) -> None:
    with pytest.raises(ExperimentError) as err:
        exp(burn_in=burn_in)
    assert f"{field}: " in str(err.value) and expected in str(err.value)


def test_default_burn_in_keeps_the_experiment_digest() -> None:
    assert exp().digest() == exp(burn_in={"max_s": 60, "window_s": 2}).digest()
    assert exp().digest() != exp(burn_in={"max_s": 30}).digest()
    assert exp(burn_in={"max_s": 0}).load.burn_in.max_s == 0  # 0: off, whatever the window


def test_quick_runs_use_a_short_burn_in() -> None:
    from servecmp.run.orchestrate import QUICK_BURN_IN, quick_profile

    quick = quick_profile(exp()).load.burn_in
    assert 0 < quick.max_s <= QUICK_BURN_IN["max_s"] < exp().load.burn_in.max_s
    assert quick_profile(exp(burn_in={"max_s": 0})).load.burn_in.max_s == 0


# ---- the step and its record ----------------------------------------------------------------------
def test_burn_in_spec_is_a_closed_loop_step_without_warmup_bounded_by_max_s() -> None:
    e = exp(concurrency=[1, 8], burn_in={"max_s": 20, "window_s": 2})
    target = e.targets[0]
    spec = burn_in_spec(e, target, "127.0.0.1:9", run_id="r", after="start", number=0)
    assert spec is not None and spec.burn_in and spec.mode == "closed_loop"
    assert spec.concurrency == 8 and spec.load.warmup_s == 0
    st = spec.load.stability
    assert (st.window_s, st.windows, st.max_windows) == (2.0, 3, 10)
    assert st.window_s * st.max_windows <= e.load.burn_in.max_s
    long = burn_in_spec(
        exp(burn_in={"max_s": 3600, "window_s": 1, "concurrency": 3}),
        target,
        "127.0.0.1:9",
        run_id="r",
        after="restart",
        number=1,
    )
    assert long is not None and long.load.stability.max_windows <= 100 and long.concurrency == 3
    assert (
        burn_in_spec(
            exp(burn_in={"max_s": 0}), target, "127.0.0.1:9", run_id="r", after="start", number=0
        )
        is None
    )


def _result(stop: str, thr: list[float], error: str | None = None) -> StepResult:
    windows = [
        WindowSummary(
            index=i,
            duration_s=2.0,
            ok=int(t * 2),
            wrong_answers=0,
            transport_errors=0,
            throughput_rps=t,
            p50_ms=5.0,
            p99_ms=9.0,
        )
        for i, t in enumerate(thr)
    ]
    return StepResult(
        run_id="r",
        step_id="burn",
        target="torchserve-rest-raw",
        server="torchserve",
        protocol="rest",
        encoding="raw",
        sweep="closed_loop",
        mode="closed_loop",
        started_at="t0",
        warmup_s=0,
        window_s=2,
        stop_reason=stop,
        windows=windows,  # type: ignore[arg-type]
        error=error,
    )


def test_record_says_whether_it_converged_and_why_not() -> None:
    e = exp(burn_in={"max_s": 10, "window_s": 2})
    spec = burn_in_spec(e, e.targets[0], "127.0.0.1:9", run_id="r", after="start", number=0)
    assert spec is not None
    done = record_of(spec, _result("stable", [50, 80, 99, 100, 100]), "start")
    assert done.converged and done.reason is None and (done.windows, done.duration_s) == (5, 10.0)
    assert "settled after 5 windows (10.0 s)" in describe(done)
    rising = record_of(spec, _result("time_bound", [50, 60, 70, 80, 90]), "restart")
    assert (
        not rising.converged
        and rising.reason
        and rising.reason.startswith("time_bound: trend: throughput rising")
    )
    assert "did NOT settle" in describe(rising) and "after its restart" in describe(rising)
    crashed = record_of(spec, _result("error", [], error="Traceback\nboom"), "start")
    assert not crashed.converged and crashed.reason == "error: Traceback"


@pytest.mark.load
def test_burn_in_runs_as_its_own_step_outside_the_measured_steps(tmp_path: Path) -> None:
    proc, address = start_echo_server(2.0)
    run_dir = tmp_path / "run"
    try:
        e = exp(concurrency=[2], burn_in={"max_s": 4, "window_s": 0.5})
        record = run_burn_in(
            e,
            e.targets[0],
            address,
            run_dir / "burn-in",
            run_id="r",
            after="start",
            payloads_path=save_echo_payloads(tmp_path),
        )
    finally:
        proc.kill()
        proc.wait()
    assert record is not None and record.server == "torchserve" and record.concurrency == 2
    assert 3 <= record.windows <= 8 and len(record.throughput_rps) == record.windows
    assert all(t > 0 for t in record.throughput_rps)
    assert record.converged == (record.reason is None)  # settled or said why not, either is honest
    assert not RunStore(run_dir).read_steps().steps  # never among the measured steps
    assert [s.step_id for s in RunStore(run_dir / "burn-in").read_steps().steps] == [
        "burn-in-00-torchserve-start"
    ]


# ---- when the local run burns a server in -----------------------------------------------------
class FakeServer:
    name = "torchserve"

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def measured_pid(self) -> int | None:
        return self.pid

    def address(self, protocol: object) -> str:
        return "127.0.0.1:9"


def test_a_server_is_burned_in_once_after_start_and_again_after_each_restart(
    tmp_path: Path, monkeypatch
) -> None:
    from servecmp.run import burnin

    calls: list[tuple[str, list[int]]] = []

    def fake_run(
        exp_: Experiment,
        target: object,
        address: str,
        out_dir: Path,
        *,
        after: str,
        server_pids: list[int],
        **kw: object,
    ) -> BurnInRecord:
        calls.append((after, server_pids))
        return BurnInRecord(
            server="torchserve",
            target="t",
            after=after,
            started_at="t0",
            concurrency=1,  # type: ignore[arg-type]
            converged=True,
            duration_s=6.0,
            windows=3,
            window_s=2.0,
        )

    monkeypatch.setattr(burnin, "run_burn_in", fake_run)
    e = exp()
    tracker = burnin.BurnIns(e, tmp_path, "r", payloads_path="p", cpus=None, log=lambda m: None)
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    second = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        server = FakeServer(first.pid)
        tracker.ensure(server, e.targets[0])  # type: ignore[arg-type]
        tracker.ensure(server, e.targets[0])  # same process: nothing to do
        server.pid = second.pid  # restarted: a new root process
        tracker.ensure(server, e.targets[0])  # type: ignore[arg-type]
        tracker.ensure(server, e.targets[0])  # type: ignore[arg-type]
    finally:
        for p in (first, second):
            p.kill()
            p.wait()
    assert [a for a, _ in calls] == ["start", "restart"]
    assert calls[0][1] == [first.pid] and calls[1][1] == [second.pid]
    assert len(tracker.records) == 2 and len(tracker.notes()) == 2
    off = burnin.BurnIns(
        exp(burn_in={"max_s": 0}), tmp_path, "r", payloads_path="p", cpus=None, log=lambda m: None
    )
    assert off.ensure(FakeServer(os.getpid()), e.targets[0]) is None and len(calls) == 2  # type: ignore[arg-type]
