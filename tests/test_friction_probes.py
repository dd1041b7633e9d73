"""Friction probes that don't spoil each other, a kill probe that takes what recovery takes, and
start-up friction measured several times per server (interleaved), stored with an index.

Fast tests drive the orchestrator's probe sequence and start-up rounds with scripted servers
(no real server); the last tests send the oversize body to a REAL TorchServe / KServe serving
resnet (slow)."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from servecmp.experiment import EventLoad, Protocol, Target, parse_experiment
from servecmp.load.clients.base import TargetClient, TransportError
from servecmp.load.payloads import PayloadSet, seeded_inputs
from servecmp.results.friction import FRICTION, measurements, read_friction
from servecmp.run import friction, probes
from servecmp.run.server import Endpoints, LocalServer

STARTUP = ("cold_start_ready_s", "cold_start_first_inference_s", "idle_rss_bytes", "idle_cpu_cores")


def echo_payloads(n: int = 4) -> PayloadSet:
    inputs = seeded_inputs(7, n, 1, (1, 2, 2))
    return PayloadSet(model="echo", seed=7, inputs=inputs, expected=inputs.reshape(n, 1, 4))


# ---- scripted servers ------------------------------------------------------------------------
class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.popen = SimpleNamespace(returncode=None)
        self.log_path = Path(os.devnull)

    def alive(self) -> bool:
        return self.popen.returncode is None

    def die(self, code: int) -> None:
        self.popen.returncode = code

    def log_tail(self, n: int = 30) -> str:
        return "scripted"


class FakeServer(LocalServer):
    """A LocalServer that starts instantly; ``events`` (class-wide) records start/stop order."""

    name = "fake"
    events: ClassVar[list[str]] = []

    @classmethod
    def availability(cls) -> str | None:
        return None

    def start(self) -> None:
        self.process = FakeProcess(os.getpid())  # measured: this test process (cheap, real)
        self.started_at = time.time()
        self.events.append(f"start {self.name}")

    def is_ready(self) -> bool:
        return True

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            rest="127.0.0.1:9", grpc="127.0.0.1:9", metrics_url="http://127.0.0.1:9/metrics"
        )

    def measured_pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.alive() else None

    def stop(self) -> None:
        if self.process is not None and self.process.alive():
            self.process.die(0)  # type: ignore[attr-defined]
        self.events.append(f"stop {self.name}")


def fake_class(name: str) -> type[FakeServer]:
    return type(f"Fake_{name}", (FakeServer,), {"name": name})


class FakeAdapter:
    """The registered adapter, except that its servers are FakeServers."""

    def __init__(self, name: str, fail_at_start: int | None = None) -> None:
        from servecmp.servers import registry

        self.real = registry.get(name)
        self.name = name
        self.cls = fake_class(name)
        self.fail_at_start = fail_at_start  # the n-th start (0-based) of this server fails
        self.starts = 0
        self.updated = 0

    def launcher(self) -> type[LocalServer]:
        adapter = self

        class Launcher(self.cls):  # type: ignore[name-defined, misc]
            def wait_ready(self, timeout_s: float = 120.0, poll_s: float = 0.2) -> float:
                n, adapter.starts = adapter.starts, adapter.starts + 1
                if n == adapter.fail_at_start:
                    from servecmp.run.server import ServerFailed

                    raise ServerFailed(f"{adapter.name} scripted failure at start {n}")
                return 0.01

        return Launcher

    def __getattr__(self, item: str) -> Any:
        return getattr(self.real, item)

    def provenance(self, server: Any) -> None:
        return None

    def update_action(self, server: Any, artifacts_v2: Any, model_root: Path) -> Callable[[], None]:
        return lambda: None


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Any]:
    """``scripted(**adapters)``: a LocalRun over torchserve + kserve targets whose servers are
    FakeServers (registry.get answers the given FakeAdapters)."""
    from servecmp.run import orchestrate

    FakeServer.events.clear()
    monkeypatch.setattr(
        friction, "first_correct_inference", lambda make, timeout_s=60.0: time.time()
    )
    monkeypatch.setattr(probes, "idle_cpu_cores", lambda pid, seconds=3.0: 0.0)
    runs: list[Any] = []

    def make(adapters: dict[str, FakeAdapter], startup_samples: int = 3) -> Any:
        exp = parse_experiment(
            {
                "name": "f",
                "model": "tiny",
                "targets": [{"server": n, "protocol": "rest"} for n in adapters],
            }
        )
        monkeypatch.setattr(orchestrate.registry, "get", lambda name: adapters[name])
        run = orchestrate.LocalRun(
            exp,
            run_dir=tmp_path / "run",
            artifacts_root=tmp_path,
            prometheus=False,
            startup_samples=startup_samples,
        )
        run.run_dir.mkdir(parents=True, exist_ok=True)
        run.configs = SimpleNamespace(files={})
        run.config_dirs = {n: tmp_path for n in adapters}
        runs.append(run)
        return run

    yield make
    for run in runs:
        for sampler in run._samplers.values():
            sampler.stop()


def _groups(run: Any) -> dict[str, list[Target]]:
    return {t.server: [t] for t in run.exp.targets}


# ---- interleaved start-ups -------------------------------------------------------------------
def test_startup_order_rotates_so_each_server_starts_in_each_position() -> None:
    order = friction.startup_order(["a", "b", "c"], 5)
    assert order == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
        ["b", "c", "a"],
    ]
    for pos in range(3):
        assert sorted(r[pos] for r in order[:3]) == ["a", "b", "c"]
    assert friction.startup_order([], 3) == []


def test_cold_start_and_idle_memory_are_measured_each_startup_interleaved(scripted: Any) -> None:
    adapters = {"torchserve": FakeAdapter("torchserve"), "kserve": FakeAdapter("kserve")}
    run = scripted(adapters, startup_samples=3)
    up = run.bring_up_all(_groups(run))

    # rounds A B, B A, A B; each round's servers stopped before the next; the last round stays up
    assert FakeServer.events == [
        "start torchserve",
        "start kserve",
        "stop kserve",
        "stop torchserve",
        "start kserve",
        "start torchserve",
        "stop torchserve",
        "stop kserve",
        "start torchserve",
        "start kserve",
    ]
    assert [s.name for s, _ in up] == ["torchserve", "kserve"]
    assert all(s.process.alive() for s, _ in up)
    recs, _ = read_friction(run.run_dir)
    by = measurements(recs)
    for server in adapters:
        for metric in STARTUP:
            got = by[(server, metric, "local")]
            assert [r.index for r in got] == [0, 1, 2], (server, metric)
            assert all(r.available and r.value is not None for r in got)
    # the load's servers are announced once, from the last start-up
    assert [t.target for t in run.store.read_targets()] == [
        "torchserve-rest-json",
        "kserve-rest-json",
    ]


def test_a_server_failing_a_later_startup_is_out_with_that_startups_index(scripted: Any) -> None:
    adapters = {
        "torchserve": FakeAdapter("torchserve"),
        "kserve": FakeAdapter("kserve", fail_at_start=1),
    }
    run = scripted(adapters, startup_samples=3)
    up = run.bring_up_all(_groups(run))
    assert [s.name for s, _ in up] == ["torchserve"]
    assert FakeServer.events.count("start kserve") == 2  # not started again after failing
    assert FakeServer.events.count("start torchserve") == 3
    by = measurements(read_friction(run.run_dir)[0])
    ks = by[("kserve", "cold_start_ready_s", "local")]
    assert [(r.index, r.available) for r in ks] == [(0, True), (1, False)]
    assert "scripted failure" in ks[1].reason
    assert [r.index for r in by[("torchserve", "idle_rss_bytes", "local")]] == [0, 1, 2]


# ---- probe order -----------------------------------------------------------------------------
def test_probes_run_harmless_first_the_oversize_body_last_and_a_downed_server_is_restarted(
    scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapters = {"torchserve": FakeAdapter("torchserve")}
    run = scripted(adapters, startup_samples=1)
    [(server, targets)] = run.bring_up_all(_groups(run))
    run.art2, run.expected = None, {}
    run.spec = SimpleNamespace(input_shape=(1, 2, 2))
    calls: list[str] = []
    FakeServer.events.clear()

    def small(*a: Any) -> list[probes.BadPayloadResult]:
        calls.append("bad payloads")
        return [probes.BadPayloadResult(c.name, 400, c.keywords[0], True) for c in probes.CASES]

    def update(*a: Any, **kw: Any) -> None:
        calls.append("update")
        server.process.die(-9)  # the update took the server down

    def oversize(run_dir: Path, srv: Any, *a: Any) -> probes.BadPayloadResult:
        calls.append("oversize")
        srv.process.die(-9)
        return probes.BadPayloadResult(
            "oversize_body", None, "", False, "reset", "crashed", 6553600, 6553500
        )

    monkeypatch.setattr(friction, "native_observability", lambda *a: calls.append("native metrics"))
    monkeypatch.setattr(friction, "bad_payload_cases", small)
    monkeypatch.setattr(friction, "model_update", update)
    monkeypatch.setattr(friction, "recovery", lambda *a, **kw: calls.append("recovery"))
    monkeypatch.setattr(friction, "oversize_body", oversize)
    run.wind_down(server, targets)

    assert calls == ["native metrics", "bad payloads", "update", "recovery", "oversize"]
    # down after the update: a finding, and restarted before the kill probe measured it
    assert FakeServer.events == ["start torchserve", "stop torchserve"]
    assert any("torchserve was down before the kill under load" in n for n in run.notes), run.notes
    assert any("torchserve crashed on a 6553600 B request body" in n for n in run.notes), run.notes
    recs = {r.metric: r for r in read_friction(run.run_dir)[0]}
    cases = {c["case"]: c for c in recs["bad_payload_clear_errors"].details["cases"]}
    assert set(cases) == {c.name for c in probes.ALL_CASES}
    assert cases["oversize_body"]["outcome"] == "crashed"
    assert recs["bad_payload_clear_errors"].value == 4.0


# ---- the kill probe --------------------------------------------------------------------------
WARM_UP_S = 1.0


class Flaky:
    """A scripted server: refuses connections while down; after a restart its first answer
    takes WARM_UP_S (model warm-up), as TorchServe's does."""

    name = "torchserve"
    kill_description = "scripted kill"

    def __init__(self) -> None:
        self.process = FakeProcess(os.getpid())
        self.down = False
        self.cold = False

    def kill_hard(self) -> None:
        self.down = True

    def restart(self) -> None:
        self.down, self.cold = False, True

    def client(self) -> TargetClient:
        srv = self

        class Client(TargetClient):
            def _exchange(self, index: int) -> Any:
                if srv.down:
                    raise TransportError("connect", "refused")
                if srv.cold:
                    time.sleep(WARM_UP_S)
                    srv.cold = False
                return self.payloads.expected[index], 16

        return Client(Target(server="torchserve", protocol=Protocol.rest), "", echo_payloads(), 1.0)


@pytest.mark.load
def test_recovery_counts_until_the_first_answer_arrived_and_the_probe_ends_right_after(
    tmp_path: Path,
) -> None:
    srv = Flaky()
    pay = echo_payloads()
    t0 = time.monotonic()
    span = EventLoad(before_s=1.0, after_s=1.0)  # the timeline's span ends before the recovery
    friction.recovery(tmp_path, srv, srv.client, {"v1": pay.expected}, 1e-6, srv.restart, span)  # type: ignore[arg-type]
    wall = time.monotonic() - t0 - span.before_s
    rec = {r.metric: r for r in read_friction(tmp_path)[0]}["recovery_s"]
    assert rec.value is not None and rec.value >= WARM_UP_S  # the answer, not the send
    ph = rec.details["phases_s"]
    assert (
        ph["kill"]
        <= ph["dead"]
        <= ph["restart_returned"]
        <= ph["answered_again"]
        <= ph["load_stopped"]
    )
    # the probe's wall time: recovery plus a bounded margin (the sender's stop), not a fixed wait
    assert wall < rec.value + 5.0, (wall, rec.value, ph)
    assert all(
        len(row) == 5 for row in rec.details["timeline"]
    )  # sent, ok, version, error, answered


@pytest.mark.load
def test_the_kill_timeline_shows_the_gap_and_the_tail_around_t0(tmp_path: Path) -> None:
    """Per-second windows from before_s before the kill to after_s after it, under the
    experiment's steady load (recorded): the scripted server's warm-up after the restart is the
    longest gap without an ok answer, and the first answer's latency is the event's tail."""
    srv = Flaky()
    pay = echo_payloads()
    ev = EventLoad(rate=20.0, concurrency=2, before_s=2.0, after_s=3.0)
    friction.recovery(tmp_path, srv, srv.client, {"v1": pay.expected}, 1e-6, srv.restart, ev)  # type: ignore[arg-type]
    recs = {r.metric: r for r in read_friction(tmp_path)[0]}
    tl = recs["recovery_s"].details["event_timeline"]
    assert tl["load"] == {"rate": 20.0, "concurrency": 2}
    assert recs["recovery_lost_requests"].details["concurrency"] == 2
    assert [w["t"] for w in tl["windows"]] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    before = [w for w in tl["windows"] if w["t"] < 0]
    assert all(w["throughput_rps"] > 0 and w["errors"] == 0 for w in before)
    summary = tl["summary"]
    assert summary["longest_gap_s"] >= 0.9 * WARM_UP_S
    assert summary["event_p99_ms"] >= 0.9 * WARM_UP_S * 1000
    # this machine's noise may move the 2 s baseline: then it is said, not divided by
    if summary["p99_ratio"] is None:
        assert summary["p99_ratio_why"].startswith("baseline not steady: "), summary
        assert summary["event_p99_ms"] > 5 * summary["steady_p99_ms"]
    else:
        assert summary["p99_ratio"] > 5 and summary["baseline_steady"] is True
    # the timeline's span was kept, and what it added to the probe is recorded
    ph = recs["recovery_s"].details["phases_s"]
    assert ph["load_stopped"] >= ph["kill"] + ev.after_s
    assert ph["timeline_added"] >= ev.before_s


# ---- stored measurements ---------------------------------------------------------------------
def test_reader_returns_every_measurement_and_reads_old_runs_as_index_0(tmp_path: Path) -> None:
    from servecmp.results.friction import append_friction, record

    old = {
        "format_version": 1,
        "server": "kserve",
        "metric": "cold_start_ready_s",
        "value": 3.1,
        "available": True,
        "reason": "",
        "placement": "local",
        "details": {},
    }
    (tmp_path / FRICTION).write_text(json.dumps(old) + "\n")  # written before `index` existed
    for i, v in ((1, 4.0), (0, 3.0), (2, 5.0)):
        append_friction(tmp_path, record("torchserve", "cold_start_ready_s", v, index=i))
    by = measurements(read_friction(tmp_path)[0])
    assert [(r.index, r.value) for r in by[("kserve", "cold_start_ready_s", "local")]] == [(0, 3.1)]
    assert [r.value for r in by[("torchserve", "cold_start_ready_s", "local")]] == [3.0, 4.0, 5.0]


# ---- oversize body ---------------------------------------------------------------------------
def test_torchserve_limit_comes_from_the_generated_config_else_its_default() -> None:
    from servecmp.configgen.placement import Placement  # noqa: F401 - the adapter's own import path
    from servecmp.servers import registry

    ts = registry.get("torchserve")
    assert ts.request_body_limit({"config.properties": "max_request_size=1000\n"}) == 1000
    assert ts.request_body_limit({"config.properties": "metrics_mode=prometheus\n"}) == 6553500
    assert registry.get("kserve").request_body_limit({}) is None  # no documented limit


class _EarlyRefusal(http.server.BaseHTTPRequestHandler):
    """Answers 413 from the headers alone and closes without reading the body."""

    limit = 10_000

    def do_POST(self) -> None:
        if int(self.headers["Content-Length"]) > self.limit:
            self.send_response(413, "Request Entity Too Large")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"request too large")
            self.close_connection = True
            return
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a: Any) -> None:
        pass


def test_oversize_probe_reads_an_answer_sent_before_the_body_was_read() -> None:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EarlyRefusal)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/predict"
        res = probes.probe_oversize(url, (1, 2, 2), 4 * 1024 * 1024, lambda: True, timeout_s=20)
    finally:
        srv.shutdown()
        srv.server_close()
    assert (res.status, res.outcome, res.names_problem) == (413, "rejected", True), res
    assert res.sent_bytes == 4 * 1024 * 1024 + probes.OVER_LIMIT_BY


# ---- against real servers with resnet (slow) ---------------------------------------------------
def _real(server: str) -> str | None:
    from servecmp.servers import registry

    return registry.get(server).launcher().availability()


@pytest.mark.slow
@pytest.mark.parametrize(
    "server",
    [
        pytest.param("torchserve", marks=pytest.mark.torchserve),
        pytest.param("kserve", marks=pytest.mark.kserve),
    ],
)
def test_oversize_body_against_the_real_server_with_resnet(
    server: str, exported_model: Callable[[str], Path], tmp_path: Path
) -> None:
    """resnet: a valid body of thousands of rows would need more memory than the server has.
    The probe is answered in seconds, the server stays up and answers right after."""
    reason = _real(server)
    if reason:
        pytest.skip(reason)
    from servecmp.models.registry import get_model
    from servecmp.run.standalone import start_server

    srv = start_server(server, "resnet", tmp_path / "srv", exported_model("resnet"))
    try:
        t0 = time.monotonic()
        res = friction.oversize_body(tmp_path, srv, "resnet", get_model("resnet").input_shape)
        took = time.monotonic() - t0
        assert res.error is None and res.outcome in ("rejected", "accepted"), res
        if server == "torchserve":  # max_request_size of the generated config: netty's 413
            assert res.limit_bytes == 64 * 1024 * 1024 and res.status == 413, res
        else:  # KServe documents no limit: one row, parsed through the padding, served
            assert res.limit_bytes is None and res.status == 200, res
        assert took < 60, took  # the old 64 MiB of rows ran into the 60 s read timeout on KServe
        assert friction.server_up(srv, 10.0)
        rec = {r.metric: r for r in read_friction(tmp_path)[0]}["oversize_crashed"]
        assert rec.value == 0.0 and rec.details["outcome"] == res.outcome
    finally:
        srv.stop()


@pytest.mark.load
def test_a_recovery_that_outlasts_after_s_is_shown_whole(tmp_path: Path) -> None:
    srv = Flaky()
    pay = echo_payloads()
    ev = EventLoad(before_s=1.0, after_s=1.0)  # shorter than the scripted warm-up + 1 s
    friction.recovery(tmp_path, srv, srv.client, {"v1": pay.expected}, 1e-6, srv.restart, ev)  # type: ignore[arg-type]
    rec = {r.metric: r for r in read_friction(tmp_path)[0]}["recovery_s"]
    tl = rec.details["event_timeline"]
    assert rec.value is not None and tl["after_s"] >= rec.value + 1.0
    assert tl["windows"][-1]["t"] >= rec.value
