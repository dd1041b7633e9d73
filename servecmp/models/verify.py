"""Parity before measuring: every exported artifact, run on seeded inputs (plus the card's real
inputs), against the reference (PyTorch; ONNX Runtime on the card's file for an ONNX source).
Per output: max |d| within a tolerance per dtype and, for a classification, the same argmax (and
top-k set) on every row. A failing artifact is
refused by the export with these numbers; the rows go to export.json and the report.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from dataclasses import replace as dataclasses_replace
from pathlib import Path
from typing import Any

import numpy as np

from servecmp.models.card import ModelCard
from servecmp.models.sources import example_inputs, run_torch
from servecmp.models.tolerance import BASE_ATOL, tolerance

# The rule (servecmp/models/tolerance.py): per-dtype atol scaled by max(1, max |reference|).
ATOL = BASE_ATOL
PARITY_N = 16

Runner = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class ArtifactParity:
    artifact: str  # artifact kind: torchscript, torchserve_mar, onnx, savedmodel
    runtime: str  # what ran it
    n: int  # rows compared
    max_abs_diff: float  # over all outputs
    atol: float  # the largest allowed (per-output tolerance after scaling)
    argmax_agree: float | None  # share of rows with the same argmax (classifications)
    topk_agree: float | None  # share of rows with the same top-k set (top_k > 1)
    passed: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        agree = "" if self.argmax_agree is None else f", argmax agree {self.argmax_agree:.0%}"
        topk = "" if self.topk_agree is None else f", top-k agree {self.topk_agree:.0%}"
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict} {self.artifact} ({self.runtime}): n={self.n} max|d|={self.max_abs_diff:.2e}"
            f" (<= {self.atol:.1e}){agree}{topk}{f'; {self.note}' if self.note else ''}"
        )


def parity_inputs(card: ModelCard, seed: int, n: int = PARITY_N) -> list[np.ndarray]:
    """Seeded inputs from the spec, followed by the card's real inputs when it names a file."""
    arrays = example_inputs(card, n, seed + 100_003)
    if card.real_inputs is None:
        return arrays
    path = card.path(card.real_inputs)
    with np.load(path, allow_pickle=False) as z:
        missing = [i.name for i in card.inputs if i.name not in z.files]
        if missing:
            from servecmp.models.card import ModelCardError

            raise ModelCardError(f"{path}: real_inputs: no array named {', '.join(missing)}")
        real = [np.asarray(z[i.name], dtype=i.dtype) for i in card.inputs]
    for spec, arr in zip(card.inputs, real, strict=True):
        if tuple(arr.shape[1:]) != spec.example_shape:
            from servecmp.models.card import ModelCardError

            raise ModelCardError(
                f"{path}: real_inputs: {spec.name}: expected shape [N, "
                f"{', '.join(map(str, spec.example_shape))}], got {list(arr.shape)}"
            )
    return [np.concatenate([a, r]) for a, r in zip(arrays, real, strict=True)]


def compare(
    card: ModelCard,
    artifact: str,
    runtime: str,
    reference: Sequence[np.ndarray],
    got: Sequence[np.ndarray],
    note: str = "",
) -> ArtifactParity:
    max_diff, allowed, ok = 0.0, 0.0, len(got) == len(reference)
    argmax: list[float] = []
    topk: list[float] = []
    for spec, ref, out in zip(card.outputs, reference, got, strict=False):
        out = np.asarray(out)
        if out.shape != ref.shape:
            return ArtifactParity(
                artifact,
                runtime,
                int(ref.shape[0]),
                float("inf"),
                0.0,
                None,
                None,
                False,
                f"output {spec.name}: shape {list(out.shape)}, expected {list(ref.shape)}",
            )
        tol = tolerance(ref.dtype, ref)
        diff = (
            float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64))))
            if ref.size
            else 0.0
        )
        diff = diff if np.isfinite(diff) else float("inf")  # NaN must fail
        max_diff, allowed = max(max_diff, diff), max(allowed, tol)
        ok &= diff <= tol
        if spec.classification:
            same = ref.argmax(axis=1) == out.argmax(axis=1)
            argmax.append(float(same.mean()))
            ok &= bool(same.all())
            if spec.top_k > 1:
                k = min(spec.top_k, ref.shape[1])
                a = np.sort(np.argsort(-ref, axis=1)[:, :k], axis=1)
                b = np.sort(np.argsort(-out, axis=1)[:, :k], axis=1)
                share = float((a == b).all(axis=1).mean())
                topk.append(share)
                ok &= share == 1.0
    return ArtifactParity(
        artifact=artifact,
        runtime=runtime,
        n=int(reference[0].shape[0]),
        max_abs_diff=max_diff,
        atol=allowed,
        argmax_agree=min(argmax) if argmax else None,
        topk_agree=min(topk) if topk else None,
        passed=bool(ok),
        note=note,
    )


def torchscript_runner(path: Path) -> Runner:
    import torch

    model = torch.jit.load(str(path), map_location="cpu")
    return lambda arrays: run_torch(model, arrays)


def savedmodel_runner(card: ModelCard, path: Path) -> Runner:
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        out = fn(**{i.name: tf.constant(a) for i, a in zip(card.inputs, arrays, strict=True)})
        return [out[o.name].numpy() for o in card.outputs]

    return run


def onnx_runner(card: ModelCard, path: Path) -> Runner:
    import onnxruntime as ort  # type: ignore[import-not-found, unused-ignore]

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        feeds = {i.name: a for i, a in zip(card.inputs, arrays, strict=True)}
        return list(sess.run([o.name for o in card.outputs], feeds))

    return run


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(
    card: ModelCard,
    model: Any,
    seed: int,
    *,
    torchscript: Path | None,
    mar: Path | None = None,
    onnx: Path | None = None,
    savedmodel: Path | None = None,
    n: int = PARITY_N,
) -> list[ArtifactParity]:
    """One row per artifact given against the card's reference (PyTorch, or ONNX Runtime on the
    card's file for an ONNX source). ``mar``: its serialized file must be the TorchScript (ONNX
    for an ONNX card) artifact's bytes; ``onnx``: a torch source's export is checked only where
    onnxruntime is installed, an ONNX source's copy always (it is what its servers run)."""
    import importlib.util

    x = parity_inputs(card, seed, n)
    ref = run_torch(model, x)
    rows: list[ArtifactParity] = []
    if torchscript is not None:
        rows.append(
            compare(card, "torchscript", "torch.jit", ref, torchscript_runner(torchscript)(x))
        )
    if onnx is not None and (card.source.onnx or importlib.util.find_spec("onnxruntime")):
        note = ""
        if card.source.onnx:
            same_src = sha256(onnx.read_bytes()) == sha256(card.path(card.source.onnx).read_bytes())
            note = (
                "the card's ONNX file, byte for byte"
                if same_src
                else "differs from the card's ONNX file"
            )
        row = compare(card, "onnx", "onnxruntime", ref, onnx_runner(card, onnx)(x), note)
        if note and "differs" in note:
            row = dataclasses_replace(row, passed=False)
        rows.append(row)
    if mar is not None:
        inner, served = ("model.onnx", onnx) if card.source.onnx else ("model.pt", torchscript)
        base = rows[0]
        with zipfile.ZipFile(mar) as z:
            names = z.namelist()
            inside = sha256(z.read(inner)) if inner in names else ""
        same = served is not None and inside == sha256(served.read_bytes())
        kind = "ONNX" if card.source.onnx else "TorchScript"
        rows.insert(
            1,
            ArtifactParity(
                "torchserve_mar",
                base.runtime,
                base.n,
                base.max_abs_diff,
                base.atol,
                base.argmax_agree,
                base.topk_agree,
                base.passed and same,
                f"{inner} is the {kind} artifact, byte for byte"
                if same
                else f"{inner} inside the .mar differs from the {kind} artifact",
            ),
        )
    if savedmodel is not None:
        rows.append(
            compare(card, "savedmodel", "tensorflow", ref, savedmodel_runner(card, savedmodel)(x))
        )
    return rows


def table(rows: Sequence[ArtifactParity]) -> str:
    return "\n".join(r.summary() for r in rows)
