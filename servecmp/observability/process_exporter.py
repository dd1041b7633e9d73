"""psutil CPU / memory of local server process trees, labelled by server (local runs only).

On kind the same numbers come from cAdvisor; the recording rules normalise both sources to
``servecmp:server_cpu_cores:rate1m`` / ``servecmp:server_memory_bytes`` by ``server``.

A server is a root PID plus every descendant (TorchServe = JVM + Python workers). CPU seconds of
descendants that exit are kept, so ``servecmp_process_cpu_seconds_total`` never goes backwards.

    exporter = ProcessExporter({"torchserve": ts.process.pid, "tfserving": tfs.process.pid})
    server = exporter.serve(port)          # 127.0.0.1:port/metrics
    ...
    server.shutdown()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import psutil
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from servecmp.observability import names as n

PidSource = Mapping[str, int] | Callable[[], Mapping[str, int]]


class ProcessExporter(Collector):
    def __init__(self, pids: PidSource) -> None:
        self._pids = pids
        self._lock = threading.Lock()
        # server -> pid -> (create_time, last cpu seconds); finished processes keep their last value
        self._cpu: dict[str, dict[tuple[int, float], float]] = {}

    def _roots(self) -> Mapping[str, int]:
        return self._pids() if callable(self._pids) else self._pids

    def sample(self) -> dict[str, tuple[float, int, int]]:
        """server -> (cpu seconds total, rss bytes, live process count)."""
        out: dict[str, tuple[float, int, int]] = {}
        with self._lock:
            for server, pid in sorted(self._roots().items()):
                seen = self._cpu.setdefault(server, {})
                rss = 0
                count = 0
                try:
                    root = psutil.Process(pid)
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    procs = []
                for p in procs:
                    try:
                        with p.oneshot():
                            t = p.cpu_times()
                            key = (p.pid, p.create_time())
                            seen[key] = max(seen.get(key, 0.0), t.user + t.system)
                            rss += p.memory_info().rss
                            count += 1
                    except psutil.Error:
                        continue
                out[server] = (sum(seen.values()), rss, count)
        return out

    def collect(self) -> Iterator[Any]:
        stats = self.sample()
        cpu = CounterMetricFamily(
            n.PROC_CPU.removesuffix("_total"),
            "CPU time (user+system) of a local server's process tree, seconds.",
            labels=["server"],
        )
        rss = GaugeMetricFamily(
            n.PROC_RSS,
            "Resident memory of a local server's process tree, bytes.",
            labels=["server"],
        )
        cnt = GaugeMetricFamily(
            n.PROC_COUNT, "Live processes in a local server's process tree.", labels=["server"]
        )
        for server, (c, r, k) in stats.items():
            cpu.add_metric([server], c)
            rss.add_metric([server], r)
            cnt.add_metric([server], k)
        yield cpu
        yield rss
        yield cnt

    def describe(self) -> Iterator[Any]:
        return iter(())

    def registry(self) -> CollectorRegistry:
        reg = CollectorRegistry()
        reg.register(self)
        return reg

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        server, _ = start_http_server(port, addr=host, registry=self.registry())
        return server
