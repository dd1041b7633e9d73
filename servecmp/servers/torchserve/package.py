"""TorchServe's artifact: a ``.mar`` archive of the exported TorchScript file (an ONNX-source
card's ``.onnx``), the handler and
the model's input spec (``model_spec.json``), made by ``torch-model-archiver``.

The archiver (pytorch/serve v0.12.0 model-archiver) stores ``--serialized-file`` under its own
name and writes ``<export-path>/<model-name>.mar``; v2+ keep the served name, so the file is
renamed to ``mar_filename(name, version)``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servecmp.models.card import ModelCard
    from servecmp.models.export import Artifacts, PackagingRecord

HANDLER_FILE = Path(__file__).parents[2] / "models" / "handler.py"
SPEC_FILE = "model_spec.json"  # must match handler.SPEC_FILE
SERIALIZED = "model.pt"  # the TorchScript file's name inside the .mar (cluster/artifacts.py)
SERIALIZED_ONNX = "model.onnx"  # an ONNX-source card's file inside the .mar


def archiver() -> str:
    from servecmp.models.export import ExportError

    # Prefer the archiver next to this interpreter (the venv), then PATH.
    local = Path(sys.executable).with_name("torch-model-archiver")
    found = str(local) if local.is_file() else shutil.which("torch-model-archiver")
    if not found:
        raise ExportError(
            "torch-model-archiver not found: pip install torch-model-archiver==0.12.0"
        )
    return found


def package_mar(card: ModelCard, art: Artifacts, version: int) -> PackagingRecord:
    from servecmp.models.export import ExportError, PackagingRecord, size_of

    staging = art.model_store / f".staging-v{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    t0 = time.perf_counter()
    # an ONNX-source card: the .onnx is the serialized file and BaseHandler opens it with
    # onnxruntime by its suffix (pytorch/serve v0.12.0 ts/torch_handler/base_handler.py)
    source, serialized = (
        (art.onnx, SERIALIZED_ONNX) if card.source.onnx else (art.torchscript, SERIALIZED)
    )
    shutil.copyfile(source, staging / serialized)
    (staging / SPEC_FILE).write_text(json.dumps(card.to_json(), indent=2))
    cmd = [
        archiver(),
        "--model-name",
        card.name,
        "--version",
        f"{version}.0",
        "--serialized-file",
        str(staging / serialized),
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
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    os.replace(staging / f"{card.name}.mar", art.mar)
    shutil.rmtree(staging)
    return PackagingRecord(
        server="torchserve",
        artifact=str(art.mar),
        steps=[
            shlex.join(["cp", str(source), serialized]),
            f"python: write {SPEC_FILE} (inputs, outputs) for the handler",
            shlex.join(cmd),
            shlex.join(["mv", f"{card.name}.mar", str(art.mar)]),
        ],
        seconds=round(time.perf_counter() - t0, 3),
        bytes=size_of(art.mar),
    )
