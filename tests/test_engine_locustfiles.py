"""The thin locustfiles run headless from the Locust CLI against a local echo endpoint (~10 s)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_engine_doubles import REPO, save_echo_payloads, start_echo_server

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


def _locust(tmp_path: Path, address: str, locustfile: str, *extra: str) -> subprocess.CompletedProcess:
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXP)
    env = dict(os.environ, SERVECMP_EXPERIMENT=str(exp), SERVECMP_ADDRESS=address,
               SERVECMP_PAYLOADS=save_echo_payloads(tmp_path), SERVECMP_MAX_IN_FLIGHT="4")
    return subprocess.run([LOCUST, "-f", str(REPO / "loadtests" / "locustfiles" / locustfile), "--headless",
                           "--only-summary", *extra], env=env, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_rate_sweep_locustfile_stops_at_slo(tmp_path: Path, endpoint: str) -> None:
    out = _locust(tmp_path, endpoint, "rate_sweep.py")
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-2000:]
    assert "rate sweep stopped" in log and "at 200 req/s; last passing rate 10" in log
    assert "late=" in log


def test_closed_loop_locustfile_refuses_remote_address(tmp_path: Path) -> None:
    out = _locust(tmp_path, "192.0.2.1:8080", "closed_loop.py", "-u", "1", "-t", "1s")
    assert out.returncode != 0 and "refusing to send load" in out.stderr
