"""One export step for every server: build the model once, write the source artifacts, ask each
adapter to package what it declares (``ServerAdapter.artifact_kind``), prove parity, record it.

Source artifacts (from the card's PyTorch reference, seeded):
  torchscript   traced (or the card's own TorchScript file), served by KServe, the PyTorch
                baseline and any adapter declaring ``torchscript``
  onnx          ``torch.onnx.export(dynamo=False)`` (needs ``onnx``, a dependency; not onnxscript)
  savedmodel    a built-in's hand-written TF twin, else the ONNX port (servecmp/models/port.py,
                onnx2tf in .venv-port); TF Serving and the TF baseline serve it. A failed port
                makes only these two unavailable, with the port's message
Adapters that need more (TorchServe's .mar) package it from these in ``ServerAdapter.package``.
An ONNX card's source is its file: the ``onnx`` artifact is that file copied (digest recorded),
there is no TorchScript, the PyTorch-framework servers serve the ONNX file through ONNX Runtime
(``ServerAdapter.artifact_kind(source)``) and the reference is ONNX Runtime on the card's file.

Everything is written under a staging folder and moved into place only after every artifact
passed parity, so a refused export leaves nothing half-written. Layout under ``out_root``:
  <name>/torchscript/model_v<version>.pt
  <name>/onnx/model_v<version>.onnx
  <name>/torchserve/<name>.mar            TorchServe model store (v2: <name>_v2.mar, --version 2.0)
  <name>/tfserving/<name>/<version>/      TF Serving model base path + numbered SavedModel
  <name>/export.json                      one ExportRecord per exported version
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import importlib.util
import json
import os
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from servecmp.models.registry import DEFAULT_SEED, get_model

TRACE_BATCH = 2  # trace with B > 1 so nothing batch-size specific is baked in
PORT_MODULE = "servecmp.models.port"


class ExportError(RuntimeError):
    """A packaging step failed or an artifact failed parity; the message names the step, or
    carries the parity numbers."""


@dataclass(frozen=True)
class Artifacts:
    model_store: Path  # TorchServe --model-store
    mar: Path
    tfserving_base: Path  # TF Serving model base_path (holds numbered versions)
    savedmodel: Path
    export_json: Path
    torchscript: Path
    onnx: Path


@dataclass(frozen=True)
class PackagingRecord:
    server: str  # the adapter, or the source artifact's kind for source records
    artifact: str
    # what was run, in order (shell commands shlex.join-quoted, Python calls described)
    steps: list[str]
    seconds: float
    bytes: int


@dataclass(frozen=True)
class ExportRecord:
    model: str
    version: int
    seed: int  # weights seed: reference.expected_logits(model, x, seed) matches these artifacts
    created: str
    libraries: dict[str, str]
    build_s: float  # building the PyTorch reference (and its determinism check)
    sources: dict[str, PackagingRecord]  # artifact kind -> how it was made
    servers: dict[str, PackagingRecord]  # adapter name -> what it serves and how it was packaged
    unavailable: dict[str, str]  # adapter name -> why it has no artifact for this model
    parity: list[dict[str, Any]]  # verify.ArtifactParity rows
    notes: list[str] = field(default_factory=list)
    card_digest: str = ""  # ModelCard.digest() of what was exported
    # why the ONNX -> TensorFlow port was skipped ("" when it ran or a TF twin was used), e.g.
    # "not ported (no TF target)"
    not_ported: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # each adapter's record also at the top level: friction.packaging reads rec[server]
        data.update(data["servers"])
        return data


def mar_filename(name: str, version: int = 1) -> str:
    return f"{name}.mar" if version == 1 else f"{name}_v{version}.mar"


def artifacts(name: str, out_root: str | Path, version: int = 1) -> Artifacts:
    name = get_model(name).name  # unknown names fail here, with the allowed list
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
        torchscript=root / "torchscript" / f"model_v{version}.pt",
        onnx=root / "onnx" / f"model_v{version}.onnx",
    )


def seed_for_version(seed: int, version: int) -> int:
    """Weights seed of model version ``version``: each version gets different weights."""
    return seed + version - 1


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _example(card: Any, seed: int) -> tuple[Any, ...]:
    import torch

    from servecmp.models.sources import example_inputs

    return tuple(torch.from_numpy(a) for a in example_inputs(card, TRACE_BATCH, seed))


def _torchscript(card: Any, model: Any, art: Artifacts, seed: int) -> PackagingRecord:
    import torch

    t0 = time.perf_counter()
    art.torchscript.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, torch.jit.ScriptModule):
        model.save(str(art.torchscript))
        how = f"python: torch.jit.load({card.source.torchscript!r}).save(...) (the card's file)"
    else:
        shapes = ", ".join(
            f"{i.name}[{TRACE_BATCH}, {', '.join(map(str, i.example_shape))}]" for i in card.inputs
        )
        with torch.no_grad():
            torch.jit.trace(model, _example(card, seed)).save(str(art.torchscript))
        how = f"python: torch.jit.trace(model, ({shapes})).save('{art.torchscript.name}')"
    return PackagingRecord(
        "torchscript",
        str(art.torchscript),
        [how],
        round(time.perf_counter() - t0, 3),
        size_of(art.torchscript),
    )


def _onnx_copy(card: Any, art: Artifacts) -> PackagingRecord:
    """An ONNX card's artifact: its own file, byte for byte."""
    from servecmp.models.onnx_source import file_digest

    t0 = time.perf_counter()
    src = card.path(card.source.onnx)
    art.onnx.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, art.onnx)
    return PackagingRecord(
        "onnx",
        str(art.onnx),
        [
            shlex.join(["cp", str(src), str(art.onnx)]),
            f"sha256 {file_digest(art.onnx)} (the card's file)",
        ],
        round(time.perf_counter() - t0, 3),
        size_of(art.onnx),
    )


def _onnx(card: Any, model: Any, art: Artifacts, seed: int) -> tuple[PackagingRecord | None, str]:
    if card.source.onnx:
        return _onnx_copy(card, art), ""
    if importlib.util.find_spec("onnx") is None:
        return None, "no ONNX artifact: the onnx package is not installed"
    import torch

    t0 = time.perf_counter()
    art.onnx.parent.mkdir(parents=True, exist_ok=True)
    names = [i.name for i in card.inputs]
    outs = [o.name for o in card.outputs]
    try:
        torch.onnx.export(
            model,
            _example(card, seed),
            str(art.onnx),
            input_names=names,
            output_names=outs,
            dynamic_axes={n: {0: "batch"} for n in names + outs},
            dynamo=False,
        )
    except Exception as err:
        raise ExportError(
            f"torch.onnx.export of {card.name!r} failed: {type(err).__name__}: {err}"
        ) from None
    return PackagingRecord(
        "onnx",
        str(art.onnx),
        [
            f"python: torch.onnx.export(model, example, {art.onnx.name!r}, input_names={names}, "
            f"output_names={outs}, dynamic batch axis)"
        ],
        round(time.perf_counter() - t0, 3),
        size_of(art.onnx),
    ), ""


def _savedmodel(
    card: Any, model: Any, art: Artifacts, onnx: PackagingRecord | None, skip_port: str = ""
) -> tuple[PackagingRecord | None, str, list[str]]:
    """The SavedModel: a built-in's TF twin, else the ONNX port unless ``skip_port`` says why
    not (the port takes seconds to minutes and up to ≈16 GB for BERT)."""
    if skip_port and not card.source.tf_mirror:
        return None, skip_port, []
    t0 = time.perf_counter()
    # Written beside the version dir, then renamed: TF Serving polls the base path and must
    # never see a half-written version.
    tmp = art.tfserving_base / f".tmp-{art.savedmodel.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    art.tfserving_base.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if card.source.tf_mirror:
        import tensorflow as tf

        tf_model = card.build_tf(model)
        tf.saved_model.save(tf_model, str(tmp), signatures=tf_model.export_signatures())
        steps = [
            f"python: {card.source.tf_mirror}(torch_model) (TF twin, weights copied from PyTorch)",
            "python: tf.saved_model.save(module, dir, signatures={'serving_default': "
            "module.serve, 'serving_b64': module.serve_b64} (concrete functions))",
        ]
    elif onnx is not None and importlib.util.find_spec(PORT_MODULE) is not None:
        port = importlib.import_module(PORT_MODULE)
        try:
            res = port.port_onnx_to_savedmodel(
                Path(onnx.artifact), tmp, card.inputs, [o.name for o in card.outputs]
            )
        except port.PortError as err:
            # Refuse only the TF artifacts: the PyTorch-framework servers' artifacts do not
            # depend on the port, so a comparison among them stays possible, and TF Serving /
            # the TF baseline show the port's own message as the reason they are unavailable.
            shutil.rmtree(tmp, ignore_errors=True)
            secs = round(time.perf_counter() - t0, 3)
            return None, f"no SavedModel: the ONNX -> SavedModel port failed ({secs} s): {err}", []
        notes = [f"port: {res.tool}, {res.seconds:.1f} s", *res.notes]
        steps = [
            f"python: {PORT_MODULE}.port_onnx_to_savedmodel({Path(onnx.artifact).name!r}) ({res.tool})"
        ]
    else:
        why = "no SavedModel: no TF twin and " + (
            "no ONNX artifact to port"
            if onnx is None
            else f"no ONNX -> TensorFlow port ({PORT_MODULE})"
        )
        return None, why, notes
    shutil.rmtree(art.savedmodel, ignore_errors=True)
    os.replace(tmp, art.savedmodel)
    steps.append(shlex.join(["mv", tmp.name, str(art.savedmodel)]))
    rec = PackagingRecord(
        "savedmodel",
        str(art.savedmodel),
        steps,
        round(time.perf_counter() - t0, 3),
        size_of(art.savedmodel),
    )
    return rec, "", notes


def _libraries() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "tensorflow-cpu", "torch-model-archiver", "onnx", "onnxruntime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _relocate(rec: PackagingRecord, old: str, new: str) -> PackagingRecord:
    return dataclasses.replace(
        rec, artifact=rec.artifact.replace(old, new), steps=[s.replace(old, new) for s in rec.steps]
    )


def _move_into_place(stage: Artifacts, final: Artifacts) -> None:
    for src, dst in (
        (stage.torchscript, final.torchscript),
        (stage.onnx, final.onnx),
        (stage.mar, final.mar),
        (stage.savedmodel, final.savedmodel),
    ):
        if not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_dir():
            shutil.rmtree(dst)
        os.replace(src, dst)


NO_TF_TARGET = "not ported (no TF target)"
NO_PORT_FLAG = "not ported (--no-port)"
CARD_NO_PORT = "not ported (card: port: false)"


def needs_savedmodel(servers: Any) -> bool:
    """Whether any of ``servers`` (adapter names) serves the SavedModel (TF Serving, the TF
    baseline): only then is the ONNX -> TensorFlow port worth its time."""
    from servecmp.servers import registry

    return any(registry.get(s).artifact_kind() == "savedmodel" for s in set(servers))


def export_model(
    name: str,
    out_root: str | Path,
    seed: int = DEFAULT_SEED,
    version: int = 1,
    *,
    skip_port: str = "",
) -> ExportRecord:
    """Build the seeded model once, write its source artifacts, let each adapter package its
    own, check every artifact against PyTorch, then move them into place and record it.
    ``ExportError`` (with the parity table) when an artifact differs; nothing is left behind.
    ``skip_port``: why the ONNX -> TensorFlow port is not run (e.g. ``NO_TF_TARGET``); the
    SavedModel's servers are then unavailable with that reason. A card with ``port: false``
    is never ported."""
    from servecmp.models.verify import table, verify
    from servecmp.servers import registry

    card = get_model(name)
    if not card.port:
        skip_port = CARD_NO_PORT
    final = artifacts(card.name, out_root, version)
    staging_root = Path(out_root) / f".staging-{card.name}-v{version}"
    shutil.rmtree(staging_root, ignore_errors=True)
    stage = artifacts(card.name, staging_root, version)
    stage.model_store.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        model = card.build_torch(seed)
        build_s = round(time.perf_counter() - t0, 3)
        # an ONNX card has no TorchScript: its servers run the ONNX file itself
        sources: dict[str, PackagingRecord] = (
            {} if card.source.onnx else {"torchscript": _torchscript(card, model, stage, seed)}
        )
        onnx, onnx_why = _onnx(card, model, stage, seed)
        saved, saved_why, notes = _savedmodel(card, model, stage, onnx, skip_port)
        notes += [w for w in (onnx_why,) if w]
        sources.update({k: r for k, r in (("onnx", onnx), ("savedmodel", saved)) if r is not None})
        missing = {"onnx": onnx_why, "savedmodel": saved_why}
        servers: dict[str, PackagingRecord] = {}
        unavailable: dict[str, str] = {}
        for adapter in registry.adapters():
            kind = adapter.artifact_kind(card.source.kind)
            refused = adapter.source_refusal(card.source.kind)
            if refused:
                unavailable[adapter.name] = refused
                continue
            packaged = adapter.package(card, stage, version)
            if packaged is not None:
                sources[kind] = packaged
                servers[adapter.name] = packaged
            elif kind in sources:
                servers[adapter.name] = dataclasses.replace(sources[kind], server=adapter.name)
            else:
                unavailable[adapter.name] = missing.get(kind) or f"no {kind} artifact"
        rows = verify(
            card,
            model,
            seed,
            torchscript=None if card.source.onnx else stage.torchscript,
            mar=stage.mar if stage.mar.is_file() else None,
            onnx=stage.onnx if onnx is not None else None,
            savedmodel=stage.savedmodel if saved is not None else None,
        )
        if not all(r.passed for r in rows):
            raise ExportError(
                f"export of {card.name!r} v{version} refused: an artifact differs from the "
                f"{'ONNX Runtime' if card.source.onnx else 'PyTorch'} reference (seed {seed})"
                f"\n{table(rows)}"
            )
        _move_into_place(stage, final)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    old, new = str(staging_root), str(Path(out_root))
    record = ExportRecord(
        model=card.name,
        version=version,
        seed=seed,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        libraries=_libraries(),
        build_s=build_s,
        sources={k: _relocate(r, old, new) for k, r in sources.items()},
        servers={k: _relocate(r, old, new) for k, r in servers.items()},
        unavailable=unavailable,
        parity=[r.to_json() for r in rows],
        notes=notes,
        card_digest=card.digest(),
        not_ported=saved_why if saved is None and saved_why == skip_port else "",
    )
    _write_record(final.export_json, record)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
