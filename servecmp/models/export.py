"""Package a model for each server, recording what it took (feeds the friction table).

Layout under ``out_root`` (see ``artifacts()``):
  <name>/torchserve/<name>.mar            TorchServe model store (v2: <name>_v2.mar, --version 2.0)
  <name>/tfserving/<name>/<version>/      TF Serving model base path + numbered SavedModel
  <name>/export.json                      one ExportRecord per exported version
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from servecmp.models.registry import DEFAULT_SEED, get_model

HANDLER_FILE = Path(__file__).with_name("handler.py")
SPEC_FILE = "model_spec.json"  # must match handler.SPEC_FILE
TRACE_BATCH = 2  # trace with B > 1 so nothing batch-size specific is baked in


class ExportError(RuntimeError):
    """A packaging step failed; the message names the step and its output."""


@dataclass(frozen=True)
class Artifacts:
    model_store: Path  # TorchServe --model-store
    mar: Path
    tfserving_base: Path  # TF Serving model base_path (holds numbered versions)
    savedmodel: Path
    export_json: Path


@dataclass(frozen=True)
class PackagingRecord:
    server: str
    artifact: str
    steps: list[
        str
    ]  # what was run, in order (shell commands shlex.join-quoted, Python calls described)
    seconds: float
    bytes: int


@dataclass(frozen=True)
class ExportRecord:
    model: str
    version: int
    seed: int  # weights seed: reference.expected_logits(model, x, seed) matches these artifacts
    created: str
    libraries: dict[str, str]
    torchserve: PackagingRecord
    tfserving: PackagingRecord

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mar_filename(name: str, version: int = 1) -> str:
    return f"{name}.mar" if version == 1 else f"{name}_v{version}.mar"


def artifacts(name: str, out_root: str | Path, version: int = 1) -> Artifacts:
    get_model(name)  # unknown names fail here, with the allowed list
    if version < 1:
        raise ValueError(f"version: expected a positive integer, got {version}")
    root = Path(out_root) / name
    base = root / "tfserving" / name
    return Artifacts(
        model_store=root / "torchserve",
        mar=root / "torchserve" / mar_filename(name, version),
        tfserving_base=base,
        savedmodel=base / str(version),
        export_json=root / "export.json",
    )


def seed_for_version(seed: int, version: int) -> int:
    """Weights seed of model version ``version``: each version gets different weights."""
    return seed + version - 1


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _archiver() -> str:
    # Prefer the archiver next to this interpreter (the venv), then PATH.
    local = Path(sys.executable).with_name("torch-model-archiver")
    found = str(local) if local.is_file() else shutil.which("torch-model-archiver")
    if not found:
        raise ExportError(
            "torch-model-archiver not found: pip install torch-model-archiver==0.12.0"
        )
    return found


def _export_torchserve(name: str, model: Any, art: Artifacts, version: int) -> PackagingRecord:
    import torch

    spec = get_model(name)
    staging = art.model_store / f".staging-v{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    t0 = time.perf_counter()
    example = torch.zeros((TRACE_BATCH, *spec.input_shape))
    pt = staging / "model.pt"
    with torch.no_grad():
        torch.jit.trace(model, example).save(str(pt))
    (staging / SPEC_FILE).write_text(json.dumps(spec.to_json(), indent=2))
    cmd = [
        _archiver(),
        "--model-name",
        name,
        "--version",
        f"{version}.0",
        "--serialized-file",
        str(pt),
        "--handler",
        str(HANDLER_FILE),
        "--extra-files",
        str(staging / SPEC_FILE),
        "--export-path",
        str(staging),
        "--force",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ExportError(f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    # The archiver names the file <model-name>.mar; v2+ keep the served name but not the file name.
    os.replace(staging / f"{name}.mar", art.mar)
    seconds = time.perf_counter() - t0
    shutil.rmtree(staging)
    return PackagingRecord(
        server="torchserve",
        artifact=str(art.mar),
        steps=[
            f"python: torch.jit.trace(model, zeros[{TRACE_BATCH}, "
            f"{', '.join(map(str, spec.input_shape))}]).save('model.pt')",
            f"python: write {SPEC_FILE} (input shape, classes) for the handler",
            shlex.join(cmd),
            shlex.join(["mv", f"{name}.mar", str(art.mar)]),
        ],
        seconds=round(seconds, 3),
        bytes=_size(art.mar),
    )


def _export_tfserving(name: str, model: Any, art: Artifacts) -> PackagingRecord:
    import tensorflow as tf

    spec = get_model(name)
    t0 = time.perf_counter()
    tf_model = spec.build_tf(model)
    # Save beside the version dir, then rename: TF Serving polls the base path and must never
    # see a half-written version.
    tmp = art.tfserving_base / f".tmp-{art.savedmodel.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(tf_model, str(tmp), signatures=tf_model.export_signatures())
    shutil.rmtree(art.savedmodel, ignore_errors=True)
    os.replace(tmp, art.savedmodel)
    seconds = time.perf_counter() - t0
    return PackagingRecord(
        server="tfserving",
        artifact=str(art.savedmodel),
        steps=[
            f"python: {spec.module}.build_tf(torch_model) (TF mirror, weights copied from PyTorch)",
            "python: tf.saved_model.save(module, dir, signatures={'serving_default': "
            "module.serve, 'serving_b64': module.serve_b64} (concrete functions))",
            shlex.join(["mv", tmp.name, str(art.savedmodel)]),
        ],
        seconds=round(seconds, 3),
        bytes=_size(art.savedmodel),
    )


def _libraries() -> dict[str, str]:
    return {
        pkg: metadata.version(pkg) for pkg in ("torch", "tensorflow-cpu", "torch-model-archiver")
    }


def export_model(
    name: str, out_root: str | Path, seed: int = DEFAULT_SEED, version: int = 1
) -> ExportRecord:
    """Build the seeded model once and package it: the .mar (TorchServe; KServe serves its TorchScript
    file) and the SavedModel (TF Serving)."""
    art = artifacts(name, out_root, version)
    art.model_store.mkdir(parents=True, exist_ok=True)
    art.tfserving_base.mkdir(parents=True, exist_ok=True)
    model = get_model(name).build_torch(seed)
    record = ExportRecord(
        model=name,
        version=version,
        seed=seed,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        libraries=_libraries(),
        torchserve=_export_torchserve(name, model, art, version),
        tfserving=_export_tfserving(name, model, art),
    )
    _write_record(art.export_json, record)
    return record


def read_records(name: str, out_root: str | Path) -> dict[int, dict[str, Any]]:
    """The export.json records of ``name`` by version ({} when never exported)."""
    path = artifacts(name, out_root).export_json
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {int(v): rec for v, rec in data["versions"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ExportError(
            f'{path}: expected {{"model": ..., "versions": {{"1": {{...}}}}}}: {err}'
        ) from None


def _write_record(path: Path, record: ExportRecord) -> None:
    versions = {str(v): rec for v, rec in read_records(record.model, path.parent.parent).items()}
    versions[str(record.version)] = record.to_json()
    data = {
        "model": record.model,
        "versions": dict(sorted(versions.items(), key=lambda kv: int(kv[0]))),
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
