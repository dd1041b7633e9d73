"""The main job end to end, for real: `servecmp run` with a REAL TorchServe, the REAL Prometheus,
the in-process baselines, friction measurements and the report — on the tiny model so it is quick.

TF Serving runs where `tensorflow_model_server` or Docker exists; elsewhere the run must list it
as unavailable with the reason (never replaced by anything).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import run_budget
import yaml

from servecmp.experiment import parse_experiment
from servecmp.results.friction import read_friction
from servecmp.results.store import RunStore
from servecmp.servers.tfserving.local import TFServingServer
from servecmp.servers.torchserve.local import TorchServeServer

pytestmark = [pytest.mark.slow, pytest.mark.torchserve, pytest.mark.prometheus]

TINY = {
    "name": "e2e",
    "model": "tiny",
    "seed": 1234,
    "targets": [
        {"server": "torchserve", "protocol": "rest"},
        {"server": "torchserve", "protocol": "grpc"},
        {"server": "tfserving", "protocol": "rest"},
        {"server": "tfserving", "protocol": "grpc"},
        {"server": "pytorch", "protocol": "inprocess"},
        {"server": "tensorflow", "protocol": "inprocess"},
    ],
    "payload": {"distinct_inputs": 8},
    "load": {
        "profile": "closed_loop",
        "concurrency": [2],
        "warmup_s": 0.5,
        "stability": {"window_s": 1.0, "windows": 2, "max_windows": 3},
        "repeats": 2,
        "burn_in": {"max_s": 1.5, "window_s": 0.5},
    },
    # two start-ups show that each is measured and stored with its index
    "friction": run_budget.friction(startups=2),
}


def _skip_reason() -> str | None:
    if TorchServeServer.availability():
        return TorchServeServer.availability()
    if shutil.which("prometheus") is None:
        return "needs the prometheus binary (apt-get install prometheus)"
    return None


def _leftovers(run_dir: Path) -> list[str]:
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
        except psutil.Error:
            continue
        if str(run_dir) in cmd and p.pid != os.getpid():
            out.append(f"{p.pid}: {cmd[:200]}")
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_run_exports: Any) -> Path:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from servecmp.run.orchestrate import run_experiment

    root = tmp_path_factory.mktemp("e2e")
    return run_experiment(
        parse_experiment(TINY),
        runs_root=root / "runs",
        artifacts_root=tiny_run_exports(root / "build"),
        prometheus=True,
        report=True,
    )


def test_results_hold_torchserve_both_protocols_and_both_baselines(run_dir: Path) -> None:
    steps = RunStore(run_dir).read_steps().steps
    by_target = {s.target: s for s in steps}
    for name in (
        "torchserve-rest-json",
        "torchserve-grpc-bytes",
        "pytorch-inprocess",
        "tensorflow-inprocess",
    ):
        s = by_target[name]
        assert s.ok > 0 and s.wrong_answers == 0 and not s.transport_errors, s
        assert s.latency_ms.p50 is not None and s.throughput_rps > 0
        assert s.hdr_latency_us  # the histogram is stored for re-plotting


def test_repeats_are_interleaved_rounds_over_every_target(run_dir: Path) -> None:
    """A B C D, D C B A: round 0 of every target (servers and baselines) before any round 1,
    the order counterbalanced, so drift hits both sides of every comparison; the report pairs them."""
    steps = RunStore(run_dir).read_steps().steps
    rounds = [s.repeat for s in steps]
    assert rounds == sorted(rounds) and set(rounds) == {0, 1}
    first = [s.target for s in steps if s.repeat == 0]
    assert first[::-1] == [s.target for s in steps if s.repeat == 1]
    assert {
        "torchserve-rest-json",
        "torchserve-grpc-bytes",
        "pytorch-inprocess",
        "tensorflow-inprocess",
    } <= set(first)
    # The report pairs the rounds wherever both targets of a pair have a comparable step in
    # each; a pair short of that falls back to the single-repeat rule and says so.
    md = (run_dir / "report" / "report.md").read_text()
    comparable: dict[str, set[int]] = {}
    for s in steps:
        if s.comparable:
            comparable.setdefault(s.target, set()).add(s.repeat)
    servers = ("torchserve-rest-json", "torchserve-grpc-bytes")
    if all(comparable.get(t) == {0, 1} for t in servers):
        assert "2 paired repeats" in md
    elif all(comparable.get(t) for t in servers):
        assert "1 repeat, window noise" in md  # both measured, but not in two common rounds


def test_tfserving_is_measured_or_unavailable_with_reason(run_dir: Path) -> None:
    avail = {t.target: t for t in RunStore(run_dir).read_targets()}
    for name in ("tfserving-rest-json", "tfserving-grpc-tensorproto"):
        if TFServingServer.availability() is None:
            assert avail[name].available
        else:
            assert not avail[name].available
            assert "tensorflow_model_server" in avail[name].reason
            assert not any(s.target == name for s in RunStore(run_dir).read_steps().steps)


def test_provenance_and_configs_are_stored(run_dir: Path) -> None:
    meta = RunStore(run_dir).read_meta()
    assert meta.versions["torchserve"] and meta.versions["torch"]
    assert meta.host["cpu_model"] and meta.payload["encodings"]["torchserve-grpc-bytes"] == "bytes"
    assert meta.fairness["resources.cpus"] == 1.0
    assert meta.host["usable_cores"] == len(os.sched_getaffinity(0))  # measured before pinning
    if meta.placement["pinned"]:
        assert set(meta.placement["server_cpus"]).isdisjoint(meta.placement["generator_cpus"])
    assert (run_dir / "configs" / "torchserve" / "config.properties").is_file()
    assert (run_dir / "configs" / "tfserving" / "models.config").is_file()
    assert yaml.safe_load((run_dir / "experiment.yaml").read_text())["model"] == "tiny"
    assert (run_dir / "logs" / "torchserve").is_dir()


def test_friction_is_measured_for_torchserve(run_dir: Path) -> None:
    recs, truncated = read_friction(run_dir)
    assert not truncated
    ts = {r.metric: r for r in recs if r.server == "torchserve"}
    for metric in (
        "packaging_s",
        "artifact_bytes",
        "cold_start_ready_s",
        "cold_start_first_inference_s",
        "idle_rss_bytes",
        "peak_rss_bytes",
        "idle_cpu_cores",
        "config_knobs_changed",
        "metric_families",
        "update_s",
        "update_failed_requests",
        "recovery_s",
        "recovery_lost_requests",
        "bad_payload_clear_errors",
    ):
        assert ts[metric].available and ts[metric].value is not None, (metric, ts[metric])
    assert ts["peak_rss_bytes"].value >= ts["idle_rss_bytes"].value * 0.5
    assert ts["recovery_lost_requests"].value > 0  # it was really killed under load
    assert ts["server_latency_quantiles"].value == 0.0  # TorchServe exposes sums only
    cases = {c["case"]: c for c in ts["bad_payload_clear_errors"].details["cases"]}
    assert cases["wrong_shape"]["status"] == 400 and cases["unknown_model"]["status"] == 404
    # the body just over max_request_size: refused by TorchServe, which stays up
    assert (
        cases["oversize_body"]["outcome"] == "rejected" and cases["oversize_body"]["status"] == 413
    )
    assert ts["oversize_crashed"].value == 0.0
    # cold start and idle memory: one measurement per start-up, each stored with its index
    from servecmp.results.friction import measurements

    startups = TINY["friction"]["startups"]

    by = measurements(recs)
    for metric in (
        "cold_start_ready_s",
        "cold_start_first_inference_s",
        "idle_rss_bytes",
        "idle_cpu_cores",
    ):
        got = by[("torchserve", metric, "local")]
        assert [r.index for r in got] == list(range(startups)), (metric, got)
        assert all(r.available and r.value is not None for r in got), got
    tfs = {r.metric: r for r in recs if r.server == "tfserving"}
    assert tfs["packaging_s"].available  # packaging runs here even without the server
    if TFServingServer.availability() is not None:
        assert not tfs["cold_start_ready_s"].available and tfs["cold_start_ready_s"].reason


def test_every_torchserve_and_generator_panel_query_returned_data(run_dir: Path) -> None:
    from servecmp.observability import check, dashboards
    from servecmp.servers import registry

    doc = json.loads((run_dir / "prometheus" / "series.json").read_text())
    empty = []
    for fn in dashboards.DASHBOARDS.values():
        d = fn()
        for pq in check.panel_queries(d):
            sources = check.query_sources(pq.expr)
            # Other servers' rows (their own metrics, or generator series labelled server="<name>")
            # are covered by the promtool unit tests (and tests/test_kserve.py); this run has
            # TorchServe only.
            others = [a.name for a in registry.servers() if a.name != "torchserve"]
            if not sources & {"torchserve", "generator"} or any(
                o in sources or f'server="{o}"' in pq.expr for o in others
            ):
                continue
            entry = doc["queries"][f"{pq.dashboard_uid}#{pq.panel_id}{pq.ref_id}"]
            if entry["status"] != "success" or not entry["result"]:
                empty.append(f"{pq.dashboard_uid} panel {pq.panel_id}{pq.ref_id}: {pq.expr}")
    assert not empty, "panel queries without data:\n" + "\n".join(empty)


def test_report_built_from_the_real_run(run_dir: Path) -> None:
    md = (run_dir / "report" / "report.md").read_text()
    html = (run_dir / "report" / "report.html").read_text()
    assert "torchserve-rest-json" in md and "pytorch-inprocess" in md
    if TFServingServer.availability() is not None:
        assert "unavailable" in md and "tensorflow_model_server" in md
    assert "<html" in html.lower()


def test_no_process_left_behind(run_dir: Path) -> None:
    assert not _leftovers(run_dir)


def _start_run(
    tmp_path: Path,
    exports: Any,
    name: str,
    *extra: str,
    env: dict[str, str] | None = None,
    concurrency: tuple[int, ...] = (1, 2),
) -> tuple[subprocess.Popen[str], Path, Any]:
    """`servecmp run` in a subprocess; returns it once the first step is on disk (+ its run dir).
    ``exports``: the ``tiny_run_exports`` fixture (the run reuses the session's export)."""
    exp = dict(TINY, targets=TINY["targets"][:2], name=name)
    # one round: these tests are about processes and stored steps, not about interleaving
    exp["load"] = dict(
        TINY["load"],
        concurrency=list(concurrency),
        repeats=1,
        stability={"window_s": 1.5, "windows": 2, "max_windows": 4},
    )
    exp["friction"] = run_budget.friction()
    tmp_path.mkdir(parents=True, exist_ok=True)
    exp_path = tmp_path / f"{name}.yaml"
    exp_path.write_text(yaml.safe_dump(exp))
    runs = tmp_path / "runs"
    log = (tmp_path / "run.log").open("w")  # a file, not a pipe: a full pipe would block the run
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "servecmp.cli",
            "run",
            str(exp_path),
            "--runs",
            str(runs),
            "--artifacts",
            str(exports(tmp_path / "build")),
            "--no-report",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(runs.glob("*/steps.jsonl"))
        if found and found[0].read_text().count("\n") >= 1:
            return proc, found[0].parent, log
        time.sleep(0.2)
    proc.kill()
    log.close()
    pytest.fail(f"first step never finished:\n{(tmp_path / 'run.log').read_text()[-3000:]}")


def test_ctrl_c_stops_every_process_and_keeps_finished_steps(
    tmp_path: Path, tiny_run_exports: Any
) -> None:
    """SIGINT to `servecmp run` mid-step: it exits 130, the finished step is intact, and no
    process (step child, TorchServe JVM/workers, Prometheus) is left behind."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    proc, run_dir, log = _start_run(tmp_path, tiny_run_exports, "sigint")
    try:
        first = (run_dir / "steps.jsonl").read_text()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == 130, (tmp_path / "run.log").read_text()[-3000:]
    assert (run_dir / "steps.jsonl").read_text().startswith(first)
    assert RunStore(run_dir).read_steps().steps[0].ok > 0
    time.sleep(1.0)  # the JVM exits a moment after its group is signalled
    assert not _leftovers(run_dir)


def test_torchserve_killed_mid_run_keeps_earlier_steps(
    tmp_path: Path, tiny_run_exports: Any
) -> None:
    """SIGKILL TorchServe's JVM during the 2nd step: the run ends cleanly, errors are counted,
    the first step is byte-identical on disk and nothing is left running."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # one level: the kill lands in the second of two steps (a step's windows alone outlast the
    # 1 s wait), and every step after it would only count errors against a dead server
    proc, run_dir, log = _start_run(
        tmp_path, tiny_run_exports, "kill", "--no-prometheus", concurrency=(1,)
    )
    try:
        steps_file = run_dir / "steps.jsonl"
        first = steps_file.read_text()
        time.sleep(1.0)  # inside the second step's measurement
        java = [
            p
            for p in psutil.process_iter(["name", "cmdline"])
            if "java" in (p.info["name"] or "")
            and str(run_dir) in " ".join(p.info["cmdline"] or [])
        ]
        assert java, "TorchServe's JVM not found"
        for p in java:
            p.send_signal(signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    out = (tmp_path / "run.log").read_text()
    assert proc.returncode == 0, out[-3000:]
    steps = RunStore(run_dir).read_steps().steps
    assert steps_file.read_text().startswith(first)  # earlier step intact, byte for byte
    assert steps[0].ok > 0 and not steps[0].transport_errors
    later = steps[1:]
    assert later and sum(s.transport_error_count for s in later) > 0
    # the step it died in is marked disrupted (kept out of comparisons), saying what changed:
    # the JVM exited (killed once the step had started) or nothing was listening (before)
    hit = [s for s in later if s.transport_error_count]
    assert hit[0].disrupted and not hit[0].comparable
    assert "exited: java" in hit[0].disrupted or "outage" in hit[0].disrupted, hit[0].disrupted
    assert all(s.disrupted for s in hit)
    assert not _leftovers(run_dir)


RUN_MARKER = "SERVECMP_TEST_RUN_MARKER"


def _processes_of(marker: str, run_dir: Path) -> list[str]:
    """Live processes of a run: the test's marker in their environment (every child inherits it:
    the TorchServe JVM passes its environment on to the workers), or the run dir in their command
    line or working directory. Walks /proc."""
    needle = f"{RUN_MARKER}={marker}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            cmd = (
                Path(f"/proc/{entry}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:  # gone, a zombie, or not ours
            continue
        if needle in env.split(b"\0") or str(run_dir) in cmd or cwd.startswith(str(run_dir)):
            out.append(f"{entry}: {cmd[:160]}")
    return out


def test_kill_9_of_servecmp_run_leaves_no_process_and_a_new_run_works(
    tmp_path: Path, tiny_run_exports: Any
) -> None:
    """SIGKILL `servecmp run` mid-step (no handler can run): within 10 s no process of the run
    is left — step process, TorchServe launcher, JVM and worker, Prometheus — and a new run
    right after works without any cleanup."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    import uuid

    marker = uuid.uuid4().hex
    proc, run_dir, log = _start_run(
        tmp_path / "first", tiny_run_exports, "kill9", env={RUN_MARKER: marker}
    )
    left: list[str] = []
    try:
        time.sleep(1.0)  # inside the second step
        before = _processes_of(marker, run_dir)
        assert any("java" in p for p in before), before
        assert any("prometheus" in p for p in before), before
        assert any("servecmp.load.engine.step" in p for p in before), before
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (left := _processes_of(marker, run_dir)):
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        for line in _processes_of(marker, run_dir):  # never leave them running, even on failure
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
    assert not left, "still running 10 s after kill -9:\n" + "\n".join(left)
    assert RunStore(run_dir).read_steps().steps[0].ok > 0  # the finished step survived

    # one level is enough to show that a new run works (2 steps, not 4)
    proc2, run_dir2, log2 = _start_run(
        tmp_path / "again", tiny_run_exports, "again", "--no-prometheus", concurrency=(1,)
    )
    try:
        proc2.wait(timeout=400)
    finally:
        if proc2.poll() is None:
            proc2.kill()
        log2.close()
    assert proc2.returncode == 0, (tmp_path / "again" / "run.log").read_text()[-3000:]
    steps = RunStore(run_dir2).read_steps().steps
    assert len(steps) == 2 and all(s.ok > 0 for s in steps)
    assert not _leftovers(run_dir2)


@pytest.mark.browser
@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium not installed"
)
def test_real_runs_report_renders_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    from test_report_browser import chromium, console_errors, non_white_fraction

    html = run_dir / "report" / "report.html"
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", html.as_uri())
    assert dom.returncode == 0 and not console_errors(dom.stderr), console_errors(dom.stderr)
    assert dom.stdout.count('class="main-svg"') >= 3  # plotly drew its plots
    shot = tmp_path / "report.png"
    res = chromium(
        "--virtual-time-budget=10000",
        "--window-size=1400,3000",
        f"--screenshot={shot}",
        html.as_uri(),
    )
    assert res.returncode == 0 and shot.exists()
    assert non_white_fraction(shot) > 0.02
