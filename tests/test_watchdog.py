"""The per-run watchdog: kill -9 of the orchestrator leaves no process behind (no server needed).

An "orchestrator" script starts the watchdog, then a ManagedProcess whose shell starts one
grandchild in its group and one that escapes it with ``setsid`` (as a daemonising server
would), and a registered temp dir. After SIGKILL of the orchestrator, all of them must be gone
within 10 s and the temp dir removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from servecmp.run import watchdog

ORCHESTRATOR = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from servecmp.run import watchdog
    from servecmp.run.procs import ManagedProcess

    out = Path(sys.argv[1])
    watchdog.start(out / "watchdog.log")
    tmp = out / "private tmp"
    tmp.mkdir()
    watchdog.remove_on_exit(tmp)
    script = "sleep 300 & echo $! > '%s'; setsid sleep 301 & echo $! > '%s'; wait" % (
        out / "in-group.pid", out / "escaped.pid")
    p = ManagedProcess("server", ["sh", "-c", script], log_path=out / "server.log")
    (out / "leader.pid").write_text(str(p.pid))
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(paths: list[Path], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.is_file() and p.read_text().strip() for p in paths):
            return
        time.sleep(0.05)
    raise AssertionError(f"not written: {[str(p) for p in paths if not p.is_file()]}")


@pytest.mark.heavy
def test_kill_9_of_the_orchestrator_kills_its_whole_progeny(tmp_path: Path) -> None:
    out = tmp_path / "run dir"  # a space on purpose
    out.mkdir()
    orch = subprocess.Popen([sys.executable, "-c", ORCHESTRATOR, str(out)])
    pid_files = [out / n for n in ("leader.pid", "in-group.pid", "escaped.pid")]
    try:
        _wait_for(pid_files)
        pids = [int(p.read_text()) for p in pid_files]
        assert all(_alive(p) for p in pids)
        # the escaped one really left the group: killpg alone would miss it. Its pid is
        # written right after the fork, before the child has run setsid, so wait for it.
        deadline = time.monotonic() + 30
        while os.getpgid(pids[2]) == pids[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.getpgid(pids[2]) != pids[0]
        orch.send_signal(signal.SIGKILL)
        orch.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            any(_alive(p) for p in pids) or (out / "private tmp").exists()
        ):
            time.sleep(0.1)
        left = [p for p in pids if _alive(p)]
    finally:
        if orch.poll() is None:
            orch.kill()
    for p in [int(f.read_text()) for f in pid_files]:  # never leave them behind, even on failure
        if _alive(p):
            os.kill(p, signal.SIGKILL)
    assert not left, f"still running 10 s after kill -9 of the orchestrator: {left}"
    assert not (out / "private tmp").exists()


def test_clean_exit_stops_the_watchdog_and_drops_the_token(tmp_path: Path) -> None:
    wd = watchdog.Watchdog(tmp_path / "wd.log")
    try:
        assert os.environ[watchdog.RUN_TOKEN_ENV] == wd.token
        child = subprocess.Popen(["sleep", "60"], start_new_session=True)
        wd.register(child.pid)
        assert watchdog.processes_with_token(wd.token) == [child.pid]
    finally:
        wd.close()
    assert wd.popen.returncode == 0
    assert watchdog.RUN_TOKEN_ENV not in os.environ
    # a group still registered at the end is stopped too (nothing outlives a run)
    assert child.wait(timeout=10) == -signal.SIGTERM


@pytest.mark.heavy
def test_the_sweep_removes_the_runs_labelled_containers_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's processes see only its -e variables, so no token reaches them: the sweep
    removes containers by the run label (tests/shims/docker stands for the engine)."""
    shims = Path(__file__).resolve().parent / "shims"
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_SHIM_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_SHIM_PYTHON", sys.executable)
    monkeypatch.setenv("DOCKER_SHIM_PULL_S", "0")

    def create(name: str, token: str) -> None:  # kept after it exits: no --rm
        subprocess.run(
            [
                "docker",
                "run",
                "--name",
                name,
                "--label",
                f"{watchdog.RUN_LABEL}={token}",
                "--entrypoint",
                "/usr/bin/tensorflow_model_server",
                "tensorflow/serving:2.20.0",
                "--version",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )

    def names() -> set[str]:
        return {p.stem for p in (tmp_path / "state" / "containers").glob("*.json")}

    create("ours", "t1")
    create("theirs", "t2")
    assert names() == {"ours", "theirs"}
    watchdog.clean_up(set(), "t1", set(), grace_s=0.1)
    assert names() == {"theirs"}
