"""A per-run watchdog: whatever kills the orchestrator (even ``kill -9``), what it started dies.

Signal handlers and ``atexit`` cannot run after SIGKILL, and ``PR_SET_PDEATHSIG`` only reaches
direct children: TorchServe's launcher starts the JVM with a plain ``subprocess.Popen``
(pytorch/serve v0.12.0 ``ts/model_server.py``), and the JVM starts the Python workers with
``Runtime.exec`` (``frontend/.../wlm/WorkerLifeCycle.java``), so the JVM and workers are
grandchildren. So each run starts one small watchdog process (its own session, so a Ctrl-C
of the terminal does not reach it) that holds the read end of a pipe; the orchestrator keeps
the only write end. The kernel closes it when the orchestrator dies, however it dies; the
watchdog then reads EOF and

1. SIGTERMs, then after ``grace_s`` SIGKILLs, every process group the orchestrator registered
   (servers, Prometheus, step processes: each runs in its own session whose pgid is its pid);
2. SIGKILLs every process that carries the run's token in its environment (``RUN_TOKEN_ENV``,
   exported to every child: the JVM passes its whole environment on to the workers,
   ``EnvironmentUtils.getEnvString`` in v0.12.0) — this catches anything that left its group;
3. removes every Docker container labelled ``RUN_LABEL=<token>`` (``docker ps -q --filter
   label=...`` then ``docker rm -f``): a container's processes see only its ``-e`` variables, so
   step 2 cannot find them, and they are not in any of our process groups;
4. removes the temporary directories registered with it (TorchServe's private TMPDIR).

The protocol on the pipe is one line per message: ``+PGID``, ``-PGID``, ``dPATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

RUN_TOKEN_ENV = "SERVECMP_RUN_TOKEN"
RUN_LABEL = "servecmp.run"  # docker run --label servecmp.run=<token>
DOCKER_TIMEOUT_S = 30.0

_active: Watchdog | None = None


def processes_with_token(token: str, *, exclude: set[int] | None = None) -> list[int]:
    """PIDs whose (initial) environment holds ``RUN_TOKEN_ENV=token`` (walks /proc)."""
    needle = f"{RUN_TOKEN_ENV}={token}".encode()
    skip = exclude or set()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if needle in env.split(b"\0"):
            out.append(int(entry))
    return out


def remove_labelled_containers(token: str) -> list[str]:
    """``docker rm -f`` every container (running or not) labelled with this run's token; the ids
    removed. Without a ``docker`` on PATH there is nothing to remove."""
    if shutil.which("docker") is None:
        return []
    try:
        out = subprocess.run(
            ["docker", "ps", "-a", "-q", "--filter", f"label={RUN_LABEL}={token}"],
            capture_output=True,
            text=True,
            timeout=DOCKER_TIMEOUT_S,
        )
        ids = out.stdout.split() if out.returncode == 0 else []
        if ids:
            subprocess.run(
                ["docker", "rm", "-f", *ids],
                capture_output=True,
                text=True,
                timeout=DOCKER_TIMEOUT_S,
            )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ids


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    return _signal_group(pgid, 0)


def clean_up(
    pgids: set[int],
    token: str | None,
    paths: set[str],
    *,
    grace_s: float = 3.0,
    exclude: set[int] | None = None,
) -> None:
    """Stop the registered groups (TERM, then KILL), every token holder, remove the paths."""
    for g in pgids:
        _signal_group(g, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_group_alive(g) for g in pgids):
        time.sleep(0.1)
    for g in pgids:
        _signal_group(g, signal.SIGKILL)
    if token:
        remove_labelled_containers(token)
        # a few passes: a process may fork while we sweep
        for _ in range(5):
            pids = processes_with_token(token, exclude={os.getpid(), *(exclude or set())})
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


class Watchdog:
    """The orchestrator's side: start the watchdog, tell it what to clean up."""

    def __init__(self, log_path: Path | None = None, *, grace_s: float = 3.0) -> None:
        self.token = uuid.uuid4().hex
        read_fd, self._write_fd = os.pipe()  # both non-inheritable (PEP 446)
        log = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "servecmp.run.watchdog",
                    "--fd",
                    str(read_fd),
                    "--token",
                    self.token,
                    "--parent",
                    str(os.getpid()),
                    "--grace-s",
                    str(grace_s),
                ],
                pass_fds=(read_fd,),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            os.close(read_fd)
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        # every child started from now on carries the token (and so does their progeny)
        os.environ[RUN_TOKEN_ENV] = self.token

    def _send(self, line: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write_fd, (line + "\n").encode())

    def register(self, pgid: int) -> None:
        self._send(f"+{pgid}")

    def unregister(self, pgid: int) -> None:
        self._send(f"-{pgid}")

    def remove_on_exit(self, path: str | os.PathLike[str]) -> None:
        self._send(f"d{os.fspath(path)}")

    def close(self, timeout_s: float = 30.0) -> None:
        """Normal end: close the pipe, the watchdog sweeps (nothing should be left) and exits."""
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        if os.environ.get(RUN_TOKEN_ENV) == self.token:
            del os.environ[RUN_TOKEN_ENV]
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()


def start(log_path: Path | None = None) -> Watchdog:
    """Start this process's watchdog (one per orchestrator; later calls return the same one)."""
    global _active
    if _active is None:
        _active = Watchdog(log_path)
    return _active


def stop() -> None:
    global _active
    if _active is not None:
        _active.close()
        _active = None


def register(pgid: int) -> None:
    """Tell the watchdog (if one runs) to kill process group ``pgid`` if we die."""
    if _active is not None:
        _active.register(pgid)


def unregister(pgid: int) -> None:
    if _active is not None:
        _active.unregister(pgid)


def remove_on_exit(path: str | os.PathLike[str]) -> None:
    if _active is not None:
        _active.remove_on_exit(path)


# Entry point of the watchdog child process that Watchdog (above) spawns.
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m servecmp.run.watchdog", description=__doc__)
    ap.add_argument("--fd", type=int, required=True, help="read end of the orchestrator's pipe")
    ap.add_argument("--token", required=True)
    ap.add_argument("--parent", type=int, default=0, help="the orchestrator (never killed here)")
    ap.add_argument("--grace-s", type=float, default=3.0)
    args = ap.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # only the pipe's EOF ends us
    pgids: set[int] = set()
    paths: set[str] = set()
    buf = b""
    with os.fdopen(args.fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(4096):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "surrogateescape")
                if line[:1] == "+" and line[1:].isdigit():
                    pgids.add(int(line[1:]))
                elif line[:1] == "-" and line[1:].isdigit():
                    pgids.discard(int(line[1:]))
                elif line[:1] == "d" and len(line) > 1:
                    paths.add(line[1:])
    clean_up(pgids, args.token, paths, grace_s=args.grace_s, exclude={args.parent})
    return 0


if __name__ == "__main__":
    sys.exit(main())
