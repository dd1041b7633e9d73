"""The load generator's own Prometheus metrics (prometheus-client), fed by Locust's ``events.request``.

Usage in a locustfile / the load engine::

    from servecmp.observability import generator_metrics as gm

    gm.enable_multiprocess(run_dir / "prom-multiproc")   # once, in the parent, BEFORE forking
    ...
    @events.init.add_listener
    def _(environment, **_kw):                          # runs in every Locust process
        gm.subscribe(environment, late_threshold_ms=exp.load.late_threshold_ms,
                     targets=exp.targets)
        if not isinstance(environment.runner, WorkerRunner):
            gm.start_exposition(port)                   # one exposition for all processes

Multi-process decision: several Locust processes on ONE host share a prometheus-client
multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``) and ONE exposition port served by the
master (or the orchestrating process), so the scrape config never depends on the worker count.
In Kubernetes every generator pod is one process group and exposes its own port (PodMonitor);
the same code runs there, with or without a multiprocess directory.

Events: ``request_type`` = protocol, ``name`` = target name (``Target.name``), ``response_time`` in
ms, ``exception`` (None when a response came back), ``context`` = ``{"outcome": "ok" |
"transport_error" | "wrong_answer", "late_ms": float, "server": ..., "protocol": ...,
"encoding": ...}``. Missing context keys fall back to the target name's parts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import start_http_server

from servecmp.observability import names as n

# 0.5 ms .. 10 s: ten buckets a decade (<= 25 % apart), so p99 interpolation stays within ~12 %.
_MANTISSAS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0)
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    *(round(m * 10.0**e, 6) for e in (-3, -2, -1, 0) for m in _MANTISSAS),
    10.0,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess(directory: str | os.PathLike[str], *, clean: bool = True) -> Path:
    """Switch this process (and every process forked or started from it) to multiprocess mode.

    Call before any metric is created (``subscribe``), ideally before Locust forks workers.
    ``clean`` empties the directory: stale files from an earlier run would be summed in.
    """
    path = Path(directory)
    if clean and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus-client picks its value class at import time; pick again now the env is set.
    values.ValueClass = values.get_value_class()
    return path


def multiprocess_dir() -> Path | None:
    d = os.environ.get(MULTIPROC_ENV)
    return Path(d) if d else None


def _split_target(name: str) -> tuple[str, str, str]:
    """``torchserve-rest-json`` -> (torchserve, rest, json); ``pytorch-inprocess`` -> (.., inprocess, ndarray)."""
    parts = name.split("-")
    if len(parts) == 2 and parts[1] == "inprocess":
        return parts[0], "inprocess", "ndarray"
    if len(parts) >= 3:
        return parts[0], parts[1], "-".join(parts[2:])
    return name, "unknown", "unknown"


class GeneratorMetrics:
    """All generator metrics of one process. ``registry=None`` registers nowhere (multiprocess)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        late_threshold_ms: float = 10.0,
    ) -> None:
        self.registry = registry
        self.late_threshold_ms = late_threshold_ms
        labels = [*n.GEN_LABELS]
        reg: Any = registry  # None: not registered in any registry
        self.duration = Histogram(
            n.GEN_REQUEST_DURATION,
            "Client-side request latency (send to checked response), seconds.",
            [*labels, "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.requests = Counter(
            n.GEN_REQUESTS,
            "Requests completed by the load generator, by outcome "
            "(ok, transport_error, wrong_answer).",
            [*labels, "outcome"],
            registry=reg,
        )
        self.late_sends = Counter(
            n.GEN_LATE_SENDS,
            "Requests sent later than planned by more than the late threshold (open loop).",
            labels,
            registry=reg,
        )
        self.lateness = Counter(
            n.GEN_SEND_LATENESS,
            "Summed send lateness (planned vs actual send time), seconds.",
            labels,
            registry=reg,
        )
        self.in_flight_gauge = Gauge(
            n.GEN_IN_FLIGHT,
            "Requests sent and not yet answered.",
            labels,
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.cpu = Counter(
            n.GEN_CPU,
            "CPU time (user+system) used by each load generator process, seconds.",
            ["pid"],
            registry=reg,
        )
        self.rss = Gauge(
            n.GEN_RSS,
            "Resident memory of each live load generator process, bytes.",
            ["pid"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._cpu_seen: dict[int, float] = {}
        self._lock = threading.Lock()
        self._sampler: threading.Thread | None = None
        self._sampler_pid: int | None = None
        self._stop = threading.Event()
        self._subscribed: set[tuple[int, int]] = set()

    # ---- labels ----------------------------------------------------------------------------
    @staticmethod
    def label_values(
        name: str, context: dict[str, Any] | None, request_type: str | None
    ) -> tuple[str, str, str, str]:
        ctx = context or {}
        server, protocol, encoding = _split_target(name)
        return (
            name,
            str(ctx.get("server") or server),
            str(ctx.get("protocol") or request_type or protocol),
            str(ctx.get("encoding") or encoding),
        )

    def register_target(self, target: Any) -> None:
        """Create every series of one target at 0, so ratios and panels have data before the first
        error (a counter that was never touched is absent, and ``absent / total`` is no data).
        ``target``: a ``servecmp.experiment.Target`` or a target name."""
        if isinstance(target, str):
            lv = self.label_values(target, None, None)
        else:
            lv = (
                target.name,
                target.server,
                target.protocol.value,
                target.effective_encoding.value,
            )
        for outcome in n.OUTCOMES:
            self.requests.labels(*lv, outcome)
            self.duration.labels(*lv, outcome)
        self.late_sends.labels(*lv)
        self.lateness.labels(*lv)
        self.in_flight_gauge.labels(*lv)

    # ---- Locust listener -------------------------------------------------------------------
    def on_request(
        self,
        request_type: str | None = None,
        name: str = "",
        response_time: float | None = None,
        response_length: int | None = None,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_kw: Any,
    ) -> None:
        lv = self.label_values(name, context, request_type)
        ctx = context or {}
        outcome = ctx.get("outcome") or ("transport_error" if exception is not None else "ok")
        if outcome not in n.OUTCOMES:
            outcome = "transport_error"
        self.requests.labels(*lv, outcome).inc()
        if response_time is not None:
            self.duration.labels(*lv, outcome).observe(max(0.0, float(response_time)) / 1000.0)
        late_ms = ctx.get("late_ms")
        if late_ms is not None and late_ms > 0:
            self.lateness.labels(*lv).inc(float(late_ms) / 1000.0)
            if late_ms > self.late_threshold_ms:
                self.late_sends.labels(*lv).inc()

    @contextlib.contextmanager
    def in_flight(self, name: str, context: dict[str, Any] | None = None) -> Iterator[None]:
        """Wrap one request: ``with metrics.in_flight(target.name): send()``."""
        g = self.in_flight_gauge.labels(*self.label_values(name, context, None))
        g.inc()
        try:
            yield
        finally:
            g.dec()

    # ---- own process -----------------------------------------------------------------------
    def sample_process(self) -> None:
        """Account this process's CPU time since the last sample and its RSS (pid-labelled)."""
        pid = os.getpid()
        try:
            proc = psutil.Process(pid)
            t = proc.cpu_times()
            cpu = t.user + t.system
            rss = proc.memory_info().rss
        except psutil.Error:
            return
        with self._lock:
            last = self._cpu_seen.get(pid)
            self._cpu_seen[pid] = cpu
        # First sample in this process (also right after a fork): count everything so far.
        delta = cpu if last is None else cpu - last
        if delta > 0:
            self.cpu.labels(str(pid)).inc(delta)
        self.rss.labels(str(pid)).set(rss)

    def start_sampler(self, interval_s: float = 1.0) -> None:
        """Sample CPU/RSS every ``interval_s`` in a daemon thread (a greenlet under gevent)."""
        # a sampler started before a fork does not run in the child: start one per process
        if (
            self._sampler is not None
            and self._sampler.is_alive()
            and self._sampler_pid == os.getpid()
        ):
            return
        self._stop = threading.Event()
        self._sampler_pid = os.getpid()

        stop = self._stop

        def loop() -> None:
            while not stop.is_set():
                self.sample_process()
                stop.wait(interval_s)

        self._sampler = threading.Thread(target=loop, name="servecmp-gen-sampler", daemon=True)
        self._sampler.start()

    def stop_sampler(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        self.sample_process()


_DEFAULT: GeneratorMetrics | None = None
_DEFAULT_REGISTRY = CollectorRegistry(auto_describe=True)


def metrics(late_threshold_ms: float | None = None) -> GeneratorMetrics:
    """This process's GeneratorMetrics (created on first use, in multiprocess mode when enabled)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = GeneratorMetrics(
            None if multiprocess_dir() else _DEFAULT_REGISTRY,
            late_threshold_ms=10.0 if late_threshold_ms is None else late_threshold_ms,
        )
    elif late_threshold_ms is not None:
        _DEFAULT.late_threshold_ms = late_threshold_ms
    return _DEFAULT


def subscribe(
    environment: Any,
    *,
    late_threshold_ms: float | None = None,
    targets: Iterable[Any] = (),
    sample_interval_s: float = 1.0,
) -> GeneratorMetrics:
    """Listen to ``environment.events.request`` and start the CPU/RSS sampler; returns the metrics.

    Call once per Locust process (``events.init``). ``targets``: Target objects or names whose
    series are created at 0 up front.
    """
    m = metrics(late_threshold_ms)
    for t in targets:
        m.register_target(t)
    key = id(environment.events.request)
    if (os.getpid(), key) not in m._subscribed:  # subscribing twice would count twice
        environment.events.request.add_listener(m.on_request)
        m._subscribed.add((os.getpid(), key))
    m.start_sampler(sample_interval_s)
    return m


def exposition_registry() -> CollectorRegistry:
    """What a scrape should see: every process's files in multiprocess mode, else this process."""
    d = multiprocess_dir()
    if d is None:
        metrics()  # make sure the series exist
        return _DEFAULT_REGISTRY
    from prometheus_client import multiprocess

    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg, path=str(d))
    return reg


def start_exposition(port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` on ``host:port`` (loopback by default) in a daemon thread.

    Returns the server; call ``.shutdown()`` to stop. Port 0 picks a free port
    (``server.server_address[1]``).
    """
    server, _thread = start_http_server(port, addr=host, registry=exposition_registry())
    return server


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a finished worker's live gauges (in-flight, RSS) in multiprocess mode."""
    if multiprocess_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid if pid is not None else os.getpid())


def _reset_for_tests() -> None:
    global _DEFAULT, _DEFAULT_REGISTRY
    if _DEFAULT is not None:
        _DEFAULT._stop.set()
    _DEFAULT = None
    _DEFAULT_REGISTRY = CollectorRegistry(auto_describe=True)


__all__ = [
    "LATENCY_BUCKETS",
    "GeneratorMetrics",
    "enable_multiprocess",
    "exposition_registry",
    "mark_process_dead",
    "metrics",
    "start_exposition",
    "subscribe",
]
