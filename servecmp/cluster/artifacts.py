"""The model files a kind run ships: exactly the measured version (v1), nothing else.

``servecmp export`` may leave more under build/models/<model>/ (a v2 for the model-update
friction probe: ``<model>_v2.mar``, ``tfserving/<model>/2/``). TF Serving serves the HIGHEST
version it finds under its base path (tensorflow/serving 2.20.0
tensorflow_serving/config/file_system_storage_path_source.proto: the default
``ServableVersionPolicy`` is ``latest { num_versions: 1 }``), so a stray v2 in the artifacts image
or the hostPath copy would silently be what the cluster measures. :func:`stage` copies v1 only;
both the artifacts image's build context and the hostPath directory are staged this way.

KServe's model server loads ``<model_dir>/<version>/model.pt`` (servecmp/servers/kserve/model_server.py):
the TorchScript file inside the same v1 ``.mar`` TorchServe serves (the archiver stores the
``--serialized-file`` under its own name, model.pt: servecmp/models/export.py), extracted, so both servers
run the very same bytes. ``servecmp kind up`` stages them (servecmp/cluster/commands.py).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

MEASURED_VERSION = 1
# The serialized file's name inside a .mar (servecmp/models/export.py archives staging/model.pt).
TORCHSCRIPT_IN_MAR = "model.pt"
# Staged sub-directories, one per server that reads model files (artifacts.Dockerfile copies each).
STAGED = ("torchserve", "tfserving", "kserve")


def extract_torchscript(mar: Path, dest: Path) -> Path:
    """Write the TorchScript file of ``mar`` to ``dest`` (a .mar is a zip archive)."""
    try:
        with zipfile.ZipFile(mar) as zf:
            data = zf.read(TORCHSCRIPT_IN_MAR)
    except (zipfile.BadZipFile, KeyError) as err:
        raise ValueError(
            f"{mar}: no {TORCHSCRIPT_IN_MAR} inside ({err}); re-export the model"
        ) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest


def stage(export_dir: Path, dest: Path, model: str, version: int = MEASURED_VERSION) -> list[Path]:
    """Replace ``dest``'s torchserve/, tfserving/ and kserve/ with version ``version`` of ``model`` only."""
    from servecmp.models.export import mar_filename

    mar = export_dir / "torchserve" / mar_filename(model, version)
    saved = export_dir / "tfserving" / model / str(version)
    for path in (mar, saved):
        if not path.exists():
            raise FileNotFoundError(f"{path}: not exported (run: servecmp export --model {model})")
    for sub in STAGED:
        shutil.rmtree(dest / sub, ignore_errors=True)
    (dest / "torchserve").mkdir(parents=True)
    # the chart loads <model>.mar (TorchServe's name for v1; mar_filename(model, 1))
    shutil.copy2(mar, dest / "torchserve" / mar_filename(model, 1))
    shutil.copytree(saved, dest / "tfserving" / model / str(version))
    extract_torchscript(mar, dest / "kserve" / model / str(version) / TORCHSCRIPT_IN_MAR)
    check(dest, model, version)
    return sorted(p for p in dest.rglob("*") if p.is_file())


def check(dest: Path, model: str, version: int = MEASURED_VERSION) -> None:
    """Refuse a staged tree holding anything but the one measured version."""
    from servecmp.models.export import mar_filename

    mars = sorted(p.name for p in (dest / "torchserve").iterdir())
    if mars != [mar_filename(model, 1)]:
        raise ValueError(
            f"{dest / 'torchserve'}: expected only {mar_filename(model, 1)}, found {mars}"
        )
    models = sorted(p.name for p in (dest / "tfserving").iterdir())
    if models != [model]:
        raise ValueError(f"{dest / 'tfserving'}: expected only {model}/, found {models}")
    versions = sorted(p.name for p in (dest / "tfserving" / model).iterdir())
    if versions != [str(version)]:
        raise ValueError(
            f"{dest / 'tfserving' / model}: expected only version {version}/, found {versions} "
            f"(TF Serving would serve the highest)"
        )
    kserve = dest / "kserve" / model
    found = (
        sorted(str(p.relative_to(kserve)) for p in kserve.rglob("*") if p.is_file())
        if kserve.is_dir()
        else []
    )
    if found != [f"{version}/{TORCHSCRIPT_IN_MAR}"]:
        raise ValueError(
            f"{kserve}: expected only {version}/{TORCHSCRIPT_IN_MAR}, found {found} "
            f"(KServe's model server loads the highest version)"
        )
