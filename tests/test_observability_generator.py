"""Generator metrics: Locust-style request events -> prometheus-client series (no binaries needed)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from servecmp.observability import generator_metrics as gm
from servecmp.observability import names as n

REPO = Path(__file__).resolve().parents[1]


class _Hook:
    def __init__(self) -> None:
        self.listeners: list = []

    def add_listener(self, f) -> None:
        self.listeners.append(f)

    def fire(self, **kw) -> None:
        for f in self.listeners:
            f(**kw)


class _Events:
    def __init__(self) -> None:
        self.request = _Hook()


class _Env:
    """Just enough of locust.env.Environment (importing locust monkey-patches the test process)."""

    def __init__(self) -> None:
        self.events = _Events()


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


TS = {
    "target": "torchserve-rest-json",
    "server": "torchserve",
    "protocol": "rest",
    "encoding": "json",
}


def test_buckets_cover_1ms_to_10s():
    b = gm.LATENCY_BUCKETS
    assert b[0] <= 0.001 and b[-1] >= 10.0
    assert list(b) == sorted(set(b))
    assert all(hi / lo <= 2.0 for lo, hi in itertools.pairwise(b))


def test_events_become_series():
    reg = CollectorRegistry()
    m = gm.GeneratorMetrics(reg, late_threshold_ms=10)
    env = _Env()
    env.events.request.add_listener(m.on_request)
    m.register_target("tfserving-grpc-tensorproto")
    ctx = {"server": "torchserve", "protocol": "rest", "encoding": "json"}
    fire = env.events.request.fire
    fire(
        request_type="rest",
        name="torchserve-rest-json",
        response_time=12.0,
        response_length=10,
        exception=None,
        context={**ctx, "outcome": "ok", "late_ms": 0.5},
    )
    fire(
        request_type="rest",
        name="torchserve-rest-json",
        response_time=30.0,
        response_length=10,
        exception=None,
        context={**ctx, "outcome": "wrong_answer", "late_ms": 25.0},
    )
    fire(
        request_type="rest",
        name="torchserve-rest-json",
        response_time=10000.0,
        response_length=0,
        exception=TimeoutError("read timeout"),
        context={**ctx, "outcome": "transport_error"},
    )
    # no context at all: labels derived from the target name, outcome from the exception
    fire(
        request_type="rest",
        name="torchserve-rest-json",
        response_time=5.0,
        response_length=0,
        exception=ConnectionError("refused"),
        context=None,
    )
    s = _samples(reg)
    assert _value(s, n.GEN_REQUESTS, **TS, outcome="ok") == 1
    assert _value(s, n.GEN_REQUESTS, **TS, outcome="wrong_answer") == 1
    assert _value(s, n.GEN_REQUESTS, **TS, outcome="transport_error") == 2
    assert _value(s, n.GEN_LATE_SENDS, **TS) == 1  # 25 ms > 10 ms threshold; 0.5 ms is not late
    assert _value(s, n.GEN_SEND_LATENESS, **TS) == pytest.approx(0.0255)
    assert _value(s, n.GEN_REQUEST_DURATION + "_count", **TS, outcome="ok") == 1
    assert _value(s, n.GEN_REQUEST_DURATION + "_sum", **TS, outcome="ok") == pytest.approx(0.012)
    assert _value(s, n.GEN_REQUEST_DURATION + "_bucket", **TS, outcome="ok", le="0.0125") == 1
    assert _value(s, n.GEN_REQUEST_DURATION + "_bucket", **TS, outcome="ok", le="0.01") == 0
    # a registered target exists at 0 for every outcome before any request
    tf = {
        "target": "tfserving-grpc-tensorproto",
        "server": "tfserving",
        "protocol": "grpc",
        "encoding": "tensorproto",
    }
    for o in n.OUTCOMES:
        assert _value(s, n.GEN_REQUESTS, **tf, outcome=o) == 0


def test_register_target_accepts_experiment_targets():
    from servecmp.experiment import Encoding, Protocol, Target

    reg = CollectorRegistry()
    m = gm.GeneratorMetrics(reg)
    m.register_target(Target(server="torchserve", protocol=Protocol.rest, encoding=Encoding.raw))
    m.register_target(Target(server="pytorch", protocol=Protocol.inprocess))
    s = _samples(reg)
    assert (
        _value(
            s,
            n.GEN_REQUESTS,
            target="torchserve-rest-raw",
            server="torchserve",
            protocol="rest",
            encoding="raw",
            outcome="ok",
        )
        == 0
    )
    assert (
        _value(
            s,
            n.GEN_REQUESTS,
            target="pytorch-inprocess",
            server="pytorch",
            protocol="inprocess",
            encoding="ndarray",
            outcome="ok",
        )
        == 0
    )


def test_in_flight_and_own_process():
    reg = CollectorRegistry()
    m = gm.GeneratorMetrics(reg)
    with m.in_flight("torchserve-rest-json"):
        assert _value(_samples(reg), n.GEN_IN_FLIGHT, **TS) == 1
    assert _value(_samples(reg), n.GEN_IN_FLIGHT, **TS) == 0
    sum(i * i for i in range(200_000))  # burn a little CPU
    m.sample_process()
    s = _samples(reg)
    pid = str(os.getpid())
    assert _value(s, n.GEN_CPU, pid=pid) > 0
    assert _value(s, n.GEN_RSS, pid=pid) > 10e6


def test_subscribe_twice_counts_once():
    gm._reset_for_tests()
    try:
        env = _Env()
        m = gm.subscribe(env, targets=["tiny-x"], sample_interval_s=60)
        assert gm.subscribe(env, sample_interval_s=60) is m
        assert len(env.events.request.listeners) == 1
        env.events.request.fire(
            request_type="rest",
            name="torchserve-rest-json",
            response_time=1.0,
            response_length=1,
            exception=None,
            context={"outcome": "ok"},
        )
        s = _samples(gm.exposition_registry())
        assert _value(s, n.GEN_REQUESTS, **TS, outcome="ok") == 1
    finally:
        gm.metrics().stop_sampler()
        gm._reset_for_tests()


_WORKER = textwrap.dedent(
    """
    import sys
    from servecmp.observability import generator_metrics as gm
    class Hook:
        def __init__(self): self.fs = []
        def add_listener(self, f): self.fs.append(f)
    class Env:
        class events:
            request = Hook()
    env = Env()
    m = gm.subscribe(env, targets=["torchserve-grpc-bytes"], sample_interval_s=0.05)
    for _ in range(int(sys.argv[1])):
        for f in env.events.request.fs:
            f(request_type="grpc", name="torchserve-grpc-bytes", response_time=3.0, response_length=1,
              exception=None, context={"outcome": "ok", "late_ms": 0.0})
    m.stop_sampler()
    """
)


def test_multiprocess_mode_sums_worker_processes(tmp_path):
    """Two worker processes share PROMETHEUS_MULTIPROC_DIR; one exposition sums them."""
    mp = tmp_path / "mp"
    mp.mkdir()
    env = {**os.environ, gm.MULTIPROC_ENV: str(mp), "PYTHONPATH": str(REPO)}
    for count in (7, 5):
        subprocess.run(
            [sys.executable, "-c", _WORKER, str(count)], env=env, check=True, timeout=120
        )
    from prometheus_client import multiprocess

    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg, path=str(mp))
    s = _samples(reg)
    lbl = {
        "target": "torchserve-grpc-bytes",
        "server": "torchserve",
        "protocol": "grpc",
        "encoding": "bytes",
    }
    assert _value(s, n.GEN_REQUESTS, **lbl, outcome="ok") == 12
    assert _value(s, n.GEN_REQUESTS, **lbl, outcome="wrong_answer") == 0  # pre-registered
    assert _value(s, n.GEN_REQUEST_DURATION + "_count", **lbl, outcome="ok") == 12
    cpu_pids = {dict(k[1])["pid"] for k in s if k[0] == n.GEN_CPU}
    assert len(cpu_pids) == 2, "one CPU series per worker process"
