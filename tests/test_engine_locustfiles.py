"""The thin locustfiles run headless from the Locust CLI against a local echo endpoint (~10 s)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_engine_doubles import REPO, save_echo_payloads, start_echo_server

pytestmark = pytest.mark.load

LOCUST = str(REPO / ".venv" / "bin" / "locust")
EXP = """name: lf-test
model: tiny
targets:
  - {server: torchserve, protocol: rest, encoding: raw}
load:
  profile: rate_sweep
  arrival: uniform
  warmup_s: 0.5
  rate: 20
  rates: [10, 200]
  slo_p99_ms: 150
  stability: {window_s: 1, windows: 2, max_windows: 2}
"""


@pytest.fixture
def endpoint():
    proc, address = start_echo_server(20.0, serial=True)
    yield address
    proc.kill()
    proc.wait()


def _locust(
    tmp_path: Path, address: str, locustfile: str, *extra: str
) -> subprocess.CompletedProcess:
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXP)
    env = dict(
        os.environ,
        SERVECMP_EXPERIMENT=str(exp),
        SERVECMP_ADDRESS=address,
        SERVECMP_PAYLOADS=save_echo_payloads(tmp_path),
        SERVECMP_MAX_IN_FLIGHT="4",
    )
    return subprocess.run(
        [
            LOCUST,
            "-f",
            str(REPO / "loadtests" / "locustfiles" / locustfile),
            "--headless",
            "--only-summary",
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_rate_sweep_locustfile_stops_at_slo(tmp_path: Path, endpoint: str) -> None:
    out = _locust(tmp_path, endpoint, "rate_sweep.py")
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-2000:]
    assert "rate sweep stopped" in log and "at 200 req/s; last passing rate 10" in log
    assert "late=" in log


def test_closed_loop_locustfile_refuses_remote_address(tmp_path: Path) -> None:
    out = _locust(tmp_path, "192.0.2.1:8080", "closed_loop.py", "-u", "1", "-t", "1s")
    assert out.returncode != 0 and "refusing to send load" in out.stderr


def test_closed_loop_locustfile_runs_from_the_web_ui(tmp_path: Path) -> None:
    """Locust's web UI (on 127.0.0.1 only) starts a swarm of our users; their requests are
    reported under the target's name, and stopping works."""
    import socket
    import time

    import requests

    proc_echo, address = start_echo_server(1.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        ui_port = s.getsockname()[1]
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXP.replace("profile: rate_sweep", "profile: closed_loop"))
    env = dict(
        os.environ,
        SERVECMP_EXPERIMENT=str(exp),
        SERVECMP_ADDRESS=address,
        SERVECMP_PAYLOADS=save_echo_payloads(tmp_path),
    )
    ui = subprocess.Popen(
        [
            LOCUST,
            "-f",
            str(REPO / "loadtests/locustfiles/closed_loop.py"),
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(ui_port),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{ui_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and ui.poll() is None, "web UI never came up"
            time.sleep(0.2)
        r = requests.post(
            f"{base}/swarm",
            data={"user_count": 2, "spawn_rate": 2, "host": f"http://{address}"},
            timeout=10,
        )
        assert r.status_code == 200 and r.json().get("success"), r.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stats = requests.get(f"{base}/stats/requests", timeout=5).json()
            rows = {s["name"]: s for s in stats["stats"]}
            if rows.get("torchserve-rest-raw", {}).get("num_requests", 0) > 20:
                break
            time.sleep(0.5)
        assert rows["torchserve-rest-raw"]["num_failures"] == 0
        assert rows["torchserve-rest-raw"]["num_requests"] > 20
        assert requests.post(f"{base}/stop", timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while requests.get(f"{base}/stats/requests", timeout=5).json()["state"] != "stopped":
            assert time.monotonic() < deadline, "the swarm did not stop"
            time.sleep(0.2)
    finally:
        ui.terminate()
        ui.wait(timeout=30)
        proc_echo.kill()
        proc_echo.wait()


def test_open_loop_locustfile_refuses_to_split_its_schedule_over_processes(tmp_path: Path) -> None:
    out = _locust(tmp_path, "127.0.0.1:9", "open_loop.py", "--processes", "2", "-t", "2s")
    assert out.returncode != 0
    assert "open-loop profiles run in a single Locust process" in out.stdout + out.stderr
