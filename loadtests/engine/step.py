"""One step, in this process: ``python -m servecmp.loadtests.engine.step --spec step.json --out RUN_DIR``.

Timeline: start the users -> warm-up (``load.warmup_s``, not recorded) -> measurement windows of
``stability.window_s`` until the last ``stability.windows`` agree within ``stability.tolerance``
(``stop_reason="stable"``) or ``stability.max_windows`` ran (``"time_bound"``) or the request
bound was hit (``"request_bound"``) -> stop the users -> append one StepResult line to
``RUN_DIR/steps.jsonl`` (fsync'd). A ``SIGALRM`` self-destruct and the parent's kill deadline
make sure the process never hangs. Importing this module does not import Locust.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from servecmp.loadtests.engine.recorder import (
    CpuWatch,
    ValidityInput,
    WindowRecorder,
    encode,
    is_stable,
    judge_validity,
    new_hist,
    summarize,
)
from servecmp.loadtests.engine.spec import StepSpec
from servecmp.results.schema import GeneratorWatch, LateSends, StepResult
from servecmp.results.store import RunStore

SLO_MAX_ERROR_FRACTION = 0.01
SLO_MIN_ACHIEVED_FRACTION = 0.90


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def base_fields(spec: StepSpec) -> dict[str, Any]:
    t = spec.target
    return {
        "run_id": spec.run_id,
        "step_id": spec.step_id,
        "index": spec.index,
        "repeat": spec.repeat,
        "target": t.name,
        "server": t.server.value,
        "protocol": t.protocol.value,
        "encoding": t.effective_encoding.value,
        "sweep": spec.sweep,
        "mode": spec.mode,
        "concurrency": spec.concurrency,
        "rate": spec.rate,
        "arrival": spec.load.arrival.value if spec.mode == "open_loop" else None,
        "max_in_flight": spec.max_in_flight if spec.mode == "open_loop" else None,
        "warmup_s": spec.load.warmup_s,
        "window_s": spec.load.stability.window_s,
        "offered_rps": spec.rate if spec.mode == "open_loop" else None,
        "slo_p99_ms": spec.slo_p99_ms,
    }


def failed_result(spec: StepSpec, stop_reason: str, error: str, started_at: str | None = None) -> StepResult:
    """A result for a step that produced no measurement (crash, killed at the deadline)."""
    return StepResult(
        **base_fields(spec),
        started_at=started_at or _now_iso(),
        stop_reason=stop_reason,  # type: ignore[arg-type]
        valid=False,
        invalid_reason=f"step did not finish: {error.splitlines()[0] if error else stop_reason}",
        error=error[-4000:],
        slo_pass=False if spec.slo_p99_ms is not None else None,
    )


def _attach_generator_metrics(env: Any, spec: StepSpec) -> Any:
    """Optional: the observability package's generator metrics, when installed and asked for."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not os.environ.get("SERVECMP_GENERATOR_METRICS"):
        return None
    try:
        from servecmp.observability import generator_metrics as gm
    except ImportError:
        return None
    return gm.subscribe(env, late_threshold_ms=spec.load.late_threshold_ms, targets=[spec.target])


def run_here(spec: StepSpec) -> StepResult:
    """Run ``spec`` in this process (gevent-patched by importing Locust) and return its result."""
    import gevent
    import locust  # noqa: F401  - gevent patching first
    from locust.env import Environment

    from servecmp.loadtests import users as U
    from servecmp.loadtests.engine.clientmaker import client_maker
    from servecmp.loadtests.engine.context import Budget, LoadContext

    started_at = _now_iso()
    load, st = spec.load, spec.load.stability
    maker = client_maker(spec)
    n_inputs = int(getattr(maker, "n_inputs", spec.payload.distinct_inputs))
    # users stop by themselves shortly after the last window would end, whatever happens here
    budget = Budget(load.max_requests_per_step, spec.measurement_bound_s() + 1.0)
    ctx = LoadContext(
        new_client=maker, n_inputs=n_inputs, budget=budget,
        late_threshold_s=load.late_threshold_ms / 1000.0, max_in_flight=spec.max_in_flight,
        arrival=load.arrival.value, seed=spec.seed + spec.index,
        protocol=spec.target.protocol.value,
    )
    if spec.mode == "open_loop":
        ctx.rate.rate = float(spec.rate or 0.0)
        user_cls: type = U.OpenLoopUser
        n_users = 1
    else:
        user_cls = U.closed_loop_user_for(spec.target.server.value, spec.target.protocol.value)
        n_users = int(spec.concurrency or 1)

    env = Environment(user_classes=[user_cls], catch_exceptions=True)
    env.servecmp = ctx  # type: ignore[attr-defined]
    user_errors: list[str] = []
    env.events.user_error.add_listener(
        lambda user_instance, exception, tb, **_: user_errors.append(f"{type(exception).__name__}: {exception}")
    )
    server_watch = CpuWatch(spec.server_pids) if spec.server_pids else None
    rec = WindowRecorder(ctx.counters, server_watch, service=spec.mode == "open_loop")
    env.events.request.add_listener(rec.on_request)
    gm = _attach_generator_metrics(env, spec)

    runner = env.create_local_runner()
    runner.start(n_users, spawn_rate=float(max(20, n_users * 20)), wait=False)
    stop_reason = "time_bound"
    summaries = []
    try:
        gevent.sleep(load.warmup_s)
        for _ in range(st.max_windows):
            rec.open_window()
            end = time.perf_counter() + st.window_s
            while (left := end - time.perf_counter()) > 0 and not budget.count_exhausted:
                gevent.sleep(min(0.05, left))
            summaries.append(rec.close_window().summary())
            if budget.count_exhausted:
                stop_reason = "request_bound"
                break
            if is_stable(summaries, st.windows, st.tolerance):
                stop_reason = "stable"
                break
    finally:
        runner.quit()
        stop_sampler = getattr(gm, "stop_sampler", None)
        if stop_sampler is not None:
            stop_sampler()

    # ---- summary over the reported windows (the last `stability.windows`) ------------------
    windows = rec.windows
    k = min(st.windows, len(windows))
    rep = windows[-k:] if k else []
    hist, service = new_hist(), new_hist()
    transport: Counter[str] = Counter()
    ok = wrong = 0
    for w in rep:
        hist.add(w.hist)
        service.add(w.service)
        ok += w.ok
        wrong += w.wrong
        transport.update(w.transport)
    measured = sum(w.duration for w in rep) or 1e-9
    requests = ok + wrong + sum(transport.values())
    gen_cpu = sum(w.cpu_end - w.cpu_start for w in rep) / measured
    server_cpu = None
    if server_watch is not None and rep:
        server_cpu = sum((w.server_cpu_end or 0.0) - (w.server_cpu_start or 0.0) for w in rep) / measured
    d = lambda key: sum(w.delta(key) for w in rep)  # noqa: E731
    open_loop = spec.mode == "open_loop"
    lat = summarize(hist)
    svc = summarize(service) if open_loop else None
    valid, reason = judge_validity(ValidityInput(
        mode=spec.mode, ok=ok, requests=requests, generator_cpu=gen_cpu,
        generator_cpu_limit=load.generator_cpu_limit, server_cpu=server_cpu,
        server_cpu_budget=spec.server_cpu_budget, sends=d("sent"), late_total=d("late"),
        late_generator=d("late_generator"), late_send_tolerance=load.late_send_tolerance,
        late_threshold_ms=load.late_threshold_ms, service_p99_ms=svc.p99 if svc else None,
        inprocess=spec.target.is_baseline,
    ))
    if user_errors and valid and ok == 0:
        reason = f"{reason}; user errors: {user_errors[0]}"
    result = StepResult(
        **base_fields(spec),
        started_at=started_at,
        measured_s=round(measured, 6),
        windows=summaries,
        reported_windows=k,
        stop_reason=stop_reason,  # type: ignore[arg-type]
        latency_ms=lat,
        service_latency_ms=svc,
        hdr_latency_us=encode(hist),
        hdr_service_us=encode(service) if open_loop else None,
        requests=requests,
        ok=ok,
        wrong_answers=wrong,
        transport_errors=dict(transport),
        throughput_rps=ok / measured,
        achieved_rps=requests / measured,
        sent_rps=d("sent") / measured if open_loop else None,
        late=LateSends(threshold_ms=load.late_threshold_ms, total=d("late"),
                       backpressure=d("late_backpressure"), generator=d("late_generator")) if open_loop else None,
        unsent_at_end=ctx.counters.owed_at_end + max(0, ctx.counters.scheduled - ctx.counters.sent),
        generator=GeneratorWatch(
            pid=os.getpid(), cpu_fraction=round(gen_cpu, 4), cpu_limit=load.generator_cpu_limit,
            cpus=sorted(os.sched_getaffinity(0)), server_cpu_fraction=server_cpu,
            server_cpu_budget=spec.server_cpu_budget,
        ),
        valid=valid,
        invalid_reason=reason,
        error="; ".join(sorted(set(user_errors)))[:2000] or None,
        totals={
            "windows": len(windows),
            "ok": sum(w.ok for w in windows),
            "wrong_answers": sum(w.wrong for w in windows),
            "transport_errors": sum(w.transport_total for w in windows),
            "scheduled": ctx.counters.scheduled,
            "sent": ctx.counters.sent,
            "late": ctx.counters.late,
            "budget_taken": budget.taken,
        },
    )
    if spec.slo_p99_ms is not None:
        result.slo_pass = bool(
            valid and lat.p99 is not None and lat.p99 <= spec.slo_p99_ms
            and result.error_fraction <= SLO_MAX_ERROR_FRACTION
            and (spec.rate is None or result.throughput_rps >= SLO_MIN_ACHIEVED_FRACTION * spec.rate)
        )
    return result


def main(argv: list[str] | None = None) -> int:
    import locust  # noqa: F401  - gevent monkey-patching before anything else opens sockets

    ap = argparse.ArgumentParser(prog="python -m servecmp.loadtests.engine.step", description=__doc__)
    ap.add_argument("--spec", required=True, help="StepSpec JSON file")
    ap.add_argument("--out", required=True, help="run directory (steps.jsonl is appended)")
    args = ap.parse_args(argv)
    spec = StepSpec.read(args.spec)
    # self-destruct a little before the parent's kill deadline, even if the event loop is stuck
    signal.alarm(max(1, int(spec.hard_deadline_s() - 2)))
    if spec.cpus:
        os.sched_setaffinity(0, spec.cpus)
    store = RunStore(args.out)
    started = _now_iso()
    try:
        result = run_here(spec)
    except Exception:
        result = failed_result(spec, "error", traceback.format_exc(), started)
    store.append_step(result)
    signal.alarm(0)
    print(json.dumps({"step_id": result.step_id, "valid": result.valid, "stop_reason": result.stop_reason,
                      "throughput_rps": round(result.throughput_rps, 2), "p99_ms": result.latency_ms.p99}))
    sys.stdout.flush()
    return 0 if result.stop_reason != "error" else 1


if __name__ == "__main__":
    sys.exit(main())
