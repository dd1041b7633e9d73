"""TorchServe gRPC stubs, generated at first use from the .proto files inside TorchServe's jar.

The torchserve wheel ships no ``*_pb2`` modules; its ``ts/frontend/model-server.jar`` (a zip)
carries ``proto/inference.proto`` and ``proto/management.proto``. We extract them, run
grpcio-tools' protoc, and cache the generated package in ``<cache>/<key>/`` where ``key`` is
the jar's sha256 plus the grpcio-tools version, so a TorchServe or protoc upgrade regenerates.
Cache root: ``$SERVECMP_GRPC_STUB_DIR``, else ``build/grpc_stubs`` in a source checkout, else
``~/.cache/servecmp/grpc_stubs``. Generated code is never edited or committed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

PACKAGE = "servecmp_ts_grpc_stubs"  # generated package; no leading "_" (protoc aliases it as "__..." -> name mangling)
PROTOS = ("inference.proto", "management.proto")


class StubError(RuntimeError):
    pass


def torchserve_jar() -> Path:
    spec = importlib.util.find_spec("ts")
    if spec is None or not spec.submodule_search_locations:
        raise StubError("the torchserve package (module 'ts') is not installed")
    for loc in spec.submodule_search_locations:
        jar = Path(loc) / "frontend" / "model-server.jar"
        if jar.is_file():
            return jar
    raise StubError("ts/frontend/model-server.jar not found in the torchserve package")


def default_cache_root() -> Path:
    env = os.environ.get("SERVECMP_GRPC_STUB_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file() and (repo / "loadtests").is_dir():
        return repo / "build" / "grpc_stubs"
    return Path.home() / ".cache" / "servecmp" / "grpc_stubs"


def _cache_key(jar: Path) -> str:
    from importlib.metadata import version

    digest = hashlib.sha256(jar.read_bytes()).hexdigest()[:16]
    return f"ts-{digest}-grpcio-tools-{version('grpcio-tools')}"


def _generate(jar: Path, out_dir: Path) -> None:
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise StubError("grpcio-tools is not installed")

    with tempfile.TemporaryDirectory(prefix="ts-protos-") as tmp:
        src = Path(tmp)
        with zipfile.ZipFile(jar) as zf:
            names = set(zf.namelist())
            for proto in PROTOS:
                member = f"proto/{proto}" if f"proto/{proto}" in names else proto
                if member not in names:
                    raise StubError(f"{jar} has no {proto}")
                (src / PACKAGE).mkdir(exist_ok=True)
                (src / PACKAGE / proto).write_bytes(zf.read(member))
            # imported by inference.proto; generated code uses googleapis-common-protos' module
            if "google/rpc/status.proto" in names:
                (src / "google" / "rpc").mkdir(parents=True, exist_ok=True)
                (src / "google/rpc/status.proto").write_bytes(zf.read("google/rpc/status.proto"))
        well_known = Path(next(iter(spec.submodule_search_locations))) / "_proto"
        pkg_out = out_dir / PACKAGE
        pkg_out.mkdir(parents=True)
        (pkg_out / "__init__.py").write_text(f'"""Generated from {jar.name}; do not edit."""\n')
        # protoc runs in a child process: grpc_tools' bundled libprotobuf segfaults inside a
        # process that has already loaded tensorflow's.
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{src}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *(f"{PACKAGE}/{p}" for p in PROTOS),
        ]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StubError(f"protoc failed on {jar}: {' '.join(args)}\n{proc.stderr}")


def stub_dir(cache_root: Path | None = None) -> Path:
    """The directory holding the generated package (generated now if missing)."""
    jar = torchserve_jar()
    root = Path(cache_root) if cache_root else default_cache_root()
    final = root / _cache_key(jar)
    return generate_once(final, final / PACKAGE / "inference_pb2_grpc.py", lambda out: _generate(jar, out))


def generate_once(final: Path, marker: Path, generate: Callable[[Path], None]) -> Path:
    """``final`` holding generated stubs: ``generate`` runs into a temporary sibling directory
    renamed into place only when ``marker`` (its last output) is absent. Shared by every
    client family whose stubs are compiled at run time (TorchServe's, OIP's)."""
    if marker.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=final.parent))
    try:
        tmp.chmod(0o755)
        generate(tmp)
        try:
            os.rename(tmp, final)  # atomic: concurrent generators race harmlessly
        except OSError:
            if not marker.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load(cache_root: Path | None = None) -> tuple[ModuleType, ModuleType]:
    """``(inference_pb2, inference_pb2_grpc)`` for TorchServe's InferenceAPIsService."""
    if f"{PACKAGE}.inference_pb2_grpc" not in sys.modules:
        path = str(stub_dir(cache_root))
        if path not in sys.path:
            sys.path.append(path)
    pb2 = importlib.import_module(f"{PACKAGE}.inference_pb2")
    pb2_grpc = importlib.import_module(f"{PACKAGE}.inference_pb2_grpc")
    return pb2, pb2_grpc
