"""Ray Serve as a local process tree: ``.venv-ray/bin/python serve_app.py <flags.txt>``.

The launcher is the Ray driver: ``ray.init`` starts the GCS server, the raylet and Ray's agents
as its children (one process group: ray 2.60.0 ``ray/_private/services.py``
``start_ray_process``, plain ``Popen``), and the raylet starts the worker processes (Serve
controller, proxy, replicas), each in a process group of its own but in the launcher's session,
with the launcher's environment and CPU affinity. So

- the whole tree is pinned by ``ManagedProcess`` (affinity set before exec is inherited);
- resources are the launcher's process tree (``measured_pid``), workers included;
- stopping sweeps the launcher's *session*, not only its group (:func:`session_members`): a
  worker whose raylet is gone is reparented but keeps its session; after ``kill -9`` of the
  orchestrator the watchdog kills every process holding the run token in its environment,
  which the raylet passes on to the workers.

Ray's temp dir (sockets, logs, session files) lives under the run dir. Ray refuses an AF_UNIX
socket path over 107 bytes (ray 2.60.0 ``ray/_private/utils.py`` ``validate_socket_filepath``),
and its socket path is ``<temp_dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store``
(``ray/_private/node.py``): a long run dir (or one with a space: only bytes count) gets a short
symlink under the system temp dir pointing at it (:func:`short_temp_dir`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psutil
import requests

from servecmp.run import watchdog
from servecmp.run.procs import ManagedProcess
from servecmp.run.server import Endpoints, LocalServer, ServerUnavailable
from servecmp.servers.rayserve import config

SCRIPT = Path(__file__).resolve().with_name("serve_app.py")
CHECKOUT = Path(__file__).resolve().parents[3]
# <temp_dir> + "/session_2026-12-07_15-54-49_424137_4194304/sockets/plasma_store.1": the longest
# suffix Ray appends (pid_max 4194304 on Linux, a counter suffix from _make_inc_temp).
RAY_SOCKET_SUFFIX = 67
AF_UNIX_MAX = 107  # ray 2.60.0 ray/_private/utils.py validate_socket_filepath (108 - 1)
REPLICA_PREFIX = "ray::ServeReplica:"  # a replica actor's process title (setproctitle)


def venv_dir() -> Path:
    """Ray's own venv: ``$SERVECMP_RAY_VENV``, else ``.venv-ray`` of the checkout."""
    env = os.environ.get("SERVECMP_RAY_VENV")
    return Path(env) if env else CHECKOUT / ".venv-ray"


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def installed_versions() -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({p: m.version(p) for p in ('ray', 'torch', 'grpcio', 'protobuf')}))"
    )
    out = subprocess.run(
        [str(venv_python()), "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return dict(json.loads(out.stdout))


def short_temp_dir(wanted: Path) -> Path:
    """``wanted`` when Ray's socket paths under it fit AF_UNIX, else a short symlink to it (in
    the system temp dir) that Ray is given instead; the files still land in ``wanted``."""
    wanted.mkdir(parents=True, exist_ok=True)
    if len(os.fsencode(str(wanted))) + RAY_SOCKET_SUFFIX <= AF_UNIX_MAX:
        return wanted
    link = Path(tempfile.mkdtemp(prefix="rs-")) / "t"
    link.symlink_to(wanted, target_is_directory=True)
    watchdog.remove_on_exit(link.parent)  # even after kill -9 of the orchestrator
    if len(os.fsencode(str(link))) + RAY_SOCKET_SUFFIX > AF_UNIX_MAX:
        raise ServerUnavailable(
            f"no temp dir short enough for Ray's sockets ({link}); set TMPDIR to a short path"
        )
    return link


def session_members(sid: int) -> list[psutil.Process]:
    """Every process in session ``sid`` (the launcher's: it was started as a session leader)."""
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) == sid:
                out.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return out


def publish_model(mar: Path, model_dir: Path, version: int) -> Path:
    """``<model_dir>/<version>/model.pt``: the TorchScript of the .mar (as KServe serves it)."""
    from servecmp.servers.kserve.local import publish_model as publish

    return publish(mar, model_dir, version)


class RayServeServer(LocalServer):
    name = "rayserve"
    _temp_link: Path | None = None

    @classmethod
    def availability(cls) -> str | None:
        if not venv_python().is_file():
            return (
                f"the Ray virtual environment {venv_dir()} is missing (ray[serve] 2.60 runs in "
                "its own venv): run scripts/setup-ray.sh"
            )
        if not SCRIPT.is_file():
            return f"{SCRIPT} is missing"
        try:
            from servecmp.load.clients import protos

            protos.find_pb2()  # the OIP schema the gRPC proxy serves
        except Exception as err:
            return f"the OIP gRPC schema for Ray Serve's gRPC proxy is unavailable: {err}"
        return None

    @property
    def endpoints(self) -> Endpoints:
        placement = self.configs.placement
        host = placement.bind_host if placement.bind_host not in ("0.0.0.0", "::") else "127.0.0.1"
        from servecmp.servers.rayserve import WIRE

        return Endpoints(
            rest=f"{host}:{config.port(placement, 'rest')}",
            grpc=f"{host}:{config.port(placement, 'grpc')}",
            metrics_url=f"http://127.0.0.1:{config.port(placement, 'metrics')}{WIRE.metrics_path}",
        )

    def flags(self) -> list[str]:
        return config.read_flags((self.config_dir / config.FLAGS_FILE).read_text())

    def live_config(self) -> Path:
        """The Serve config the launcher deploys (a copy of the generated one: a model update
        edits this copy, never the generated file)."""
        return self.log_dir(self.run_dir) / config.SERVE_CONFIG

    def _argv(self, temp_dir: Path) -> list[str]:
        flags = [f for f in self.flags() if not f.startswith("--config=")]
        return [
            str(venv_python()),
            str(SCRIPT),
            f"--config={self.live_config()}",
            *flags,
            f"--temp_dir={temp_dir}",
        ]

    def start(self) -> None:
        """Start Ray and deploy; a launcher still running (a replica was killed: Ray's controller
        replaces it) is left as it is."""
        if self.process is not None and self.process.alive():
            return
        reason = self.availability()
        if reason:
            raise ServerUnavailable(reason)
        from servecmp.load.clients import protos

        logs = self.log_dir(self.run_dir)
        self.live_config().write_text((self.config_dir / config.SERVE_CONFIG).read_text())
        temp = short_temp_dir(self.run_dir / "ray")
        self._temp_link = temp if temp != self.run_dir / "ray" else None
        env = dict(self.configs.env.get(self.name, {}))
        # Every Ray process imports the app module and the OIP stubs (the proxy and the replicas
        # are workers the raylet starts with the driver's environment).
        env["PYTHONPATH"] = os.pathsep.join([str(SCRIPT.parent), str(protos.stub_dir("oip"))])
        self.process = ManagedProcess(
            self.name,
            self._argv(temp),
            log_path=logs / "console.log",
            cwd=logs,
            env=env,
            cpus=self.cpus,
        )
        self.started_at = self.process.started_at

    def is_ready(self) -> bool:
        from servecmp.servers.rayserve import WIRE

        url = f"http://{self.endpoints.rest}{WIRE.ready_path.format(model=self.model_name)}"
        r = requests.get(url, timeout=2)
        return r.status_code == 200 and r.json().get("ready") is True

    # ---- the Ray process tree -------------------------------------------------------------------
    def members(self) -> list[psutil.Process]:
        """The launcher's tree and everything left in its session."""
        if self.process is None:
            return []
        seen = {p.pid: p for p in [*self.process.tree(), *session_members(self.process.pid)]}
        return list(seen.values())

    def replica_pids(self) -> list[int]:
        out = []
        for p in self.members():
            with contextlib.suppress(psutil.Error):
                if " ".join(p.cmdline()).startswith(REPLICA_PREFIX):
                    out.append(p.pid)
        return sorted(out)

    @property
    def kill_description(self) -> str:
        return (
            "SIGKILL of one Ray Serve replica actor process (ray::ServeReplica); Ray Serve's "
            "controller starts a replacement: no restart by servecmp"
        )

    def kill_hard(self) -> None:
        """A replica crashes: SIGKILL of one replica actor (Ray's controller replaces it)."""
        pids = self.replica_pids()
        if not pids:
            raise RuntimeError(
                f"rayserve: no replica process in {self.process and self.process.pid}"
            )
        os.kill(pids[0], signal.SIGKILL)

    def stop(self) -> None:
        if self.process is None:
            return
        members = self.members()
        self.process.stop(timeout=20)  # SIGTERM: the launcher shuts Serve and Ray down
        _, alive = psutil.wait_procs(members, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        if self._temp_link is not None:
            with contextlib.suppress(OSError):
                self._temp_link.unlink()
                self._temp_link.parent.rmdir()
            self._temp_link = None

    # ---- model update: a redeploy of the edited Serve config ------------------------------------
    def redeploy(self, model_version: int) -> None:
        """Deploy the live config with ``user_config.model_version`` set (SIGHUP: the launcher
        reads the file again and deploys it), then wait until every replica answers it."""
        live = self.live_config()
        live.write_text(config.with_model_version(live.read_text(), model_version))
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGHUP)

    def provenance(self) -> dict[str, Any]:
        found = installed_versions()
        return {"version": found.get("ray", "unknown"), **found, "python": str(venv_python())}
