"""TF Serving locally: the ``tensorflow_model_server`` binary on PATH, or the official image
when a Docker engine answers. Otherwise the target is reported unavailable — never replaced."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import requests

from servecmp.deploy.local.procs import ManagedProcess
from servecmp.deploy.local.server import Endpoints, LocalServer, ServerUnavailable

BINARY = "tensorflow_model_server"
CHART_VALUES = Path(__file__).resolve().parents[2] / "helm/servecmp/charts/tfserving/values.yaml"


def pinned_image() -> str:
    """The TF Serving image pinned in the Helm chart: local Docker runs use the same one."""
    import yaml

    if not CHART_VALUES.is_file():
        raise ServerUnavailable(
            f"{CHART_VALUES} not found: the TF Serving image tag is pinned in the Helm chart; "
            "run servecmp from a repository checkout to use Docker"
        )
    img = yaml.safe_load(CHART_VALUES.read_text())["image"]
    return f"{img['repository']}:{img['tag']}"


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class TFServingServer(LocalServer):
    name = "tfserving"

    mode: str | None = None  # "binary" or "docker", decided at start

    @classmethod
    def availability(cls) -> str | None:
        if shutil.which(BINARY):
            return None
        if docker_answers():
            return None
        return (
            f"`{BINARY}` is not on PATH and no Docker engine answers (`docker info`); install the "
            "binary from Google's apt repository or run Docker to use the tensorflow/serving image"
        )

    @property
    def endpoints(self) -> Endpoints:
        # The binary has no listen-address flag: it binds every interface; we dial loopback.
        p = self.configs.placement.ports
        return Endpoints(
            rest=f"127.0.0.1:{p.tfs_rest}",
            grpc=f"127.0.0.1:{p.tfs_grpc}",
            metrics_url=f"http://127.0.0.1:{p.tfs_rest}/monitoring/prometheus/metrics",
        )

    def _argv(self) -> list[str]:
        flags = self.configs.tfserving_flags()
        binary = shutil.which(BINARY)
        if binary:
            self.mode = "binary"
            return [binary, *flags]
        if docker_answers():
            self.mode = "docker"
            pl = self.configs.placement
            p = pl.ports
            cpus = ",".join(map(str, self.cpus)) if self.cpus else None
            # The flags reference host paths; mount them at the same paths inside the container.
            return [
                "docker", "run", "--rm", "--name", f"servecmp-tfs-{p.tfs_rest}",
                "-p", f"127.0.0.1:{p.tfs_grpc}:{p.tfs_grpc}",
                "-p", f"127.0.0.1:{p.tfs_rest}:{p.tfs_rest}",
                "-v", f"{pl.tfs_model_root}:{pl.tfs_model_root}:ro",
                "-v", f"{pl.tfs_config_dir}:{pl.tfs_config_dir}:ro",
                *(["--cpuset-cpus", cpus] if cpus else []),
                "--entrypoint", BINARY, pinned_image(), *flags,
            ]  # fmt: skip
        raise ServerUnavailable(self.availability() or "TF Serving unavailable")

    def start(self) -> None:
        argv = self._argv()
        logs = self.log_dir(self.run_dir)
        self.process = ManagedProcess(
            self.name,
            argv,
            log_path=logs / "console.log",
            cwd=logs,
            env=self.configs.env["tfserving"],
            cpus=self.cpus if self.mode == "binary" else None,
        )
        self.started_at = self.process.started_at

    def is_ready(self) -> bool:
        r = requests.get(f"http://{self.endpoints.rest}/v1/models/{self.model_name}", timeout=2)
        if r.status_code != 200:
            return False
        states = [v.get("state") for v in r.json().get("model_version_status", [])]
        return "AVAILABLE" in states

    def stop(self) -> None:
        if self.mode == "docker":
            subprocess.run(
                ["docker", "rm", "-f", f"servecmp-tfs-{self.configs.placement.ports.tfs_rest}"],
                capture_output=True,
                timeout=30,
            )
        super().stop()
