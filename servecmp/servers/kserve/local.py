"""KServe's Python model server as a local process group: ``.venv-kserve/bin/python
servecmp/servers/kserve/model_server.py <flags.txt>``; with ``--workers`` > 1 it spawns uvicorn REST
processes (and multiprocessing's resource tracker) inside the same group."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import requests

from servecmp.load.clients.protos import kserve_venv
from servecmp.run.procs import ManagedProcess
from servecmp.run.server import Endpoints, LocalServer, ServerUnavailable
from servecmp.servers.kserve import config

SCRIPT = Path(__file__).resolve().with_name("model_server.py")


def venv_dir() -> Path:
    """KServe's own venv: ``$SERVECMP_KSERVE_VENV``, else ``.venv-kserve`` of the checkout (one
    definition, shared with the OIP stub builder)."""
    return kserve_venv()


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def installed_versions() -> dict[str, str]:
    """kserve and torch as installed in the KServe venv (read from its package metadata)."""
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({p: m.version(p) for p in ('kserve', 'torch')}))"
    )
    out = subprocess.run(
        [str(venv_python()), "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return dict(json.loads(out.stdout))


def publish_model(mar: Path, model_dir: Path, version: int) -> Path:
    """``<model_dir>/<version>/model.pt``: the TorchScript bytes from inside the .mar (the
    in-process baseline and TorchServe run the same file), and the .mar's ``model_spec.json``.
    For an ONNX-source card the .mar holds ``model.onnx`` instead: that file is published, and
    the model code runs it in ONNX Runtime."""
    with zipfile.ZipFile(mar) as zf:
        names = zf.namelist()
        inner = "model.onnx" if "model.onnx" in names else "model.pt"
        dest = model_dir / str(version) / inner
        dest.parent.mkdir(parents=True, exist_ok=True)
        for other in {"model.onnx", "model.pt"} - {inner}:  # one model file per version dir
            (dest.parent / other).unlink(missing_ok=True)
        if "model_spec.json" in names:  # the input shape the server enforces
            (dest.parent / "model_spec.json").write_bytes(zf.read("model_spec.json"))
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(zf.read(inner))
    os.replace(tmp, dest)  # a reload never sees half a file
    return dest


class KServeServer(LocalServer):
    name = "kserve"

    @classmethod
    def availability(cls) -> str | None:
        if not venv_python().is_file():
            return (
                f"the KServe virtual environment {venv_dir()} is missing (kserve 0.21 needs "
                "protobuf<7, so it has its own venv): run scripts/setup.sh"
            )
        if not SCRIPT.is_file():
            return f"{SCRIPT} is missing"
        return None

    @property
    def endpoints(self) -> Endpoints:
        placement = self.configs.placement
        host = placement.bind_host if placement.bind_host not in ("0.0.0.0", "::") else "127.0.0.1"
        rest = config.port(placement, "rest")
        from servecmp.servers.kserve import WIRE

        return Endpoints(
            rest=f"{host}:{rest}",
            grpc=f"{host}:{config.port(placement, 'grpc')}",
            metrics_url=f"http://{host}:{config.port(placement, 'metrics')}{WIRE.metrics_path}",
        )

    def flags(self) -> list[str]:
        return config.read_flags((self.config_dir / config.FLAGS_FILE).read_text())

    def workers(self) -> int:
        for f in self.flags():
            if f.startswith("--workers="):
                return int(f.split("=", 1)[1])
        return 1

    def start(self) -> None:
        reason = self.availability()
        if reason:
            raise ServerUnavailable(reason)
        logs = self.log_dir(self.run_dir)
        env = dict(self.configs.env.get(self.name, {}))
        argv = [str(venv_python()), str(SCRIPT), *self.flags()]
        self.process = ManagedProcess(
            self.name, argv, log_path=logs / "console.log", cwd=logs, env=env, cpus=self.cpus
        )
        self.started_at = self.process.started_at

    def is_ready(self) -> bool:
        from servecmp.servers.kserve import WIRE

        url = f"http://{self.endpoints.rest}{WIRE.ready_path.format(model=self.model_name)}"
        r = requests.get(url, timeout=2)
        return r.status_code == 200 and r.json().get("ready") is True

    # -- model update: KServe's model repository extension (servecmp/servers/kserve/model_server.py) ---
    def reload_model(self) -> None:
        r = requests.post(
            f"http://{self.endpoints.rest}/v2/repository/models/{self.model_name}/load", timeout=120
        )
        if r.status_code != 200:
            raise RuntimeError(
                f"kserve: load of {self.model_name} answered HTTP {r.status_code}: {r.text[:300]}"
            )

    def provenance(self) -> dict[str, Any]:
        return {
            "version": installed_versions().get("kserve", "unknown"),
            **installed_versions(),
            "python": str(venv_python()),
        }
