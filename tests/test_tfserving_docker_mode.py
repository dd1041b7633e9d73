"""The local orchestrator's TF Serving path in Docker mode, end to end, without Docker.

A test-only ``docker`` executable (tests/shims/docker, first on PATH here only) starts the TF
Serving test double as the "container": a process in its own session that, like a real
container, outlives a SIGKILLed ``docker run`` client. Asserted: resource numbers come from the
container's process, not the client; the recovery probe really killed, removed and restarted the
container; ``-e`` carries the thread variables; cpuset and memory reach ``docker run`` and are
read back; the image is pulled before the cold-start clock starts; no container is left after a
normal exit, Ctrl-C, ``kill -9`` of ``servecmp run`` or a failure. Every result stays in tmp dirs.
"""

from __future__ import annotations

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

pytestmark = [pytest.mark.slow]

SHIMS = Path(__file__).resolve().parent / "shims"
PULL_S = 3.0
EXP = {
    "name": "docker-shim",
    "model": "tiny",
    "seed": 1234,
    "targets": [{"server": "tfserving", "protocol": "rest"}],
    "payload": {"distinct_inputs": 4},
    "load": {
        "profile": "closed_loop",
        "concurrency": [2],
        "warmup_s": 0.5,
        "stability": {"window_s": 1.0, "windows": 2, "max_windows": 3},
        "burn_in": {"max_s": 1.5, "window_s": 0.5},
    },
    "resources": {"cpus": 1, "memory_mib": 1536},
    "friction": run_budget.friction(startups=2),
}


@pytest.fixture
def shim_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if shutil.which("tensorflow_model_server"):
        pytest.skip("a real tensorflow_model_server is on PATH: the runtime would use binary mode")
    state = tmp_path / "docker-state"
    monkeypatch.setenv("PATH", f"{SHIMS}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_SHIM_STATE", str(state))
    monkeypatch.setenv("DOCKER_SHIM_PYTHON", sys.executable)
    monkeypatch.setenv("DOCKER_SHIM_PULL_S", str(PULL_S))  # the image is not there yet
    assert shutil.which("docker") == str(SHIMS / "docker")
    return state


def _calls(state: Path) -> list[dict[str, Any]]:
    p = state / "calls.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines()] if p.is_file() else []


def _events(state: Path) -> list[dict[str, Any]]:
    p = state / "events.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines()] if p.is_file() else []


def _containers(state: Path) -> list[Path]:
    return sorted((state / "containers").glob("*.json")) if (state / "containers").is_dir() else []


def _doubles_running(root: Path) -> list[str]:
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if (
                "tfserving_double.py" in cmd
                and str(root) in cmd
                and p.status() != psutil.STATUS_ZOMBIE
            ):
                out.append(f"{p.pid}: {cmd[:160]}")
        except psutil.Error:
            continue
    return out


def test_docker_mode_measures_kills_and_cleans_up_the_container(
    shim_env: Path, tmp_path: Path, tiny_run_exports: Any
) -> None:
    from servecmp.run.orchestrate import run_experiment

    state = shim_env
    # Container pids as the shim records them (the file is removed when the container ends).
    seen: dict[str, list[int]] = {"container": [], "client": []}
    import threading

    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for f in _containers(state):
                try:
                    c = json.loads(f.read_text())
                except (OSError, ValueError):
                    continue
                if c["pid"] not in seen["container"]:
                    seen["container"].append(c["pid"])
                    seen["client"].append(c["client_pid"])
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        run_dir = run_experiment(
            parse_experiment(EXP),
            runs_root=tmp_path / "runs",
            artifacts_root=tiny_run_exports(tmp_path / "build"),
            prometheus=False,
            report=False,
        )
    finally:
        stop.set()
        t.join()

    avail = {a.target: a for a in RunStore(run_dir).read_targets()}
    assert avail["tfserving-rest-json"].available, avail
    steps = RunStore(run_dir).read_steps().steps
    assert steps and all(s.ok > 0 and s.wrong_answers == 0 for s in steps)
    # The "server saturated" input watched the container serving the load (a TensorFlow process
    # answering tens of requests per second), not the idle `docker run` client.
    assert all(s.generator and (s.generator.server_cpu_fraction or 0) > 0.02 for s in steps), [
        s.generator for s in steps
    ]

    recs, _ = read_friction(run_dir)
    tfs = {r.metric: r for r in recs if r.server == "tfserving"}  # the last of repeated ones
    n_startups = EXP["friction"]["startups"]

    # One container per start-up (cold start and idle measured each time), then the one started
    # after the kill; the load and the probes ran on the last start-up's container.
    startups = seen["container"][:n_startups]
    loaded = startups[-1]
    assert not set(seen["container"]) & set(seen["client"])
    # Resources: the container's process (docker inspect .State.Pid), never the client.
    for metric in ("idle_rss_bytes", "idle_cpu_cores"):
        each = [r for r in recs if r.server == "tfserving" and r.metric == metric]
        assert [r.index for r in each] == list(range(n_startups)), each
        assert [r.details["pid"] for r in each] == startups, (metric, each, seen)
        assert all("docker inspect" in r.details["source"] for r in each)
    assert tfs["peak_rss_bytes"].details["pid"] == loaded
    assert "docker inspect" in tfs["peak_rss_bytes"].details["source"]
    assert tfs["idle_rss_bytes"].value > 50e6  # a TensorFlow process, not a thin CLI client

    # Recovery: docker kill, docker rm, a new container under the same name; time and losses real.
    argvs = [c["argv"] for c in _calls(state)]
    name = next(a[a.index("--name") + 1] for a in argvs if a[:1] == ["run"])
    kill_at = argvs.index(["kill", name])
    assert ["rm", "-f", name] in argvs[kill_at:]
    assert sum(1 for a in argvs[kill_at:] if a[:1] == ["run"]) == 1
    # The start-ups' containers, then the one started after the kill (the model update is in place).
    assert len(seen["container"]) == n_startups + 1 and not psutil.pid_exists(loaded), seen
    assert tfs["recovery_s"].value is not None and tfs["recovery_s"].value > 0
    assert tfs["recovery_lost_requests"].value > 0
    assert "docker kill" in tfs["recovery_s"].details["how"]

    # The thread budget, the CPU set and the memory limit reach the container.
    runs = [a for a in argvs if a[:1] == ["run"]]
    for a in runs:
        assert f"--memory={EXP['resources']['memory_mib']}m" in a
        env = {a[i + 1] for i, x in enumerate(a) if x == "-e"}
        assert {"OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"} <= env, a
        if RunStore(run_dir).read_meta().placement.get("pinned"):
            assert "--cpuset-cpus" in a

    # The image was pulled before the first `docker run` (outside the cold-start window), never
    # by `run` itself; the pull time is recorded apart.
    assert not [e for e in _events(state) if e["event"] == "pull_at_run"], _events(state)
    first_run = next(i for i, a in enumerate(argvs) if a[:1] == ["run"])
    assert any(a[:1] == ["pull"] for a in argvs[:first_run]), argvs[:first_run]
    runtime = RunStore(run_dir).read_meta().placement["tfserving_runtime"]
    assert runtime["image_pull_s"] >= PULL_S
    assert tfs["cold_start_ready_s"].value is not None
    # PID 1 gets signals through docker-init; the run's label lets the watchdog find it.
    for a in runs:
        assert "--init" in a and any(x.startswith("servecmp.run=") for x in a), a

    # Provenance: Docker mode, the pinned image, labelled as such; pinning read back.
    meta = RunStore(run_dir).read_meta()
    assert meta.placement["tfserving_runtime"]["mode"] == "docker"
    assert "docker: tensorflow/serving:" in meta.versions["tfserving"]
    if meta.placement.get("pinned"):
        assert runtime["pinning"]["in_effect"] is True, runtime["pinning"]
        assert "UNPINNED" not in meta.versions["tfserving"]
    assert any("include creating and starting the container" in n for n in meta.notes), meta.notes
    # The report says TF Serving's request counter includes non-inference requests.
    assert any("request_count counts every REST request" in note for note in meta.notes)

    # Normal exit: no container, no container process.
    assert not _containers(state)
    assert not _doubles_running(tmp_path)


def test_an_invisible_container_pid_is_a_reported_failure_and_leaves_nothing(
    shim_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_run_exports: Any
) -> None:
    """Docker Desktop / a remote engine: the container's pid is not ours to read. The target is
    reported unavailable with that reason (never measured from the client), the container goes."""
    from servecmp.run.orchestrate import run_experiment

    monkeypatch.setenv("DOCKER_SHIM_HIDE_PID", "1")
    run_dir = run_experiment(
        parse_experiment(EXP),
        runs_root=tmp_path / "runs",
        artifacts_root=tiny_run_exports(tmp_path / "build"),
        prometheus=False,
        report=False,
        friction_under_load=False,
    )
    avail = {a.target: a for a in RunStore(run_dir).read_targets()}
    assert not avail["tfserving-rest-json"].available
    assert "cannot see" in avail["tfserving-rest-json"].reason
    recs, _ = read_friction(run_dir)
    idle = next(r for r in recs if r.server == "tfserving" and r.metric == "idle_rss_bytes")
    assert not idle.available and "cannot see" in idle.reason
    assert not _containers(shim_env)
    assert not _doubles_running(tmp_path)


def test_ctrl_c_removes_the_container(
    shim_env: Path, tmp_path: Path, tiny_run_exports: Any
) -> None:
    # two levels: the signal lands while the second step runs (the first is on disk by then);
    # one start-up: the signal is the point, not repeated cold starts
    exp = dict(EXP, load=dict(EXP["load"], concurrency=[1, 2]), friction=run_budget.friction())
    exp_path = tmp_path / "exp.yaml"
    exp_path.write_text(yaml.safe_dump(exp))
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "servecmp.cli",
            "run",
            str(exp_path),
            "--runs",
            str(tmp_path / "runs"),
            "--artifacts",
            str(tiny_run_exports(tmp_path / "build")),
            "--no-report",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if list((tmp_path / "runs").glob("*/steps.jsonl")):
                break
            time.sleep(0.2)
        assert proc.poll() is None and _containers(shim_env), (tmp_path / "run.log").read_text()[
            -3000:
        ]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (_containers(shim_env) or _doubles_running(tmp_path)):
        time.sleep(0.2)
    assert not _containers(shim_env)
    assert not _doubles_running(tmp_path)


def test_kill_9_of_servecmp_run_leaves_no_container(
    shim_env: Path, tmp_path: Path, tiny_run_exports: Any
) -> None:
    """SIGKILL of `servecmp run`: no handler runs. The watchdog stops the `docker run` client's
    group (SIGTERM, which the proxy passes on; without --init the server is PID 1 and ignores
    it) and sweeps the run token, which a container's environment never holds: only the run
    label finds the container."""
    # two levels: the signal lands while the second step runs (the first is on disk by then);
    # one start-up: the signal is the point, not repeated cold starts
    exp = dict(EXP, load=dict(EXP["load"], concurrency=[1, 2]), friction=run_budget.friction())
    exp_path = tmp_path / "exp.yaml"
    exp_path.write_text(yaml.safe_dump(exp))
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "servecmp.cli",
            "run",
            str(exp_path),
            "--runs",
            str(tmp_path / "runs"),
            "--artifacts",
            str(tiny_run_exports(tmp_path / "build")),
            "--no-report",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if list((tmp_path / "runs").glob("*/steps.jsonl")):
                break
            time.sleep(0.2)
        assert proc.poll() is None and _containers(shim_env), (tmp_path / "run.log").read_text()[
            -3000:
        ]
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (_containers(shim_env) or _doubles_running(tmp_path)):
        time.sleep(0.2)
    assert not _doubles_running(tmp_path)
    assert not _containers(shim_env)
