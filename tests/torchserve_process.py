"""Start / wait for / stop a REAL local TorchServe for tests (not a double).

Minimal on purpose: the project's real local runtime lives in deploy/local/ and generates the
config from the experiment; this writes just enough config.properties to serve exported .mars.
Each instance gets its own TMPDIR (the pid file lives there: one server per TMPDIR), TEMP
(becomes java.io.tmpdir, where the workers' UNIX sockets ``.ts.sock.9000...`` live: default /tmp,
so two servers on one machine would steal each other's worker sockets) and cwd (its ./logs).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class LocalTorchServe:
    proc: subprocess.Popen[bytes]
    workdir: Path
    inference_url: str
    management_url: str
    metrics_url: str
    grpc_port: int

    def log_tail(self, n: int = 25) -> str:
        lines: list[str] = []
        for name in ("ts_log.log", "model_log.log"):
            p = self.workdir / "logs" / name
            if p.is_file():
                lines += [f"--- {name}", *p.read_text(errors="replace").splitlines()[-n:]]
        out = self.workdir / "stdout.log"
        if out.is_file():
            lines += ["--- stdout", *out.read_text(errors="replace").splitlines()[-n:]]
        return "\n".join(lines)

    def wait_ready(self, model: str, timeout_s: float = 120.0) -> dict:
        """Poll GET /models/<model> until a worker is READY (/ping alone says nothing about workers)."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"torchserve exited ({self.proc.returncode}):\n{self.log_tail()}")
            ts_log = self.workdir / "logs" / "ts_log.log"
            if ts_log.is_file() and f"Load model failed: {model}," in ts_log.read_text(errors="replace"):
                # the worker crash-loops with back-off; waiting on won't help
                raise RuntimeError(f"model {model!r} failed to load:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.management_url}/models/{model}", timeout=2) as r:
                    desc = json.loads(r.read())[0]
                if any(w.get("status") == "READY" for w in desc.get("workers", [])):
                    return desc
                last = json.dumps(desc.get("workers"))
            except (urllib.error.URLError, OSError, ValueError) as err:
                last = str(err)
            time.sleep(0.5)
        raise TimeoutError(f"model {model!r} not READY after {timeout_s} s ({last}):\n{self.log_tail()}")

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the whole process group (CLI, JVM and Python workers); SIGKILL what lingers."""
        if self.proc.poll() is None or _group_alive(self.proc.pid):
            _signal_group(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _group_alive(self.proc.pid) and time.monotonic() < deadline:
                self.proc.poll()
                time.sleep(0.2)
            _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def group_pids(pgid: int) -> list[int]:
    """Processes still in the group (via /proc; Linux)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            # field 5 (pgrp) comes after the ")" that ends the command name
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                pids.append(int(d.name))
    return pids


def start_torchserve(model_store: Path, mars: dict[str, str], workdir: Path) -> LocalTorchServe:
    """Serve ``mars`` ({served name: .mar file in model_store}) from a fresh TorchServe."""
    exe = Path(sys.executable).with_name("torchserve")
    if not exe.is_file() or shutil.which("java") is None:
        raise RuntimeError("needs the torchserve CLI next to this Python and java on PATH")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    inf, mgmt, met, grpc_inf, grpc_mgmt = free_ports(5)
    load = ",".join(f"{name}={mar}" for name, mar in mars.items())
    config = workdir / "config.properties"
    config.write_text(
        "\n".join(
            [
                f"inference_address=http://127.0.0.1:{inf}",
                f"management_address=http://127.0.0.1:{mgmt}",
                f"metrics_address=http://127.0.0.1:{met}",
                "grpc_inference_address=127.0.0.1",
                "grpc_management_address=127.0.0.1",
                f"grpc_inference_port={grpc_inf}",
                f"grpc_management_port={grpc_mgmt}",
                "disable_token_authorization=true",
                "metrics_mode=prometheus",
                f"model_store={model_store}",
                f"load_models={load}",
                "default_workers_per_model=1",
                "install_py_dep_per_model=false",
                "",
            ]
        )
    )
    tmp = str(workdir / "tmp")
    env = {**os.environ, "TMPDIR": tmp, "TEMP": tmp, "SERVECMP_INTRA_OP_THREADS": "1"}
    with open(workdir / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            [str(exe), "--start", "--foreground", "--ncs", "--ts-config", str(config),
             "--model-store", str(model_store)],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() reaches the JVM and workers
        )
    return LocalTorchServe(
        proc=proc,
        workdir=workdir,
        inference_url=f"http://127.0.0.1:{inf}",
        management_url=f"http://127.0.0.1:{mgmt}",
        metrics_url=f"http://127.0.0.1:{met}",
        grpc_port=grpc_inf,
    )
