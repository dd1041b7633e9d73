"""One step, in this process: ``python -m servecmp.load.engine.step --spec step.json --out RUN_DIR``.

Timeline: build every client and get one correct answer from each (``client_ready_s``; no
clock runs yet) -> start the users -> warm-up (``warmup.py``: not recorded) -> measurement
windows until steady, the time bound or the request bound (``measure.py``, with the rule of
``stability.py``) -> stop the users -> judge the step (``judge.py``: validity and self-checks of
``validity.py``, steadiness, disruption) -> append one StepResult line to
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
from collections.abc import Callable
from functools import partial
from typing import Any

from servecmp.load.engine.judge import (
    CLIENT_READY_RETRY_S,
    Observed,
    base_fields,
    judge,
    now_iso,
    server_tree,
    tree_change,
)
from servecmp.load.engine.measure import measure, run_for
from servecmp.load.engine.recorder import CpuWatch, WindowRecorder
from servecmp.load.engine.spec import StepSpec
from servecmp.load.engine.stability import is_stable, settled
from servecmp.load.engine.warmup import warm_up
from servecmp.results.schema import StepResult, WindowSummary
from servecmp.results.store import RunStore

# Open loop: clients built and answered before warm-up (the rest are built on demand).
OPEN_LOOP_READY_CLIENTS = 8


def failed_result(
    spec: StepSpec, stop_reason: str, error: str, started_at: str | None = None
) -> StepResult:
    """A result for a step that produced no measurement (crash, killed at the deadline)."""
    return StepResult(
        **base_fields(spec),
        started_at=started_at or now_iso(),
        stop_reason=stop_reason,  # type: ignore[arg-type]
        valid=False,
        invalid_reason=f"step did not finish: {error.splitlines()[0] if error else stop_reason}",
        error=error[-4000:],
        slo_pass=False if spec.slo_p99_ms is not None else None,
    )


def _attach_generator_metrics(env: Any, spec: StepSpec) -> Any:
    """Optional: the observability package's generator metrics, when installed and asked for."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not os.environ.get(
        "SERVECMP_GENERATOR_METRICS"
    ):
        return None
    try:
        from servecmp.observability import generator_metrics as gm
    except ImportError:
        return None
    return gm.subscribe(env, late_threshold_ms=spec.load.late_threshold_ms, targets=[spec.target])


def _ready_clients(
    maker: Any, n: int, bound_s: float, sleep: Any
) -> tuple[list[Any], float | None, str | None]:
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


def server_reader(spec: StepSpec) -> Callable[[], dict[str, float]] | None:
    """Reads the series the server's breakdown declares from its metrics page (None: no page
    given, or the server declares no series)."""
    url = spec.server_metrics_url
    if not url:
        return None
    import urllib.request

    from servecmp.results import breakdown as bd
    from servecmp.servers import registry

    series = bd.all_series(registry.get(spec.target.server).breakdown(spec.target.protocol.value))
    if not series:
        return None

    def read() -> dict[str, float]:
        with urllib.request.urlopen(url, timeout=2.0) as r:  # loopback: checked by StepSpec
            return bd.read_counters(r.read().decode("utf-8", "replace"), series)

    return read


def stop_rule(spec: StepSpec) -> Callable[[list[WindowSummary]], bool]:
    """When the measurement may stop early: steady windows, or for a burn-in settled throughput."""
    st, open_loop, arrival = spec.load.stability, spec.mode == "open_loop", spec.load.arrival.value

    def done(ws: list[WindowSummary]) -> bool:
        if spec.burn_in:
            return settled(ws, st.windows, st.tolerance, open_loop=open_loop, arrival=arrival)[0]
        return is_stable(ws, st.windows, st.tolerance, open_loop=open_loop, arrival=arrival)

    return done


def run_here(spec: StepSpec) -> StepResult:
    """Run ``spec`` in this process (gevent-patched by importing Locust) and return its result:
    clients ready -> users started -> warm-up -> measurement -> users stopped -> judged."""
    import gevent
    import locust  # noqa: F401  - gevent patching first
    from locust.env import Environment

    from servecmp.load import users as U
    from servecmp.load.engine.clientmaker import client_maker
    from servecmp.load.engine.context import Budget, LoadContext

    started_at = now_iso()
    tree_before = server_tree(spec.server_pids) if spec.server_pids else {}
    load = spec.load
    maker = client_maker(spec)
    n_inputs = int(getattr(maker, "n_inputs", spec.payload.distinct_inputs))
    open_loop = spec.mode == "open_loop"
    n_users = 1 if open_loop else int(spec.concurrency or 1)
    # Every client is built and has answered one request correctly BEFORE the warm-up clock
    # starts (model loads, first connects): that time is recorded, never measured as load.
    ctx = LoadContext(
        new_client=maker,
        n_inputs=n_inputs,
        budget=Budget(0, 0.0),
        late_threshold_s=load.late_threshold_ms / 1000.0,
        max_in_flight=spec.max_in_flight,
        arrival=load.arrival.value,
        seed=spec.seed + spec.index,
        protocol=spec.target.protocol.value,
    )
    U.prepare_protocol(ctx)
    n_ready = min(spec.max_in_flight, OPEN_LOOP_READY_CLIENTS) if open_loop else n_users
    ready, client_ready_s, ready_error = _ready_clients(
        maker, n_ready, CLIENT_READY_RETRY_S, gevent.sleep
    )

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
        lambda user_instance, exception, tb, **_: user_errors.append(
            f"{type(exception).__name__}: {exception}"
        )
    )
    server_watch = CpuWatch(spec.server_pids) if spec.server_pids else None
    rec = WindowRecorder(
        ctx.counters, server_watch, service=open_loop, server_read=server_reader(spec)
    )
    env.events.request.add_listener(rec.on_request)
    gm = _attach_generator_metrics(env, spec)

    runner = env.create_local_runner()
    runner.start(n_users, spawn_rate=float(max(20, n_users * 20)), wait=False)
    window = partial(run_for, rec, budget, clock=time.perf_counter, sleep=gevent.sleep)
    try:
        warm = warm_up(
            lambda s: window(s, warmup=True),
            load,
            spec.warmup_bound_s(),
            clock=time.perf_counter,
            stopped=lambda: budget.exhausted,
        )
        measurement = measure(
            lambda: window(load.stability.window_s, warmup=False),
            load.stability,
            budget,
            stop_rule(spec),
        )
    finally:
        runner.quit()
        stop_sampler = getattr(gm, "stop_sampler", None)
        if stop_sampler is not None:
            stop_sampler()
    changed = tree_change(tree_before, server_tree(spec.server_pids)) if spec.server_pids else None
    return judge(
        spec,
        Observed(
            started_at=started_at,
            warmup=warm,
            measurement=measurement,
            windows=rec.windows,
            warmup_windows=rec.warmup_windows,
            counters=ctx.counters,
            budget_taken=budget.taken,
            client_ready_s=client_ready_s,
            ready_error=ready_error,
            user_errors=user_errors,
            tree_change=changed,
            server_watched=server_watch is not None,
        ),
    )


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
    started = now_iso()
    try:
        result = run_here(spec)
    except Exception:
        result = failed_result(spec, "error", traceback.format_exc(), started)
    store.append_step(result)
    signal.alarm(0)
    print(
        json.dumps(
            {
                "step_id": result.step_id,
                "valid": result.valid,
                "stop_reason": result.stop_reason,
                "throughput_rps": round(result.throughput_rps, 2),
                "p99_ms": result.latency_ms.p99,
            }
        )
    )
    sys.stdout.flush()
    return 0 if result.stop_reason != "error" else 1


if __name__ == "__main__":
    sys.exit(main())
