"""gRPC stubs compiled at first use with OUR grpcio-tools, one named proto set at a time.

No server package we talk to ships stubs we can import (generated code must match our protobuf
runtime), so each set is compiled here from its source and cached:

- ``torchserve``: TorchServe's InferenceAPIsService. The torchserve wheel ships no ``*_pb2``
  modules; its ``ts/frontend/model-server.jar`` (a zip) carries ``proto/inference.proto`` and
  ``proto/management.proto`` (and ``google/rpc/status.proto``). They are extracted and compiled.
- ``oip``: the Open Inference Protocol (v2) ``inference.GRPCInferenceService`` (KServe, Triton,
  MLServer and OpenVINO Model Server all serve it). The kserve 0.21.0 wheel ships no ``.proto``
  file (its RECORD lists only ``kserve/protocol/grpc/grpc_predict_v2_pb2.py`` and ``_pb2_grpc.py``):
  the schema is there as the serialized ``FileDescriptorProto`` handed to
  ``AddSerializedFile(b"...")``. That literal is read from the file's source (``ast``; nothing of
  kserve is imported: it needs protobuf<7, ours is 7), renamed into our own package and compiled
  with ``protoc --descriptor_set_in``.

Each set's source is found by its own small function (:func:`torchserve_jar`, :func:`find_pb2`).
Generated code lands in ``<cache>/<key>/`` where ``key`` is the source file's sha256 plus the
grpcio-tools version, so a server or protoc upgrade regenerates. Cache root:
``$SERVECMP_GRPC_STUB_DIR``, else ``build/grpc_stubs`` in a source checkout, else
``~/.cache/servecmp/grpc_stubs``. Generated code is never edited or committed.
"""

from __future__ import annotations

import ast
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
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

from google.protobuf import descriptor_pb2

CHECKOUT = Path(__file__).resolve().parents[3]  # servecmp/load/clients/protos.py -> the checkout

PB2_IN_KSERVE = ("kserve", "protocol", "grpc", "grpc_predict_v2_pb2.py")  # kserve 0.21.0 wheel
OIP_SERVICE = "inference.GRPCInferenceService"


class StubError(RuntimeError):
    pass


# ---- where each set's source is found -----------------------------------------------------------
def torchserve_jar() -> Path:
    spec = importlib.util.find_spec("ts")
    if spec is None or not spec.submodule_search_locations:
        raise StubError("the torchserve package (module 'ts') is not installed")
    for loc in spec.submodule_search_locations:
        jar = Path(loc) / "frontend" / "model-server.jar"
        if jar.is_file():
            return jar
    raise StubError("ts/frontend/model-server.jar not found in the torchserve package")


def kserve_venv() -> Path:
    env = os.environ.get("SERVECMP_KSERVE_VENV")
    return Path(env) if env else CHECKOUT / ".venv-kserve"


def find_pb2() -> Path:
    """kserve's ``grpc_predict_v2_pb2.py``: ``$SERVECMP_OIP_PB2`` (a path), else the KServe venv
    (``$SERVECMP_KSERVE_VENV``, else ``.venv-kserve`` of the checkout; scripts/setup.sh creates it)."""
    env = os.environ.get("SERVECMP_OIP_PB2")
    if env:
        if not Path(env).is_file():
            raise StubError(f"SERVECMP_OIP_PB2={env}: no such file")
        return Path(env)
    venv = kserve_venv()
    for site in sorted(venv.glob("lib/python3*/site-packages")):
        cand = site.joinpath(*PB2_IN_KSERVE)
        if cand.is_file():
            return cand
    raise StubError(
        f"no {'/'.join(PB2_IN_KSERVE)} in {venv} (run scripts/setup.sh, or set SERVECMP_OIP_PB2)"
    )


# ---- what each set hands to protoc --------------------------------------------------------------
def _torchserve_inputs(jar: Path, package: str, src: Path) -> list[str]:
    """Extract the .proto files from the jar into ``src``; protoc's include and input arguments."""
    protos = ("inference.proto", "management.proto")
    with zipfile.ZipFile(jar) as zf:
        names = set(zf.namelist())
        (src / package).mkdir()
        for proto in protos:
            member = f"proto/{proto}" if f"proto/{proto}" in names else proto
            if member not in names:
                raise StubError(f"{jar} has no {proto}")
            (src / package / proto).write_bytes(zf.read(member))
        # imported by inference.proto; generated code uses googleapis-common-protos' module
        if "google/rpc/status.proto" in names:
            (src / "google" / "rpc").mkdir(parents=True)
            (src / "google/rpc/status.proto").write_bytes(zf.read("google/rpc/status.proto"))
    spec = importlib.util.find_spec("grpc_tools")
    assert spec is not None and spec.submodule_search_locations  # checked by _generate
    well_known = Path(next(iter(spec.submodule_search_locations))) / "_proto"
    return [f"-I{src}", f"-I{well_known}", *(f"{package}/{p}" for p in protos)]


def descriptor_bytes(pb2_source: str) -> bytes:
    """The serialized FileDescriptorProto passed to ``AddSerializedFile`` in a ``*_pb2.py``."""
    for node in ast.walk(ast.parse(pb2_source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            return node.args[0].value
    raise StubError("no AddSerializedFile(b'...') call: not a protoc-generated *_pb2.py")


def _oip_inputs(pb2: Path, package: str, src: Path) -> list[str]:
    """The schema out of the pb2 file as a descriptor set in ``src``; protoc's arguments."""
    fdp = descriptor_pb2.FileDescriptorProto.FromString(descriptor_bytes(pb2.read_text()))
    if fdp.package != "inference" or not any(s.name == "GRPCInferenceService" for s in fdp.service):
        raise StubError(f"{pb2}: not the Open Inference Protocol schema (package {fdp.package!r})")
    if fdp.dependency:
        raise StubError(
            f"{pb2}: imports {list(fdp.dependency)}; only a self-contained schema is supported"
        )
    # Our file name: the generated modules are <package>/grpc_predict_v2_pb2(_grpc).py; the proto
    # package (hence the wire's service path) stays "inference".
    fdp.name = f"{package}/grpc_predict_v2.proto"
    desc = src / "oip.desc"
    desc.write_bytes(descriptor_pb2.FileDescriptorSet(file=[fdp]).SerializeToString())
    return [f"--descriptor_set_in={desc}", fdp.name]


@dataclass(frozen=True)
class ProtoSet:
    package: (
        str  # generated package; no leading "_" (protoc aliases it as "__..." -> name mangling)
    )
    module: str  # <package>.<module>_pb2 and _pb2_grpc are what load() returns
    find_source: Callable[[], Path]
    protoc_inputs: Callable[[Path, str, Path], list[str]]  # (source, package, scratch dir) -> args


SETS = {
    "torchserve": ProtoSet(
        "servecmp_ts_grpc_stubs", "inference", torchserve_jar, _torchserve_inputs
    ),
    "oip": ProtoSet("servecmp_oip_grpc_stubs", "grpc_predict_v2", find_pb2, _oip_inputs),
}


def _set(name: str) -> ProtoSet:
    if name not in SETS:
        raise StubError(f"proto set: expected one of {', '.join(SETS)}, got {name!r}")
    return SETS[name]


# ---- shared: cache, protoc, import --------------------------------------------------------------
def default_cache_root() -> Path:
    env = os.environ.get("SERVECMP_GRPC_STUB_DIR")
    if env:
        return Path(env)
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "loadtests").is_dir():
        return CHECKOUT / "build" / "grpc_stubs"
    return Path.home() / ".cache" / "servecmp" / "grpc_stubs"


def _generate(name: str, source: Path, out_dir: Path) -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        raise StubError("grpcio-tools is not installed")
    ps = SETS[name]
    with tempfile.TemporaryDirectory(prefix=f"{name}-protos-") as tmp:
        inputs = ps.protoc_inputs(source, ps.package, Path(tmp))
        pkg_out = out_dir / ps.package
        pkg_out.mkdir(parents=True)
        (pkg_out / "__init__.py").write_text(f'"""Generated from {source.name}; do not edit."""\n')
        # protoc runs in a child process: grpc_tools' bundled libprotobuf segfaults inside a
        # process that has already loaded tensorflow's.
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *inputs,
        ]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StubError(f"protoc failed on {source}: {' '.join(args)}\n{proc.stderr}")


def generate_once(final: Path, marker: Path, generate: Callable[[Path], None]) -> Path:
    """``final`` holding generated stubs: ``generate`` runs into a temporary sibling directory
    renamed into place only when ``marker`` (its last output) is absent."""
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


def stub_dir(name: str, cache_root: Path | None = None, source: Path | None = None) -> Path:
    """The directory holding set ``name``'s generated package (generated now if missing)."""
    ps = _set(name)
    found = source or ps.find_source()
    digest = hashlib.sha256(found.read_bytes()).hexdigest()[:16]
    final = (Path(cache_root) if cache_root else default_cache_root()) / (
        f"{name}-{digest}-grpcio-tools-{version('grpcio-tools')}"
    )
    return generate_once(
        final,
        final / ps.package / f"{ps.module}_pb2_grpc.py",
        lambda out: _generate(name, found, out),
    )


def load(name: str, cache_root: Path | None = None) -> tuple[ModuleType, ModuleType]:
    """``(<module>_pb2, <module>_pb2_grpc)`` of set ``name`` (``torchserve``: TorchServe's
    InferenceAPIsService; ``oip``: GRPCInferenceService)."""
    ps = _set(name)
    if f"{ps.package}.{ps.module}_pb2_grpc" not in sys.modules:
        path = str(stub_dir(name, cache_root))
        if path not in sys.path:
            sys.path.append(path)
    return (
        importlib.import_module(f"{ps.package}.{ps.module}_pb2"),
        importlib.import_module(f"{ps.package}.{ps.module}_pb2_grpc"),
    )
