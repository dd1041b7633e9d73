"""One step, in this process: ``python -m servecmp.load.engine.step --spec step.json --out RUN_DIR``.

Timeline: build every client and get one correct answer from each (``client_ready_s``; no
clock runs yet) -> start the users -> warm-up (not recorded: at least ``load.warmup_s``, then
until p50 latency stops falling, at most ``StepSpec.warmup_bound_s()``) -> measurement windows
of ``stability.window_s`` until the last ``stability.windows`` agree within
``stability.tolerance`` without a trend (``stop_reason="stable"``) or ``stability.max_windows``
ran (``"time_bound"``) or the request bound was hit (``"request_bound"``) -> stop the users ->
judge the step (validity and self-checks, steadiness, disruption) -> append one StepResult line
to ``RUN_DIR/steps.jsonl`` (fsync'd). A ``SIGALRM`` self-destruct and the parent's kill deadline
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

from servecmp.load.engine.recorder import (
    CpuWatch,
    ValidityInput,
    WindowRecorder,
    encode,
    is_stable,
    judge_validity,
    new_hist,
    process_tree,
    steadiness,
    summarize,
)
from servecmp.load.engine.spec import StepSpec
from servecmp.results.schema import GeneratorWatch, LateSends, StepResult
from servecmp.results.store import RunStore

# How long a built client may keep failing its first request before the step goes on without a
# correct answer (a dead server: the step then measures the outage and is marked disrupted).
CLIENT_READY_RETRY_S = 10.0
# Open loop: clients built and answered before warm-up (the rest are built on demand).
OPEN_LOOP_READY_CLIENTS = 8
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
        "server": t.server,
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


# Warm-up: slices of this length (bounded by the configured warm-up) until p50 latency stops
# falling: a slice whose p50 is not below the previous slice's by more than the stability
# tolerance ends it (after at least ``load.warmup_s``; at the latest ``spec.warmup_bound_s()``).
WARMUP_SLICE_S = (0.25, 1.0)
# A transport error of these kinds means nothing was listening (connection refused / reset,
# gRPC UNAVAILABLE): an outage, and the step is marked disrupted.
OUTAGE_KINDS = ("connect", "grpc_UNAVAILABLE")


def server_tree(pids: list[int]) -> dict[int, tuple[float, str]]:
    """pid -> (create time, name) of ``pids`` and all their descendants still running."""
    import psutil

    out: dict[int, tuple[float, str]] = {}
    for p in process_tree(pids):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped by its parent
                continue
            out[p.pid] = (p.create_time(), p.name())
        except psutil.Error:
            continue
    return out


def tree_change(before: dict[int, tuple[float, str]], after: dict[int, tuple[float, str]]) -> str | None:
    """What changed in the server's process tree (None: nothing)."""
    gone = [f"{before[p][1]} (pid {p})" for p in sorted(before) if after.get(p) != before[p]]
    new = [f"{after[p][1]} (pid {p})" for p in sorted(after) if before.get(p) != after[p]]
    if not gone and not new:
        return None
    parts = []
    if gone:
        parts.append("exited: " + ", ".join(gone))
    if new:
        parts.append("started: " + ", ".join(new))
    return "server process tree changed during the step (a worker or the server restarted) — " + "; ".join(parts)


def _ready_clients(maker: Any, n: int, bound_s: float, sleep: Any) -> tuple[list[Any], float | None, str | None]:
    """Build ``n`` clients and get one correct answer from each, before any clock starts.

    Returns (clients, seconds it took or None if some client never answered correctly within
    ``bound_s``, the last error)."""
    from servecmp.load.clients.base import execute

    t0 = time.perf_counter()
    clients: list[Any] = []
    error: str | None = None
    all_ok = True
    for i in range(n):
        client = maker()
        clients.append(client)
        # retries (a server that is not answering yet) are bounded apart from the build itself
        deadline = time.perf_counter() + bound_s
        while True:
            r = execute(client, i)
            if r.ok:
                break
            error = f"{r.error_kind}: {r.exception}"
            if time.perf_counter() >= deadline:
                all_ok = False
                break
            sleep(0.2)
        if not all_ok:
            break
    return clients, (time.perf_counter() - t0 if all_ok else None), error


def run_here(spec: StepSpec) -> StepResult:
    """Run ``spec`` in this process (gevent-patched by importing Locust) and return its result."""
    import gevent
    import locust  # noqa: F401  - gevent patching first
    from locust.env import Environment

    from servecmp.load import users as U
    from servecmp.load.engine.clientmaker import client_maker
    from servecmp.load.engine.context import Budget, LoadContext

    started_at = _now_iso()
    tree_before = server_tree(spec.server_pids) if spec.server_pids else {}
    load, st = spec.load, spec.load.stability
    maker = client_maker(spec)
    n_inputs = int(getattr(maker, "n_inputs", spec.payload.distinct_inputs))
    open_loop = spec.mode == "open_loop"
    n_users = 1 if open_loop else int(spec.concurrency or 1)
    # Every client is built and has answered one request correctly BEFORE the warm-up clock
    # starts (model loads, first connects): that time is recorded, never measured as load.
    ctx = LoadContext(
        new_client=maker, n_inputs=n_inputs, budget=Budget(0, 0.0),
        late_threshold_s=load.late_threshold_ms / 1000.0, max_in_flight=spec.max_in_flight,
        arrival=load.arrival.value, seed=spec.seed + spec.index,
        protocol=spec.target.protocol.value,
    )
    U.prepare_protocol(ctx)
    n_ready = min(spec.max_in_flight, OPEN_LOOP_READY_CLIENTS) if open_loop else n_users
    ready, client_ready_s, ready_error = _ready_clients(maker, n_ready, CLIENT_READY_RETRY_S, gevent.sleep)

    def new_client() -> Any:
        return ready.pop() if ready else maker()

    ctx.new_client = new_client
    # users stop by themselves shortly after the last window would end, whatever happens here
    # (with slack: the windows may end a little late on a busy machine)
    budget = Budget(load.max_requests_per_step, spec.measurement_bound_s() * 1.25 + 2.0)
    ctx.budget = budget
    if open_loop:
        ctx.rate.rate = float(spec.rate or 0.0)
        user_cls: type = U.OpenLoopUser
    else:
        user_cls = U.closed_loop_user_for(spec.target.server, spec.target.protocol.value)

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
    warm_t0 = time.perf_counter()
    warmup_end = "off"

    def run_window(warmup: bool, length: float) -> Any:
        rec.open_window()
        end = time.perf_counter() + length
        while (left := end - time.perf_counter()) > 0 and not budget.exhausted:
            gevent.sleep(min(0.05, left))
        return rec.close_window(warmup=warmup)

    try:
        if load.warmup_s > 0:
            slice_s = min(max(load.warmup_s / 2, WARMUP_SLICE_S[0]), WARMUP_SLICE_S[1])
            bound = spec.warmup_bound_s()
            prev: float | None = None
            warmup_end = "bound"
            while time.perf_counter() - warm_t0 < bound and not budget.exhausted:
                p50 = run_window(True, min(slice_s, bound - (time.perf_counter() - warm_t0))).summary().p50_ms
                done_min = time.perf_counter() - warm_t0 >= load.warmup_s
                if done_min and p50 is not None and prev is not None and p50 >= prev * (1 - st.tolerance):
                    warmup_end = "latency_flat"
                    break
                prev = p50 if p50 is not None else prev
        warmup_s = time.perf_counter() - warm_t0
        for _ in range(st.max_windows):
            summaries.append(run_window(False, st.window_s).summary())
            if budget.count_exhausted:
                stop_reason = "request_bound"
                break
            if budget.exhausted:  # the safety deadline: users have stopped
                break
            if is_stable(summaries, st.windows, st.tolerance):
                stop_reason = "stable"
                break
    finally:
        runner.quit()
        stop_sampler = getattr(gm, "stop_sampler", None)
        if stop_sampler is not None:
            stop_sampler()
    tree_after = server_tree(spec.server_pids) if spec.server_pids else {}

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
    lat = summarize(hist)
    svc = summarize(service) if open_loop else None
    completed = sum(w.completed for w in rep)
    gaps = d("gaps")
    send_gap_ms = d("gap_ms_sum") / gaps if gaps else None
    valid, reason = judge_validity(ValidityInput(
        mode=spec.mode, ok=ok, requests=requests, generator_cpu=gen_cpu,
        generator_cpu_limit=load.generator_cpu_limit, server_cpu=server_cpu,
        server_cpu_budget=spec.server_cpu_budget, sends=int(d("sent")), late_total=int(d("late")),
        late_generator=int(d("late_generator")), late_send_tolerance=load.late_send_tolerance,
        late_threshold_ms=load.late_threshold_ms, service_p99_ms=svc.p99 if svc else None,
        inprocess=spec.target.is_baseline,
        concurrency=spec.concurrency if not open_loop else None,
        completed_rps=completed / measured,
        latency_mean_all_ms=sum(w.latency_sum_all_ms for w in rep) / completed if completed else None,
        send_gap_ms=send_gap_ms,
        offered_rps=spec.rate if open_loop else None, measured_s=measured if rep else 0.0,
        arrival=load.arrival.value, late_backpressure=int(d("late_backpressure")),
        max_in_flight=spec.max_in_flight if open_loop else None,
        in_flight_peak=max((w.in_flight_peak for w in rep), default=0),
    ))
    if user_errors and valid and ok == 0:
        reason = f"{reason}; user errors: {user_errors[0]}"
    steady, unsteady_reason = steadiness(summaries, st.windows, st.tolerance)
    if not steady and stop_reason == "time_bound":
        unsteady_reason = f"{unsteady_reason}; the time bound ({st.max_windows} windows) was reached first"
    # disrupted: the server's processes changed, or nothing was listening for a while
    disrupted = tree_change(tree_before, tree_after) if spec.server_pids else None
    kinds = Counter({k: sum(w.transport.get(k, 0) for w in [*rec.warmup_windows, *windows]) for k in OUTAGE_KINDS})
    outage = sum(kinds.values())
    if outage:
        what = ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
        note = f"outage: {outage} request(s) found no server listening ({what})"
        disrupted = f"{disrupted}; {note}" if disrupted else note
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
        steady=steady,
        unsteady_reason=unsteady_reason,
        disrupted=disrupted,
        client_ready_s=round(client_ready_s, 4) if client_ready_s is not None else None,
        error=("; ".join(sorted(set(user_errors)))[:2000]
               or (f"no correct answer before warm-up within {CLIENT_READY_RETRY_S:g} s: {ready_error}"
                   if client_ready_s is None else None)),
        totals={
            "windows": len(windows),
            "ok": sum(w.ok for w in windows),
            "wrong_answers": sum(w.wrong for w in windows),
            "transport_errors": sum(w.transport_total for w in windows),
            "scheduled": ctx.counters.scheduled,
            "sent": ctx.counters.sent,
            "late": ctx.counters.late,
            "budget_taken": budget.taken,
            "warmup_measured_s": round(warmup_s, 3),
            "warmup_end": warmup_end,  # "latency_flat" | "bound" | "off"
            "warmup_slices_p50_ms": [w.summary().p50_ms for w in rec.warmup_windows],
            "send_gap_ms": round(send_gap_ms, 4) if send_gap_ms is not None else None,
            "in_flight_peak": max((w.in_flight_peak for w in windows), default=0),
        },
    )
    if spec.slo_p99_ms is not None:
        result.slo_pass = bool(
            valid and lat.p99 is not None and lat.p99 <= spec.slo_p99_ms
            and result.error_fraction <= SLO_MAX_ERROR_FRACTION
            and (spec.rate is None or result.throughput_rps >= SLO_MIN_ACHIEVED_FRACTION * spec.rate)
        )
    return result


# Entry point of the step child process that servecmp.load.engine.runner starts.
def main(argv: list[str] | None = None) -> int:
    import locust  # noqa: F401  - gevent monkey-patching before anything else opens sockets

    ap = argparse.ArgumentParser(prog="python -m servecmp.load.engine.step", description=__doc__)
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
