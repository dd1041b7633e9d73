"""Triton Inference Server 2.51.0 as a local process group: the ``tritonserver`` binary bundled
in the nvidia-pytriton 0.7.0 wheel of ``.venv-triton``, run directly with the generated flags
and a model repository under the run directory. Its Python-backend stubs (one process per model
instance) are its children, in the same process group: stopping the group leaves nothing.

What running the wheel's binary takes (measured here; the wheel ships no launcher for it):
``LD_LIBRARY_PATH`` = the wheel's ``nvidia_pytriton.libs``; a Python backend directory holding
``libtriton_python.so``, ``triton_python_backend_utils.py`` and the stub for our Python
(``python_backend_stubs/3.11/triton_python_backend_stub``) side by side (python_backend r24.10
``src/python_be.cc``: stub and utils are looked up in the backend's own directory).

Paths without spaces: the backend starts each stub with ``bash -c "exec <stub> <model path>
..."`` without quoting (python_backend r24.10 ``src/stub_launcher.cc`` ``Launch``), so a model
repository path with a space makes the stub's argument parsing throw and the server abort
("terminate called ... stol"). The launcher therefore stages, in a fresh space-free temporary
directory, the backend directory (symlinks) and a symlink to the run's model repository, and
removes that directory when the server stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import requests

from servecmp.load.clients.protos import CHECKOUT
from servecmp.run import watchdog
from servecmp.run.procs import ManagedProcess
from servecmp.run.server import Endpoints, LocalServer, ServerUnavailable
from servecmp.servers.triton import config

SCRIPT = Path(__file__).resolve().with_name("model.py")
STUB = "triton_python_backend_stub"
BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
SITE_ENV = "SERVECMP_TRITON_SITE_PACKAGES"
TORCHSCRIPT_IN_MAR = "model.pt"  # the serialized file's name inside a .mar (models/export.py)
ONNX_IN_MAR = "model.onnx"  # ... for an ONNX-source card


def venv_dir() -> Path:
    """Triton's own venv: ``$SERVECMP_TRITON_VENV``, else ``.venv-triton`` of the checkout."""
    env = os.environ.get("SERVECMP_TRITON_VENV")
    return Path(env) if env else CHECKOUT / ".venv-triton"


def site_packages() -> Path | None:
    found = sorted(venv_dir().glob("lib/python3*/site-packages"))
    return found[-1] if found else None


def wheel_dir() -> Path | None:
    """``<site-packages>/pytriton/tritonserver`` of the installed nvidia-pytriton wheel."""
    site = site_packages()
    return site / "pytriton" / "tritonserver" if site else None


def binary() -> Path | None:
    w = wheel_dir()
    return w / "bin" / "tritonserver" if w else None


def stub_for(python_version: str) -> Path | None:
    """The backend stub built for ``python_version`` ("3.11"): it embeds that libpython."""
    w = wheel_dir()
    return w / "python_backend_stubs" / python_version / STUB if w else None


def _py_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def environment() -> dict[str, str]:
    """What the binary and the stubs need in their environment (besides the experiment's)."""
    site = site_packages()
    assert site is not None
    libs = site / "nvidia_pytriton.libs"
    old = os.environ.get("LD_LIBRARY_PATH", "")
    return {
        "LD_LIBRARY_PATH": f"{libs}:{old}" if old else str(libs),
        SITE_ENV: str(site),
    }


def stage_backends(dest: Path) -> Path:
    """``dest/backends/python`` with the backend library, its utils and the stub for our
    Python as symlinks; returns ``dest/backends`` (the ``--backend-directory``)."""
    w = wheel_dir()
    stub = stub_for(_py_version())
    assert w is not None and stub is not None
    py = dest / "backends" / "python"
    py.mkdir(parents=True)
    for name in BACKEND_FILES:
        (py / name).symlink_to(w / "backends" / "python" / name)
    (py / STUB).symlink_to(stub)
    return dest / "backends"


def publish_model(mar: Path, model_dir: Path, version: int) -> Path:
    """``<model_dir>/<version>/`` with ``model.pt`` (the TorchScript bytes from inside the .mar,
    as KServe's copy) and ``model.py`` (the Python backend's entry point)."""
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(mar) as zf:
        # an ONNX-source card's .mar holds model.onnx: model.py runs it in ONNX Runtime
        inner = ONNX_IN_MAR if ONNX_IN_MAR in zf.namelist() else TORCHSCRIPT_IN_MAR
        data = zf.read(inner)
    for other in {ONNX_IN_MAR, TORCHSCRIPT_IN_MAR} - {inner}:  # one model file per version
        (version_dir / other).unlink(missing_ok=True)
    for name, content in ((inner, data), ("model.py", SCRIPT.read_bytes())):
        tmp = version_dir / f".{name}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, version_dir / name)  # a load never sees half a file
    return version_dir / inner


class TritonServer(LocalServer):
    name = "triton"
    _stage: Path | None = None

    @classmethod
    def availability(cls) -> str | None:
        fix = "run scripts/setup-triton.sh (or scripts/setup.sh)"
        b = binary()
        if b is None or not b.is_file():
            return (
                f"the Triton virtual environment {venv_dir()} has no tritonserver binary "
                f"(nvidia-pytriton 0.7.0 bundles Triton 2.51.0): {fix}"
            )
        stub = stub_for(_py_version())
        if stub is None or not stub.is_file():
            return f"no Python backend stub for Python {_py_version()} in the pytriton wheel"
        return None

    @property
    def endpoints(self) -> Endpoints:
        from servecmp.servers.triton import WIRE

        placement = self.configs.placement
        host = placement.bind_host if placement.bind_host not in ("0.0.0.0", "::") else "127.0.0.1"
        return Endpoints(
            rest=f"{host}:{config.port(placement, 'rest')}",
            grpc=f"{host}:{config.port(placement, 'grpc')}",
            metrics_url=f"http://{host}:{config.port(placement, 'metrics')}{WIRE.metrics_path}",
        )

    def flags(self) -> list[str]:
        return config.read_flags((self.config_dir / config.FLAGS_FILE).read_text())

    def repository(self) -> Path:
        for f in self.flags():
            if f.startswith("--model-repository="):
                return Path(f.split("=", 1)[1])
        raise ValueError(f"{self.config_dir / config.FLAGS_FILE}: no --model-repository line")

    def start(self) -> None:
        reason = self.availability()
        if reason:
            raise ServerUnavailable(reason)
        self._cleanup()
        repo = self.repository()
        model_dir = repo / self.model_name
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.config_dir / config.MODEL_CONFIG, model_dir / config.MODEL_CONFIG)
        tmp_root = (
            None if " " not in tempfile.gettempdir() else "/tmp"
        )  # the stage must be space-free
        self._stage = Path(tempfile.mkdtemp(prefix="servecmp-triton-", dir=tmp_root))
        watchdog.remove_on_exit(self._stage)  # even when the orchestrator is killed -9
        backends = stage_backends(self._stage)
        (self._stage / "repo").symlink_to(repo.resolve(), target_is_directory=True)
        argv = [
            str(binary()),
            *(
                f"--model-repository={self._stage / 'repo'}"
                if f.startswith("--model-repository=")
                else f
                for f in self.flags()
            ),
            f"--backend-directory={backends}",
        ]
        env = {**self.configs.env.get(self.name, {}), **environment()}
        logs = self.log_dir(self.run_dir)
        self.process = ManagedProcess(
            self.name,
            argv,
            log_path=logs / "console.log",
            cwd=logs,
            env=env,
            cpus=self.cpus,
            on_stop=self._cleanup,
        )
        self.started_at = self.process.started_at

    def _cleanup(self) -> None:
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None

    def is_ready(self) -> bool:
        from servecmp.servers.triton import WIRE

        url = f"http://{self.endpoints.rest}{WIRE.ready_path.format(model=self.model_name)}"
        return requests.get(url, timeout=2).status_code == 200

    # -- model update: the model repository extension (explicit model control) ---------------
    def load_model(self) -> None:
        """``POST /v2/repository/models/<m>/load``: Triton re-reads the model directory and
        serves its highest version (``version_policy`` latest 1, the default); the old version
        answers until the new one is loaded (docs/user_guide/model_management.md, v2.51.0)."""
        r = requests.post(
            f"http://{self.endpoints.rest}/v2/repository/models/{self.model_name}/load",
            timeout=120,
        )
        if r.status_code != 200:
            raise RuntimeError(
                f"triton: load of {self.model_name} answered HTTP {r.status_code}: {r.text[:300]}"
            )

    def server_metadata(self) -> dict[str, Any]:
        """``GET /v2``: the running binary's name, version and protocol extensions."""
        r = requests.get(f"http://{self.endpoints.rest}/v2", timeout=5)
        r.raise_for_status()
        return dict(r.json())

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {"binary": str(binary())}
        try:
            meta = self.server_metadata()
            out.update(version=meta.get("version", "unknown"), extensions=meta.get("extensions"))
        except (requests.RequestException, ValueError) as err:
            out.update(version="unknown", error=str(err)[:200])
        with contextlib.suppress(OSError, ValueError):
            dist = next(site_packages().glob("nvidia_pytriton-*.dist-info"))  # type: ignore[union-attr]
            out["nvidia_pytriton"] = dist.name.removesuffix(".dist-info").split("-", 1)[1]
        return out
