"""TorchServe as local processes: launcher + JVM + Python workers, started from the generated config."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import requests

from servecmp.run import watchdog
from servecmp.run.procs import ManagedProcess
from servecmp.run.server import Endpoints, LocalServer, ServerUnavailable
from servecmp.servers.torchserve import WIRE


def _bin(name: str) -> str | None:
    # Prefer the running interpreter's venv: the README's setup installs TorchServe there.
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else shutil.which(name)


class TorchServeServer(LocalServer):
    name = "torchserve"

    _tmp: Path | None = None  # private TMPDIR/TEMP of the running instance

    @classmethod
    def availability(cls) -> str | None:
        if _bin("torchserve") is None:
            return "torchserve is not installed (pip install torchserve==0.12.0; run `make setup`)"
        if shutil.which("java") is None:
            return "java not found: TorchServe 0.12 needs a JDK/JRE 17 (apt-get install openjdk-17-jre-headless)"
        return None

    @property
    def endpoints(self) -> Endpoints:
        pl = self.configs.placement
        host = pl.bind_host
        return Endpoints(
            rest=f"{host}:{pl.port(self.name, 'rest')}",
            grpc=f"{host}:{pl.port(self.name, 'grpc')}",
            metrics_url=f"http://{host}:{pl.port(self.name, 'metrics')}{WIRE.metrics_path}",
            management_url=f"http://{host}:{pl.port(self.name, 'management')}",
        )

    def start(self) -> None:
        reason = self.availability()
        if reason:
            raise ServerUnavailable(reason)
        logs = self.log_dir(self.run_dir)
        # TorchServe keeps its pid file in $TMPDIR/.model_server.pid (one instance per TMPDIR) and
        # the JVM puts the workers' Unix sockets in $TEMP: a private short directory per instance
        # (AF_UNIX paths are limited to 108 bytes, so not under a possibly deep run dir).
        if self._tmp is not None:  # a restart (recovery test)
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = Path(tempfile.mkdtemp(prefix="servecmp-ts-"))
        tmp = self._tmp
        watchdog.remove_on_exit(tmp)  # also when we are killed
        env = {
            "TMPDIR": str(tmp),
            "TEMP": str(tmp),  # shared, a second TorchServe would take over our worker sockets
            "LOG_LOCATION": str(logs),
            "METRICS_LOCATION": str(logs),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **self.configs.env[self.name],
        }
        argv = [
            str(_bin("torchserve")),
            "--start",
            "--foreground",  # the launcher stays the group leader we stop
            "--ncs",  # no config snapshots: the generated file is the only config
            "--ts-config",
            str(self.config_dir / "config.properties"),
            "--model-store",
            self.configs.placement.path(self.name, "models"),
        ]
        self.process = ManagedProcess(
            self.name, argv, log_path=logs / "console.log", cwd=logs, env=env, cpus=self.cpus
        )
        self.started_at = self.process.started_at

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def is_ready(self) -> bool:
        # /ping says Healthy before any worker is up; a READY worker is what serves requests.
        assert self.endpoints.management_url
        r = requests.get(f"{self.endpoints.management_url}/models/{self.model_name}", timeout=2)
        if r.status_code != 200:
            return False
        return any(w.get("status") == "READY" for m in r.json() for w in m.get("workers", []))

    # -- model update through the management API (friction measurement) -----------------------
    def register_version(self, mar_name: str, version: str) -> None:
        mgmt = self.endpoints.management_url
        r = requests.post(
            f"{mgmt}/models",
            params={"url": mar_name, "initial_workers": "1", "synchronous": "true"},
            timeout=120,
        )
        r.raise_for_status()
        r = requests.put(f"{mgmt}/models/{self.model_name}/{version}/set-default", timeout=30)
        r.raise_for_status()
