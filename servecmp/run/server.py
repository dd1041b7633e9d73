"""What every locally started server offers the orchestrator."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import requests

from servecmp.configgen import GeneratedConfigs
from servecmp.experiment import Protocol
from servecmp.run.procs import ManagedProcess


class ServerUnavailable(RuntimeError):
    """The server cannot run on this machine; the message is the reason shown in results."""


class ServerFailed(RuntimeError):
    """The server started but died or never became ready; the message carries its log tail."""


@dataclass(frozen=True)
class Endpoints:
    rest: str  # host:port
    grpc: str  # host:port
    metrics_url: str  # full URL Prometheus scrapes
    management_url: str | None = None


class LocalServer(ABC):
    name: str

    def __init__(
        self,
        configs: GeneratedConfigs,
        config_dir: Path,
        run_dir: Path,
        model_name: str,
        cpus: tuple[int, ...] | None = None,
        memory_mib: int | None = None,
    ) -> None:
        self.configs = configs  # the generated files this server starts from
        self.config_dir = config_dir
        self.run_dir = run_dir
        self.model_name = model_name
        self.cpus = cpus  # CPU set the whole process tree is pinned to (None: not pinned)
        self.memory_mib = memory_mib  # memory limit where the runtime can enforce one (Docker)
        self.process: ManagedProcess | None = None
        self.started_at: float | None = None
        self.ready_at: float | None = None

    @classmethod
    @abstractmethod
    def availability(cls) -> str | None:
        """None when the server can run here, else the reason it cannot."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def is_ready(self) -> bool: ...

    @property
    @abstractmethod
    def endpoints(self) -> Endpoints:
        """Where this server answers, derived from its generated configs' placement."""

    def address(self, protocol: Protocol) -> str:
        return self.endpoints.grpc if protocol is Protocol.grpc else self.endpoints.rest

    def wait_ready(self, timeout_s: float = 120.0, poll_s: float = 0.2) -> float:
        """Block until ready; returns seconds from start. Fails fast if the process died."""
        assert self.started_at is not None, "start() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and not self.process.alive():
                raise ServerFailed(
                    f"{self.name} exited with code {self.process.popen.returncode} before it was ready; "
                    f"log {self.process.log_path}:\n{self.process.log_tail()}"
                )
            try:
                if self.is_ready():
                    self.ready_at = time.time()
                    return self.ready_at - self.started_at
            except requests.RequestException:
                pass
            time.sleep(poll_s)
        tail = self.process.log_tail() if self.process else ""
        raise ServerFailed(f"{self.name} not ready after {timeout_s:.0f} s; log tail:\n{tail}")

    # ---- what is measured and how it is disrupted (Docker mode overrides these) -------------
    def measured_pid(self) -> int | None:
        """Root of the process tree whose memory and CPU are the server's (None: not running)."""
        return self.process.pid if self.process is not None and self.process.alive() else None

    @property
    def resource_source(self) -> str:
        return "process tree of the server process started by servecmp"

    @property
    def kill_description(self) -> str:
        return "SIGKILL of the process group, restarted by the local runtime (no supervisor)"

    def kill_hard(self) -> None:
        """Crash the server now (SIGKILL, no clean shutdown) and reap what is left."""
        if self.process is not None:
            self.process.kill_hard()
            self.process.stop(timeout=5)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log_dir(self, run_dir: Path) -> Path:
        d = run_dir / "logs" / self.name
        d.mkdir(parents=True, exist_ok=True)
        return d
