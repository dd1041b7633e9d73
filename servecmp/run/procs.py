"""Child processes that are always stopped: on normal exit, Ctrl-C, SIGTERM and failure.

Each server starts in its own session (process group), so stopping it takes the whole tree —
TorchServe's launcher, its JVM and the Python workers — and nothing is left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

from servecmp.run import watchdog

_RUNNING: set[ManagedProcess] = set()
_LOCK = threading.Lock()


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        cpus: Sequence[int] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.on_stop = on_stop  # extra clean-up, e.g. removing the container a client started
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        # the exact command, shell-quoted (paths may hold spaces), so it can be re-run by hand
        self._log.write(f"$ {shlex.join(self.argv)}\n".encode())
        self._log.flush()
        cpuset = set(cpus) if cpus else None

        def _pin() -> None:  # runs in the child before exec: the whole tree inherits it
            if cpuset:
                os.sched_setaffinity(0, cpuset)

        full_env = dict(os.environ)
        full_env.update(env or {})
        self.started_at = time.time()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_pin,
        )
        self.pid = self.popen.pid
        watchdog.register(self.pid)  # its own session: pgid == pid
        with _LOCK:
            _RUNNING.add(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        """This process and every descendant still running (for RSS / CPU accounting)."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _group_members(self) -> list[psutil.Process]:
        out = []
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(p.pid) == self.pid:
                    out.append(p)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return out

    def kill_hard(self) -> None:
        """SIGKILL the whole group now (used to simulate a crash)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the group, wait, then SIGKILL whatever is left of it."""
        if self.on_stop is not None:
            with contextlib.suppress(Exception):
                self.on_stop()
        members = self._group_members() or self.tree()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=timeout)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
        self._log.close()
        watchdog.unregister(self.pid)
        with _LOCK:
            _RUNNING.discard(self)
        return self.popen.returncode

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def stop_all() -> None:
    with _LOCK:
        procs = list(_RUNNING)
    for p in procs:
        p.stop(timeout=5)


def _on_signal(signum: int, _frame: object) -> None:
    stop_all()
    # Re-raise as the usual exception so callers' finally blocks run and the exit code is right.
    raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)


def install_handlers() -> None:
    """Stop every child on exit and on SIGTERM/SIGHUP/SIGINT (call once from the CLI)."""
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _on_signal)


def running() -> list[ManagedProcess]:
    with _LOCK:
        return list(_RUNNING)
