"""Open Inference Protocol (v2) gRPC stubs, generated at first use with OUR grpcio-tools.

The service is ``inference.GRPCInferenceService`` (KServe, Triton, MLServer and OpenVINO Model
Server all serve it). The kserve 0.21.0 wheel ships no ``.proto`` file (its RECORD lists only
``kserve/protocol/grpc/grpc_predict_v2_pb2.py`` and ``_pb2_grpc.py``): the schema is there as the
serialized ``FileDescriptorProto`` handed to ``AddSerializedFile(b"...")``. We read that literal
from the file's source (``ast``; nothing of kserve is imported: it needs protobuf<7, ours is 7),
rename the file into our own package, and run ``grpc_tools.protoc --descriptor_set_in`` on it.
Generated code lands in ``<cache>/<key>/`` (key = the pb2 file's sha256 + our grpcio-tools
version; cache root as for the TorchServe stubs) and is never edited or committed.

Where the pb2 file is found: ``$SERVECMP_OIP_PB2`` (a path), else the KServe venv
(``$SERVECMP_KSERVE_VENV``, else ``.venv-kserve`` of the checkout; scripts/setup.sh creates it).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from servecmp.load.clients.torchserve_protos import (
    StubError,
    default_cache_root,
    generate_once,
)

PACKAGE = "servecmp_oip_grpc_stubs"
MODULE = "grpc_predict_v2"
PB2_IN_KSERVE = ("kserve", "protocol", "grpc", "grpc_predict_v2_pb2.py")  # kserve 0.21.0 wheel
SERVICE = "inference.GRPCInferenceService"

__all__ = ["SERVICE", "StubError", "descriptor_bytes", "find_pb2", "load", "stub_dir"]


def kserve_venv() -> Path:
    env = os.environ.get("SERVECMP_KSERVE_VENV")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / ".venv-kserve"  # the repo root


def find_pb2() -> Path:
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


def _cache_key(pb2: Path) -> str:
    from importlib.metadata import version

    digest = hashlib.sha256(pb2.read_bytes()).hexdigest()[:16]
    return f"oip-{digest}-grpcio-tools-{version('grpcio-tools')}"


def _generate(pb2: Path, out_dir: Path) -> None:
    from google.protobuf import descriptor_pb2

    if importlib.util.find_spec("grpc_tools") is None:
        raise StubError("grpcio-tools is not installed")
    fdp = descriptor_pb2.FileDescriptorProto.FromString(descriptor_bytes(pb2.read_text()))
    if fdp.package != "inference" or not any(s.name == "GRPCInferenceService" for s in fdp.service):
        raise StubError(f"{pb2}: not the Open Inference Protocol schema (package {fdp.package!r})")
    if fdp.dependency:
        raise StubError(f"{pb2}: imports {list(fdp.dependency)}; only a self-contained schema is supported")
    # Our file name: the generated modules are <PACKAGE>/grpc_predict_v2_pb2(_grpc).py; the proto
    # package (hence the wire's service path) stays "inference".
    fdp.name = f"{PACKAGE}/{MODULE}.proto"
    with tempfile.TemporaryDirectory(prefix="oip-protos-") as tmp:
        desc = Path(tmp) / "oip.desc"
        desc.write_bytes(descriptor_pb2.FileDescriptorSet(file=[fdp]).SerializeToString())
        pkg_out = out_dir / PACKAGE
        pkg_out.mkdir(parents=True)
        (pkg_out / "__init__.py").write_text(f'"""Generated from the descriptor in {pb2.name}; do not edit."""\n')
        args = [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={desc}",
                f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", fdp.name]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StubError(f"protoc failed on {pb2}: {' '.join(args)}\n{proc.stderr}")


def stub_dir(cache_root: Path | None = None, pb2: Path | None = None) -> Path:
    pb2 = pb2 or find_pb2()
    root = Path(cache_root) if cache_root else default_cache_root()
    final = root / _cache_key(pb2)
    found = pb2
    return generate_once(final, final / PACKAGE / f"{MODULE}_pb2_grpc.py", lambda out: _generate(found, out))


def load(cache_root: Path | None = None) -> tuple[ModuleType, ModuleType]:
    """``(grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc)`` for GRPCInferenceService."""
    if f"{PACKAGE}.{MODULE}_pb2_grpc" not in sys.modules:
        path = str(stub_dir(cache_root))
        if path not in sys.path:
            sys.path.append(path)
    return (importlib.import_module(f"{PACKAGE}.{MODULE}_pb2"),
            importlib.import_module(f"{PACKAGE}.{MODULE}_pb2_grpc"))
