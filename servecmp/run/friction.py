"""Friction measured on the local runtime, the same way for every server (friction.jsonl).

Called by the orchestrator while a server is up; each function appends typed records and never
raises for the server's misbehaviour (that *is* the measurement) — only for our own bugs.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import requests

from servecmp.configgen import GeneratedConfigs
from servecmp.configgen.surface import config_surface
from servecmp.experiment import EventLoad
from servecmp.load.clients.base import TargetClient, TransportError, check_logits
from servecmp.results.friction import append_friction, record, unavailable
from servecmp.run import probes
from servecmp.run.server import LocalServer, ServerFailed
from servecmp.run.timeline import event_timeline
from servecmp.run.underload import TrickleLoad

# How long a disruption may take before we call it failed (bounded, like every load loop).
UPDATE_TIMEOUT_S = 90.0
RECOVERY_TIMEOUT_S = 120.0


def _rec(run_dir: Path, server: str, metric: str, value: float | None, **details: Any) -> None:
    append_friction(run_dir, record(server, metric, value, details=details))


def _rec_nth(
    run_dir: Path, server: str, metric: str, value: float | None, index: int, **details: Any
) -> None:
    """One of several measurements of a metric (``index``: which one)."""
    append_friction(run_dir, record(server, metric, value, details=details, index=index))


def packaging(
    run_dir: Path, export_records: dict[int, dict[str, Any]], servers: Collection[str]
) -> None:
    from servecmp.servers import registry

    rec = export_records.get(1)
    for server in (a.name for a in registry.servers() if a.name in servers):
        if rec is None or server not in rec:
            # the export says why a server has no artifact for this model (e.g. no SavedModel)
            why = (rec or {}).get("unavailable", {}).get(server) or "no export record for version 1"
            append_friction(run_dir, unavailable(server, "packaging_s", why))
            continue
        p = rec[server]
        _rec(run_dir, server, "packaging_steps", float(len(p["steps"])), steps=p["steps"])
        _rec(run_dir, server, "packaging_s", float(p["seconds"]), artifact=p["artifact"])
        _rec(run_dir, server, "artifact_bytes", float(p["bytes"]), artifact=p["artifact"])


def configuration(run_dir: Path, configs: GeneratedConfigs, servers: Collection[str]) -> None:
    for server, s in config_surface(configs).items():
        if server not in servers:
            continue
        _rec(run_dir, server, "config_files", float(s.files))
        _rec(run_dir, server, "config_lines", float(s.lines))
        _rec(
            run_dir,
            server,
            "config_knobs_changed",
            float(s.knobs_changed),
            knobs_set=s.knobs_set,
            changed=list(s.changed),
        )


def startup_order(servers: list[str], rounds: int) -> list[list[str]]:
    """The order servers start in, per start-up round: rotated (A B C, B C A, C A B, A B C, ...),
    so every server starts in every position (first on an idle machine, or after the others
    are up) equally often over ``len(servers)`` rounds, and slow drift of a shared machine does
    not always favour the same server's cold start or idle memory."""
    n = len(servers)
    return [servers[k % n :] + servers[: k % n] for k in range(rounds)] if n else []


def first_correct_inference(make: Callable[[], TargetClient], timeout_s: float = 60.0) -> float:
    """Poll with real requests until one answer is correct; returns the wall time it happened."""
    deadline = time.monotonic() + timeout_s
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            with make() as client:
                logits = client.send(0)
                wrong = check_logits(client.payloads, 0, logits)
                if wrong is None:
                    return time.time()
                last = str(wrong)
        except TransportError as err:
            last = str(err)
        time.sleep(0.1)
    raise TimeoutError(f"no correct inference within {timeout_s:.0f} s (last: {last})")


def cold_start(
    run_dir: Path, server: LocalServer, ready_s: float, first_ok_at: float, index: int = 0
) -> None:
    """One cold start; ``index`` numbers the repeated start-ups of this server in a run."""
    assert server.started_at is not None
    _rec_nth(run_dir, server.name, "cold_start_ready_s", ready_s, index)
    _rec_nth(
        run_dir, server.name, "cold_start_first_inference_s", first_ok_at - server.started_at, index
    )


def idle_resources(run_dir: Path, server: LocalServer, index: int = 0) -> None:
    """Idle RSS and CPU of the server itself: in Docker mode the container's processes, never
    the ``docker run`` client (``source`` in the record says which tree was measured).
    ``index`` numbers the repeated start-ups of this server in a run."""
    try:
        pid = server.measured_pid()
    except ServerFailed as err:
        pid, why = None, str(err)
    else:
        why = f"{server.name} is not running"
    if pid is None:
        for metric in ("idle_rss_bytes", "idle_cpu_cores"):
            append_friction(run_dir, unavailable(server.name, metric, why, index=index))
        return
    source = server.resource_source
    _rec_nth(
        run_dir,
        server.name,
        "idle_rss_bytes",
        float(probes.tree_rss(pid)),
        index,
        processes=len(probes.tree(pid)),
        pid=pid,
        source=source,
    )
    _rec_nth(
        run_dir,
        server.name,
        "idle_cpu_cores",
        probes.idle_cpu_cores(pid, 3.0),
        index,
        window_s=3.0,
        pid=pid,
        source=source,
    )


def peak_rss(
    run_dir: Path, server_name: str, sampler: probes.ResourceSampler, source: str = ""
) -> None:
    _rec(
        run_dir,
        server_name,
        "peak_rss_bytes",
        float(sampler.peak_rss),
        samples=len(sampler.samples),
        interval_s=sampler.interval_s,
        pid=sampler.root_pid,
        source=source,
    )


def native_observability(run_dir: Path, server: LocalServer) -> None:
    m = probes.probe_native_metrics(server.endpoints.metrics_url)
    if m.error:
        append_friction(run_dir, unavailable(server.name, "metric_families", m.error))
        return
    _rec(run_dir, server.name, "metric_families", float(m.families), names=m.names)
    _rec(run_dir, server.name, "server_latency_quantiles", 1.0 if m.latency_quantiles else 0.0)


def bad_payload_cases(
    server: LocalServer, model: str, input_shape: tuple[int, ...]
) -> list[probes.BadPayloadResult]:
    """The harmless bad payloads (small bodies): run before any probe that may disturb the server."""
    from servecmp.servers import registry

    predict, unknown = registry.get(server.name).predict_urls(server.endpoints.rest, model)
    return probes.probe_bad_payloads(predict, unknown, input_shape)


def oversize_body(
    run_dir: Path,
    server: LocalServer,
    model: str,
    input_shape: tuple[int, ...],
    grace_s: float = 10.0,
) -> probes.BadPayloadResult:
    """A body just over the server's request-size limit (its adapter reads the limit from the
    generated config). Risky: run it after every other probe. A crash is recorded as a finding
    (``oversize_crashed`` = yes, with the exit code and log tail); the caller restarts the
    server before anything else uses it."""
    from servecmp.servers import registry

    adapter = registry.get(server.name)
    predict, _ = adapter.predict_urls(server.endpoints.rest, model)
    limit = adapter.request_body_limit(server.configs.files.get(server.name, {}))
    res = probes.probe_oversize(predict, input_shape, limit, lambda: server_up(server, grace_s))
    details: dict[str, Any] = {
        "outcome": res.outcome,
        "status": res.status,
        "sent_bytes": res.sent_bytes,
        "limit_bytes": res.limit_bytes,
        "error": res.error,
        "message": res.message[:200],
    }
    if res.outcome == "crashed" and server.process is not None:
        details["exit_code"] = server.process.popen.returncode
        details["log_tail"] = server.process.log_tail(15)
    _rec(
        run_dir,
        server.name,
        "oversize_crashed",
        1.0 if res.outcome == "crashed" else 0.0,
        **details,
    )
    return res


def server_up(server: LocalServer, grace_s: float = 10.0) -> bool:
    """Whether the server still runs and reports ready (polled for up to ``grace_s``: a server
    busy with a large body may answer its readiness check late)."""
    deadline = time.monotonic() + grace_s
    while True:
        if server.process is None or not server.process.alive():
            return False
        try:
            if server.is_ready():
                return True
        except (requests.RequestException, ValueError):  # no answer yet, or a half answer
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def bad_payloads(run_dir: Path, server_name: str, results: list[probes.BadPayloadResult]) -> None:
    """One record over every bad-payload case run (harmless ones and the oversize body)."""
    clear = sum(1 for r in results if r.names_problem)
    _rec(
        run_dir,
        server_name,
        "bad_payload_clear_errors",
        float(clear),
        cases=probes.result_dicts(results),
    )


def _event_load(
    make: Callable[[], TargetClient],
    expected: dict[str, np.ndarray],
    atol: float,
    event: EventLoad,
    bound_s: float,
) -> TrickleLoad:
    return TrickleLoad(
        make,
        expected,
        atol,
        rate=event.rate,
        senders=event.concurrency,
        max_s=bound_s + event.before_s + event.after_s,
    ).start()


def _steady_before(load: TrickleLoad, since: float, event: EventLoad) -> None:
    """Keep the steady load on for ``before_s`` after the first answer: the timeline's baseline."""
    load.hold(since + event.before_s - load.now())


def _until_after(load: TrickleLoad, t0: float, floor: float, event: EventLoad) -> float:
    """Keep the load on until ``after_s`` past the event, and at least until ``floor`` (what
    the probe waited before timelines existed); returns the seconds the timeline added."""
    now = load.now()
    load.hold(max(floor, t0 + event.after_s) - now)
    return max(0.0, t0 + event.after_s - max(floor, now))


def _timeline(
    load: TrickleLoad, t0: float, end: float | None, event: EventLoad, steady_windows: int
) -> dict[str, Any]:
    """The timeline from ``before_s`` before the event to ``after_s`` after it, or to 1 s past
    the event's end when it outlasts that: shown whole, at no extra cost (the probe waits for
    the end anyway). Its baseline is judged over the steps' window count (load.stability)."""
    after = event.after_s if end is None else max(event.after_s, math.ceil(end - t0 + 1.0))
    out = event_timeline(
        load.samples,
        t0,
        before_s=event.before_s,
        after_s=after,
        event_end=end,
        steady_windows=steady_windows,
    )
    out["load"] = {"rate": event.rate, "concurrency": event.concurrency}
    return out


def model_update(
    run_dir: Path,
    server: LocalServer,
    make: Callable[[], TargetClient],
    expected: dict[str, np.ndarray],
    atol: float,
    apply_update: Callable[[], None],
    how: str = "",
    event: EventLoad | None = None,
    steady_windows: int = 3,
) -> None:
    """v1 → v2 under a steady load (``event``: rate, senders, the timeline's span): failed
    requests, seconds until v2 answers, and the per-second timeline around the update. ``how``:
    what the update did, when it is not the server's own way (recorded with the result)."""
    ev = event or EventLoad()
    load = _event_load(make, expected, atol, ev, UPDATE_TIMEOUT_S + 30)
    phases: dict[str, float] = {}
    try:
        first = load.wait_for(lambda s: s.version == "v1", 30.0)
        if first is None:
            append_friction(
                run_dir, unavailable(server.name, "update_s", "v1 never answered before the update")
            )
            return
        _steady_before(load, first.done, ev)
        t_update = phases["update"] = load.now()
        apply_update()
        phases["update_returned"] = load.now()
        v2 = load.wait_for(lambda s: s.version == "v2", UPDATE_TIMEOUT_S)
        # requests right after the switch count too: at least 1 s after v2 answered
        floor = (v2.done if v2 is not None else load.now()) + 1.0
        phases["timeline_added"] = ev.before_s + _until_after(load, t_update, floor, ev)
    finally:
        load.stop()
        phases["load_stopped"] = load.now()
    # the first v2 answer counts when it arrived, not when it was sent
    t_v2 = None if v2 is None else phases.setdefault("v2_answered", v2.done)
    end = t_v2 if t_v2 is not None else load.now()
    failed = load.failures_between(t_update, end + 1.0)
    summary = {
        **load.summary(),
        "phases_s": _rounded(phases),
        "event_timeline": _timeline(load, t_update, t_v2, ev, steady_windows),
    }
    if t_v2 is None:
        _rec(
            run_dir,
            server.name,
            "update_s",
            None,
            error=f"v2 never answered within {UPDATE_TIMEOUT_S:.0f} s",
            **({"how": how} if how else {}),
            **summary,
        )
    else:
        _rec(
            run_dir,
            server.name,
            "update_s",
            t_v2 - t_update,
            **({"how": how} if how else {}),
            **summary,
        )
    _rec(
        run_dir,
        server.name,
        "update_failed_requests",
        float(failed),
        rate=load.rate,
        concurrency=load.senders,
    )


def _rounded(phases: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in phases.items()}


def recovery(
    run_dir: Path,
    server: LocalServer,
    make: Callable[[], TargetClient],
    expected: dict[str, np.ndarray],
    atol: float,
    restart: Callable[[], None],
    event: EventLoad | None = None,
    steady_windows: int = 3,
) -> None:
    """Kill the server (SIGKILL of its process group; in Docker mode ``docker kill`` of the
    container, then ``docker rm``) under a steady load (``event``), restart it as a supervisor
    would, and measure seconds until it answers correctly again, the requests lost and the
    per-second timeline around the kill."""
    assert server.process is not None
    ev = event or EventLoad()
    load = _event_load(make, expected, atol, ev, RECOVERY_TIMEOUT_S + 30)
    # Per-phase times on the sender's clock, stored with the record: where the probe's wall
    # time went (kill, reaping, restart, first answer, stopping the sender).
    phases: dict[str, float] = {}
    try:
        first = load.wait_for(lambda s: s.ok, 30.0)
        if first is None:
            append_friction(
                run_dir,
                unavailable(server.name, "recovery_s", "server did not answer before the kill"),
            )
            return
        _steady_before(load, first.done, ev)
        t_kill = phases["kill"] = load.now()
        server.kill_hard()
        # A request sent while the kill was still in flight (`docker kill` takes a moment) may
        # be answered by the dying server: "back" means answered after the server was gone.
        t_dead = phases["dead"] = load.now()
        restart()
        phases["restart_returned"] = load.now()
        back = load.wait_for(lambda s: s.ok and s.t > t_dead, RECOVERY_TIMEOUT_S)
        floor = back.done if back is not None else load.now()
        phases["timeline_added"] = ev.before_s + _until_after(load, t_kill, floor, ev)
    finally:
        load.stop()
        phases["load_stopped"] = load.now()
    # back = the first correct answer after the kill has *arrived* (a restarted server's first
    # answer can take seconds of model warm-up after it was sent)
    t_back = None if back is None else phases.setdefault("answered_again", back.done)
    end = t_back if t_back is not None else load.now()
    lost = load.failures_between(t_kill, end)
    _rec(
        run_dir,
        server.name,
        "recovery_s",
        None if t_back is None else t_back - t_kill,
        how=server.kill_description,
        phases_s=_rounded(phases),
        event_timeline=_timeline(load, t_kill, t_back, ev, steady_windows),
        **load.summary(),
    )
    _rec(
        run_dir,
        server.name,
        "recovery_lost_requests",
        float(lost),
        rate=load.rate,
        concurrency=load.senders,
    )


def copy_version(src: Path, dest_root: Path, version: int) -> Path:
    """Publish a SavedModel version atomically: copy to a temp name, then rename into place."""
    dest = dest_root / str(version)
    tmp = dest_root / f".tmp-{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    tmp.rename(dest)
    return dest
