"""TF Serving locally: the ``tensorflow_model_server`` binary on PATH, or the official image
when a Docker engine answers. Otherwise the target is reported unavailable — never replaced.

Docker mode measures the *container*, not the ``docker run`` client: resources come from the
container's main process (``docker inspect -f '{{.State.Pid}}'``, a host pid) and its
descendants; the recovery probe kills the container (``docker kill``), removes it and starts a
new one; the thread environment reaches it with ``-e``, and it gets the server CPU set
(``--cpuset-cpus``) and a memory limit equal to the budget (``--memory``), both read back after
start (pinning.py). The image is pulled before the cold-start clock starts (its time is recorded
apart); a cold start and a recovery still include creating the container.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from typing import Any

import psutil
import requests

from servecmp import versions
from servecmp.run.procs import ManagedProcess
from servecmp.run.server import Endpoints, LocalServer, ServerFailed, ServerUnavailable
from servecmp.run.watchdog import RUN_LABEL, RUN_TOKEN_ENV
from servecmp.servers.tfserving import WIRE, pinning
from servecmp.servers.tfserving.config import flag_lines

BINARY = "tensorflow_model_server"
# tensorflow_serving/tools/docker/Dockerfile (2.20.0): `COPY ... /usr/bin/tensorflow_model_server`;
# its entrypoint script hard-codes --port/--rest_api_port/--model_name, so we replace it.
IMAGE_BINARY = "/usr/bin/tensorflow_model_server"
DOCKER_TIMEOUT_S = 30
# image -> seconds its pull took in this process (a run starts the server several times)
_PULLED_S: dict[str, float] = {}
PULL_TIMEOUT_S = 1800.0  # a ~0.5 GB image on a slow link; bounded like every wait here
# Stated with every run that measured TF Serving: its request counter is not an inference count.
REQUEST_COUNT_NOTE = (
    "TF Serving's :tensorflow:serving:request_count counts every REST request, model-status GETs "
    "and readiness probes included (model_servers/http_server.cc, 2.20.0: RecordModelRequestCount "
    "for each request): it is not compared one-to-one with the harness's inference count; "
    'request_latency with API="predict"/"Predict" is.'
)


DOCKER_START_NOTE = (
    "TF Serving in Docker mode: its cold start and its recovery time include creating and "
    "starting the container (the image was pulled beforehand; the pull time is recorded apart)"
)


def docker_start_note(prov: dict[str, Any]) -> str | None:
    if prov.get("mode") != "docker":
        return None
    pull = prov.get("image_pull_s")
    return DOCKER_START_NOTE + (f": image pulled in {pull:.1f} s before the start" if pull else "")


def unpinned_note(prov: dict[str, Any]) -> str | None:
    pin = prov.get("pinning") or {}
    if pin.get("in_effect") is not False:
        return None
    return (
        "TF Serving ran UNPINNED: the CPU set / memory limit asked for did not take effect ("
        + "; ".join(pin.get("problems", []))
        + "); its numbers are not comparable with pinned servers'"
    )


def pinned_image() -> str:
    """The TF Serving image local Docker runs use: the same pin as the Helm chart's image.tag."""
    return versions.tf_serving_image()


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _docker(*args: str, timeout: float = DOCKER_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def ensure_image(image: str) -> float | None:
    """Pull ``image`` unless the engine has it; returns the pull's seconds (None: already there).
    ``docker run`` would otherwise pull inside the cold-start window and a slow registry would
    turn into a start-up timeout."""
    try:
        if _docker("image", "inspect", image).returncode == 0:
            return None
        t0 = time.monotonic()
        out = _docker("pull", image, timeout=PULL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ServerUnavailable(
            f"docker pull {image} did not finish in {PULL_TIMEOUT_S:.0f} s"
        ) from None
    except OSError as err:
        raise ServerUnavailable(f"docker pull {image}: {err}") from None
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ServerUnavailable(f"docker pull {image} failed: {tail[0]}")
    return time.monotonic() - t0


def binary_version(binary: str) -> str | None:
    """``tensorflow_model_server --version`` (main.cc prints ``TensorFlow ModelServer: <v>``)."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return versions.release_of(out.stdout + out.stderr)


def provenance_label(prov: dict[str, Any]) -> str:
    """meta.versions["tfserving"]: the version that served, how, and whether it is the pin."""
    where = prov.get("image") if prov["mode"] == "docker" else prov.get("binary")
    digest = f"@{prov['digest'].split('@')[-1]}" if prov.get("digest") else ""
    label = "" if prov["matches_pin"] else f", NOT the pinned {prov['pinned']}"
    if (prov.get("pinning") or {}).get("in_effect") is False:
        label += ", UNPINNED"
    return f"{prov['version'] or 'unknown'} ({prov['mode']}: {where}{digest}{label})"


def mismatch_note(prov: dict[str, Any]) -> str | None:
    if prov["matches_pin"]:
        return None
    return (
        f"TF Serving: the {prov['mode']} in use ({prov.get('binary') or prov.get('image')}) "
        f"reports version {prov['version'] or 'unknown'}, the pin is {prov['pinned']}: it was used, "
        "and its numbers are labelled with the version that actually served"
    )


class TFServingServer(LocalServer):
    name = "tfserving"

    mode: str | None = None  # "binary" or "docker", decided at start

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._container_pid: int | None = None
        self.image_pull_s: float | None = None  # None: the image was already there

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

    def _port(self, role: str) -> int:
        return self.configs.placement.port(self.name, role)

    @property
    def endpoints(self) -> Endpoints:
        # The binary has no listen-address flag: it binds every interface; we dial loopback.
        return Endpoints(
            rest=f"127.0.0.1:{self._port('rest')}",
            grpc=f"127.0.0.1:{self._port('grpc')}",
            metrics_url=f"http://127.0.0.1:{self._port('metrics')}{WIRE.metrics_path}",
        )

    @property
    def container(self) -> str:
        return f"servecmp-tfs-{self._port('rest')}"

    def _docker_argv(self, flags: list[str]) -> list[str]:
        pl = self.configs.placement
        grpc, rest = self._port("grpc"), self._port("rest")
        model_root, config_dir = pl.path(self.name, "models"), pl.path(self.name, "config")
        env = self.configs.env[self.name]
        memory_mib = self.memory_mib
        token = os.environ.get(RUN_TOKEN_ENV)
        return [
            "docker", "run", "--rm", "--name", self.container,
            # The server would be PID 1, which the kernel gives no default-action signal, and
            # tensorflow_model_server sets no SIGTERM handler (model_servers/main.cc, 2.20.0):
            # docker-init passes SIGTERM on so a stop (or the proxied signal) ends it.
            "--init",
            # The container's environment holds only -e variables, so the watchdog's token sweep
            # cannot see it: it removes containers by this label instead.
            *(["--label", f"{RUN_LABEL}={token}"] if token else []),
            "-p", f"127.0.0.1:{grpc}:{grpc}",
            "-p", f"127.0.0.1:{rest}:{rest}",
            # The flags reference host paths; mount them at the same paths inside the container.
            "-v", f"{model_root}:{model_root}:ro",
            "-v", f"{config_dir}:{config_dir}:ro",
            # The thread budget (OMP_NUM_THREADS, ...) must reach the server, not only the client.
            *[a for k, v in sorted(env.items()) for a in ("-e", f"{k}={v}")],
            *(["--cpuset-cpus", ",".join(map(str, self.cpus))] if self.cpus else []),
            *([f"--memory={memory_mib}m"] if memory_mib else []),
            "--entrypoint", IMAGE_BINARY, pinned_image(), *flags,
        ]  # fmt: skip

    def _argv(self) -> list[str]:
        flags = flag_lines(self.configs.files[self.name])
        binary = shutil.which(BINARY)
        if binary:
            self.mode = "binary"
            return [binary, *flags]
        if docker_answers():
            self.mode = "docker"
            return self._docker_argv(flags)
        raise ServerUnavailable(self.availability() or "TF Serving unavailable")

    def start(self) -> None:
        argv = self._argv()
        logs = self.log_dir(self.run_dir)
        self._container_pid = None
        if self.mode == "docker":
            self._remove_container()  # a container left by a crashed earlier run holds the name
            image = pinned_image()
            pull_s = ensure_image(image)  # outside the timed window (started_at below)
            if pull_s is not None:
                _PULLED_S[image] = pull_s
            # a later start-up of the run finds the image present: it reports the run's pull
            self.image_pull_s = _PULLED_S.get(image)
        self.process = ManagedProcess(
            self.name,
            argv,
            log_path=logs / "console.log",
            cwd=logs,
            env=self.configs.env[self.name],
            cpus=self.cpus if self.mode == "binary" else None,
            # Ctrl-C / SIGTERM / atexit stop the client; the container must go with it.
            on_stop=self._remove_container if self.mode == "docker" else None,
        )
        self.started_at = self.process.started_at

    def is_ready(self) -> bool:
        r = requests.get(f"http://{self.endpoints.rest}/v1/models/{self.model_name}", timeout=2)
        if r.status_code != 200:
            return False
        states = [v.get("state") for v in r.json().get("model_version_status", [])]
        return "AVAILABLE" in states

    # ---- what is measured ------------------------------------------------------------------
    def measured_pid(self) -> int | None:
        if self.mode != "docker":
            return super().measured_pid()
        if self._container_pid is not None and psutil.pid_exists(self._container_pid):
            return self._container_pid
        try:
            out = _docker("inspect", "-f", "{{.State.Pid}}", self.container)
        except (OSError, subprocess.TimeoutExpired):
            return None
        pid = int(out.stdout.strip() or 0) if out.returncode == 0 else 0
        if pid <= 0:
            return None
        if not psutil.pid_exists(pid):
            # Docker Desktop / a remote engine: the pid is not in our namespace.
            raise ServerFailed(
                f"container {self.container} runs as pid {pid}, which this host cannot see "
                "(Docker Desktop or a remote engine): its memory and CPU cannot be measured"
            )
        self._container_pid = pid
        return pid

    @property
    def resource_source(self) -> str:
        if self.mode == "docker":
            return (
                f"container {self.container}: main process (docker inspect .State.Pid) "
                "and its descendants"
            )
        return super().resource_source

    @property
    def kill_description(self) -> str:
        if self.mode == "docker":
            return "docker kill (SIGKILL) of the container, docker rm, new container started"
        return super().kill_description

    def kill_hard(self) -> None:
        if self.mode != "docker":
            super().kill_hard()
            return
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            _docker("kill", self.container)
        self._wait_container_gone(10.0)
        self._remove_container()
        if self.process is not None:
            self.process.stop(timeout=5)  # the client exits with the container
        self._container_pid = None

    def _wait_container_gone(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                out = _docker("inspect", "-f", "{{.State.Running}}", self.container)
            except (OSError, subprocess.TimeoutExpired):
                return
            if out.returncode != 0 or out.stdout.strip() != "true":
                return
            time.sleep(0.1)

    def _remove_container(self) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            _docker("rm", "-f", self.container)

    def provenance(self) -> dict[str, Any]:
        """Which TF Serving actually served: version, binary or Docker, and whether it is the pin."""
        pinned = versions.TF_SERVING_VERSION
        if self.mode == "docker":
            image = pinned_image()
            digest = None
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                out = _docker("image", "inspect", "-f", "{{index .RepoDigests 0}}", image)
                digest = out.stdout.strip() or None if out.returncode == 0 else None
            return {"mode": "docker", "image": image, "digest": digest, "version": pinned,
                    "pinned": pinned, "matches_pin": True, "source": "image tag",
                    "image_pull_s": self.image_pull_s, "pinning": self.pinning()}  # fmt: skip
        binary = shutil.which(BINARY) or BINARY
        found = binary_version(binary)
        return {"mode": "binary", "binary": binary, "version": found, "pinned": pinned,
                "matches_pin": found == pinned, "source": f"{BINARY} --version",
                "pinning": self.pinning()}  # fmt: skip

    def pinning(self) -> dict[str, Any]:
        """The CPU set and (Docker) memory limit read back from the running server."""
        try:
            pid = self.measured_pid()
        except ServerFailed:
            pid = None
        if self.mode != "docker":
            return pinning.check(pid, self.cpus, None)
        host: dict[str, Any] = {}
        with contextlib.suppress(OSError, subprocess.TimeoutExpired, ValueError):
            out = _docker("inspect", "-f", "{{json .HostConfig}}", self.container)
            if out.returncode == 0:
                host = json.loads(out.stdout)
        return pinning.check(pid, self.cpus, self.memory_mib, host)

    def stop(self) -> None:
        if self.mode == "docker":
            self._remove_container()
        super().stop()
