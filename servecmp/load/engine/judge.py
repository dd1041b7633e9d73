"""Judging a finished step: validity and self-checks, steadiness, disruption -> its StepResult.

Pure: it reads what the warm-up and the measurement recorded (:class:`Observed`) and the spec.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from servecmp.load.engine.context import SendCounters
from servecmp.load.engine.measure import Measurement, Reported
from servecmp.load.engine.recorder import Window, encode, process_tree, summarize
from servecmp.load.engine.spec import StepSpec
from servecmp.load.engine.stability import steadiness
from servecmp.load.engine.validity import Asked, judge_validity
from servecmp.load.engine.warmup import Warmup
from servecmp.results.schema import Breakdown, GeneratorWatch, LateSends, StepResult

# How long a built client may keep failing its first request before the step goes on without a
# correct answer (a dead server: the step then measures the outage and is marked disrupted).
CLIENT_READY_RETRY_S = 10.0
SLO_MAX_ERROR_FRACTION = 0.01
SLO_MIN_ACHIEVED_FRACTION = 0.90
# A transport error of these kinds means nothing was listening (connection refused / reset,
# gRPC UNAVAILABLE): an outage, and the step is marked disrupted.
OUTAGE_KINDS = ("connect", "grpc_UNAVAILABLE")


def now_iso() -> str:
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


# ---- disruption ---------------------------------------------------------------------------------
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


def tree_change(
    before: dict[int, tuple[float, str]], after: dict[int, tuple[float, str]]
) -> str | None:
    """What changed in the server's process tree (None: nothing). A process is its pid and start
    time; its name may change under it (Ray's workers retitle themselves per task)."""

    def same(p: int, a: dict[int, tuple[float, str]], b: dict[int, tuple[float, str]]) -> bool:
        return p in b and b[p][0] == a[p][0]

    gone = [f"{before[p][1]} (pid {p})" for p in sorted(before) if not same(p, before, after)]
    new = [f"{after[p][1]} (pid {p})" for p in sorted(after) if not same(p, after, before)]
    if not gone and not new:
        return None
    parts = []
    if gone:
        parts.append("exited: " + ", ".join(gone))
    if new:
        parts.append("started: " + ", ".join(new))
    return (
        "server process tree changed during the step (a worker or the server restarted) — "
        + "; ".join(parts)
    )


def disruption(tree: str | None, windows: list[Window]) -> str | None:
    """The tree change, and an outage: requests (warm-up included) that found no server."""
    kinds = Counter({k: sum(w.transport.get(k, 0) for w in windows) for k in OUTAGE_KINDS})
    outage = sum(kinds.values())
    if not outage:
        return tree
    what = ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
    note = f"outage: {outage} request(s) found no server listening ({what})"
    return f"{tree}; {note}" if tree else note


# ---- the step -----------------------------------------------------------------------------------
@dataclass
class Observed:
    """Everything a finished step recorded."""

    started_at: str
    warmup: Warmup
    measurement: Measurement
    windows: list[Window]  # measurement windows
    warmup_windows: list[Window]
    counters: SendCounters
    budget_taken: int
    client_ready_s: float | None
    ready_error: str | None = None
    user_errors: list[str] = field(default_factory=list)
    tree_change: str | None = None
    server_watched: bool = False


def step_breakdown(spec: StepSpec, rep: Reported, open_loop: bool) -> Breakdown | None:
    """Where the reported windows' time went (results/breakdown.py); None for a server that
    declares no breakdown or whose counters were not asked for."""
    from servecmp.results import breakdown as bd
    from servecmp.servers import registry

    try:
        adapter = registry.get(spec.target.server)
    except KeyError:
        return None
    unread = None if spec.server_metrics_url else spec.server_metrics_unread
    if not adapter.is_inprocess and not spec.server_metrics_url and not unread:
        return None
    samples = np.asarray([x for w in rep.windows for x in w.samples], dtype=float)
    client = bd.ClientSide(
        mean_ms=float(samples.mean()) if samples.size else None,
        sd_ms=float(samples.std(ddof=1)) if samples.size > 1 else None,
        n=int(samples.size),
        in_flight=rep.in_flight_peak if open_loop else int(spec.concurrency or 1),
        completed=rep.completed,
        windows=len(rep.windows),
    )
    errors = [w.server_read_error for w in rep.windows if w.server_read_error]
    readings = [
        (w.server_counters_start, w.server_counters_end)
        for w in rep.windows
        if w.server_counters_start is not None and w.server_counters_end is not None
    ]
    return bd.compute(
        adapter.breakdown(spec.target.protocol.value),
        server_label=adapter.label,
        protocol=spec.target.protocol.value,
        client=client,
        readings=readings,
        read_error=unread or (errors[0] if errors else None),
    )


def judge(spec: StepSpec, o: Observed) -> StepResult:
    load, st = spec.load, spec.load.stability
    open_loop = spec.mode == "open_loop"
    k = min(st.windows, len(o.windows))
    rep = Reported.of(o.windows, k, server_watched=o.server_watched)
    lat = summarize(rep.hist)
    valid, reason = judge_validity(rep.measured(open_loop=open_loop), Asked.of(spec))
    if o.user_errors and valid and rep.ok == 0:
        reason = f"{reason}; user errors: {o.user_errors[0]}"
    summaries, stop_reason = o.measurement.summaries, o.measurement.stop_reason
    steady, unsteady_reason = steadiness(
        summaries, st.windows, st.tolerance, open_loop=open_loop, arrival=load.arrival.value
    )
    if not steady and stop_reason == "time_bound":
        unsteady_reason = (
            f"{unsteady_reason}; the time bound ({st.max_windows} windows) was reached first"
        )
    send_gap_ms = rep.send_gap_ms
    c = o.counters
    result = StepResult(
        **base_fields(spec),
        started_at=o.started_at,
        measured_s=round(rep.seconds, 6),
        windows=summaries,
        reported_windows=k,
        stop_reason=stop_reason,  # type: ignore[arg-type]
        latency_ms=lat,
        service_latency_ms=summarize(rep.service) if open_loop else None,
        hdr_latency_us=encode(rep.hist),
        hdr_service_us=encode(rep.service) if open_loop else None,
        requests=rep.requests,
        ok=rep.ok,
        wrong_answers=rep.wrong,
        transport_errors=dict(rep.transport),
        throughput_rps=rep.ok / rep.seconds,
        achieved_rps=rep.requests / rep.seconds,
        sent_rps=rep.delta("sent") / rep.seconds if open_loop else None,
        late=LateSends(
            threshold_ms=load.late_threshold_ms,
            total=rep.delta("late"),
            backpressure=rep.delta("late_backpressure"),
            generator=rep.delta("late_generator"),
        )
        if open_loop
        else None,
        unsent_at_end=c.owed_at_end + max(0, c.scheduled - c.sent),
        generator=GeneratorWatch(
            pid=os.getpid(),
            cpu_fraction=round(rep.generator_cpu, 4),
            cpu_limit=load.generator_cpu_limit,
            cpus=sorted(os.sched_getaffinity(0)),
            server_cpu_fraction=rep.server_cpu,
            server_cpu_budget=spec.server_cpu_budget,
        ),
        valid=valid,
        invalid_reason=reason,
        steady=steady,
        unsteady_reason=unsteady_reason,
        disrupted=disruption(o.tree_change, [*o.warmup_windows, *o.windows]),
        client_ready_s=round(o.client_ready_s, 4) if o.client_ready_s is not None else None,
        breakdown=step_breakdown(spec, rep, open_loop),
        error=(
            "; ".join(sorted(set(o.user_errors)))[:2000]
            or (
                f"no correct answer before warm-up within {CLIENT_READY_RETRY_S:g} s: {o.ready_error}"
                if o.client_ready_s is None
                else None
            )
        ),
        totals={
            "windows": len(o.windows),
            "ok": sum(w.ok for w in o.windows),
            "wrong_answers": sum(w.wrong for w in o.windows),
            "transport_errors": sum(w.transport_total for w in o.windows),
            "scheduled": c.scheduled,
            "sent": c.sent,
            "late": c.late,
            "budget_taken": o.budget_taken,
            "warmup_measured_s": round(o.warmup.seconds, 3),
            "warmup_end": o.warmup.end,  # "latency_flat" | "bound" | "off"
            "warmup_slices_p50_ms": o.warmup.slices_p50_ms,
            "send_gap_ms": round(send_gap_ms, 4) if send_gap_ms is not None else None,
            "in_flight_peak": max((w.in_flight_peak for w in o.windows), default=0),
        },
    )
    if spec.slo_p99_ms is not None:
        result.slo_pass = bool(
            valid
            and lat.p99 is not None
            and lat.p99 <= spec.slo_p99_ms
            and result.error_fraction <= SLO_MAX_ERROR_FRACTION
            and (
                spec.rate is None or result.throughput_rps >= SLO_MIN_ACHIEVED_FRACTION * spec.rate
            )
        )
    return result
