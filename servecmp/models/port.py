"""ONNX -> TensorFlow SavedModel for TF Serving, through onnx2tf in its own venv (.venv-port).

onnx2tf 1.29.24 pins tensorflow 2.19 / numpy 1.26 / protobuf 4 (the main venv has TF 2.20, numpy
2, protobuf 7), so the conversion runs as a subprocess in ``.venv-port`` (scripts/setup-port.sh)
with ``port_worker.py``. The SavedModel is written to a temporary folder beside ``out_dir`` and
renamed into place only after it loads in this venv's TensorFlow (the TF Serving pin) with a
serving signature equal to the input spec: names, dtypes and shapes, layout included (NCHW must
stay NCHW, so the TF Serving request carries the same tensor as the TorchServe one).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("port_worker.py")
VENV_ENV = "SERVECMP_PORT_VENV"
DTYPES = ("float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool")
TIMEOUT_ENV = "SERVECMP_PORT_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0  # a BERT-base-sized graph takes minutes on 2 busy cores


class PortError(ValueError):
    """The port failed: the message names the unsupported op and node, or the failed step."""


class TensorSpecLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> tuple[int | None, ...]: ...  # None: the dynamic batch axis, first
    @property
    def dtype(self) -> str: ...


@dataclass(frozen=True)
class PortResult:
    saved_model_dir: Path
    seconds: float
    tool: str  # e.g. "onnx2tf 1.29.24"
    notes: tuple[str, ...]  # layout facts, the TensorFlow that wrote it, the ONNX-vs-TF check


Signature = Mapping[str, tuple[tuple[int | None, ...], str]]  # name -> (shape, dtype)


def port_venv() -> Path:
    return Path(os.environ.get(VENV_ENV) or ROOT / ".venv-port")


def validate_specs(inputs: Sequence[TensorSpecLike], outputs: Sequence[str]) -> None:
    if not inputs:
        raise PortError("inputs: expected at least one input spec, got none")
    seen: set[str] = set()
    for k, spec in enumerate(inputs):
        where = f"inputs[{k}]"
        if not isinstance(spec.name, str) or not spec.name:
            raise PortError(f"{where}.name: expected a non-empty string, got {spec.name!r}")
        if spec.name in seen:
            raise PortError(f"{where}.name: {spec.name!r} is named twice")
        seen.add(spec.name)
        shape = tuple(spec.shape)
        if not shape or any(d is not None and (not isinstance(d, int) or d <= 0) for d in shape):
            raise PortError(
                f"{where}.shape ({spec.name}): expected positive ints with None for a dynamic "
                f"axis, got {spec.shape!r}"
            )
        if spec.dtype not in DTYPES:
            raise PortError(
                f"{where}.dtype ({spec.name}): expected one of {DTYPES}, got {spec.dtype!r}"
            )
    if not outputs or any(not isinstance(o, str) or not o for o in outputs):
        raise PortError(f"outputs: expected one or more output names, got {list(outputs)!r}")


def check_signature(signature: Signature, inputs: Sequence[TensorSpecLike]) -> None:
    """The SavedModel's serving inputs must equal the spec: a mismatch names the input and both."""
    want = {s.name: (tuple(s.shape), s.dtype) for s in inputs}
    missing = sorted(set(want) - set(signature))
    extra = sorted(set(signature) - set(want))
    if missing or extra:
        raise PortError(
            f"serving signature inputs {sorted(signature)} differ from the spec {sorted(want)}"
            f" (missing {missing}, unexpected {extra})"
        )
    for name, (shape, dtype) in want.items():
        got_shape, got_dtype = signature[name]
        if tuple(got_shape) != shape:
            hint = ""
            if len(shape) == 4 and tuple(got_shape) == (shape[0], shape[2], shape[3], shape[1]):
                hint = " (channels moved last: NHWC instead of the spec's NCHW)"
            raise PortError(
                f"input {name}: the SavedModel signature has shape {_fmt(got_shape)}, "
                f"the spec {_fmt(shape)}{hint}"
            )
        if got_dtype != dtype:
            raise PortError(
                f"input {name}: the SavedModel signature has dtype {got_dtype}, the spec {dtype}"
            )


def _fmt(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def read_signature(saved_model_dir: Path) -> tuple[Signature, list[str]]:
    """Inputs (name -> shape, dtype) and output names of ``serving_default``, loaded by this
    venv's TensorFlow (the TF Serving pin) in a subprocess: TF stays out of the caller's process."""
    code = (
        "import json, sys, tensorflow as tf\n"
        "f = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "ins = {k: [list(v.shape), v.dtype.name] for k, v in f.structured_input_signature[1].items()}\n"
        "print('SIGNATURE=' + json.dumps([ins, sorted(f.structured_outputs)]))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(saved_model_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    except subprocess.TimeoutExpired as e:
        raise PortError(f"load: loading {saved_model_dir} took over {e.timeout:.0f} s") from e
    line = next((s for s in proc.stdout.splitlines() if s.startswith("SIGNATURE=")), None)
    if proc.returncode != 0 or line is None:
        raise PortError(
            f"load: this venv's TensorFlow cannot load the ported SavedModel {saved_model_dir}: "
            f"{_tail(proc.stderr)}"
        )
    ins, outs = json.loads(line.removeprefix("SIGNATURE="))
    sig = {k: (tuple(d for d in shape), dtype) for k, (shape, dtype) in ins.items()}
    return sig, list(outs)


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _run_worker(
    python: Path,
    onnx_path: Path,
    tmp_model: Path,
    inputs: Sequence[TensorSpecLike],
    outputs: Sequence[str],
    keep_layout: bool,
) -> dict[str, object]:
    work = tmp_model.parent
    request = {
        "onnx": str(onnx_path),
        "out": str(tmp_model),
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in inputs],
        "outputs": list(outputs),
        "keep_layout": keep_layout,
    }
    (work / "request.json").write_text(json.dumps(request))
    log = work / "port.log"
    timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)  # the main venv's packages must not shadow the port venv's
    with log.open("w") as fh:
        try:
            proc = subprocess.run(
                [str(python), str(WORKER), str(work / "request.json"), str(work / "result.json")],
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=work,
                env=env,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise PortError(
                f"convert: onnx2tf did not finish within {timeout:.0f} s ({TIMEOUT_ENV})"
            ) from e
    result_file = work / "result.json"
    if proc.returncode != 0 or not result_file.exists():
        raise PortError(
            f"convert: the port worker exited with status {proc.returncode}: {_tail(log.read_text())}"
        )
    result: dict[str, object] = json.loads(result_file.read_text())
    return result


def port_onnx_to_savedmodel(
    onnx_path: Path,
    out_dir: Path,
    inputs: Sequence[TensorSpecLike],
    outputs: Sequence[str],
    *,
    keep_layout: bool = True,
) -> PortResult:
    """Port ``onnx_path`` to a SavedModel at ``out_dir`` (replaced only on success).

    ``keep_layout=False`` lets onnx2tf move channels last, as it does by default; the signature
    check then refuses the result (scripts/bench_port.py shows it)."""
    start = time.perf_counter()
    onnx_path, out_dir = Path(onnx_path).resolve(), Path(out_dir).resolve()
    validate_specs(inputs, outputs)
    if not onnx_path.is_file():
        raise PortError(f"onnx_path: {onnx_path} is not a file")
    python = port_venv() / "bin" / "python"
    if not python.exists():
        raise PortError(
            f"the port venv {port_venv()} is missing: run scripts/setup-port.sh (or set {VENV_ENV})"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.port-", dir=out_dir.parent))
    try:
        tmp_model = work / "saved_model"
        result = _run_worker(python, onnx_path, tmp_model, inputs, outputs, keep_layout)
        if not result.get("ok"):
            if result.get("op"):
                raise PortError(f"unsupported op: {result['message']}")
            raise PortError(f"{result.get('step')}: {result.get('message')}")
        signature, out_names = read_signature(tmp_model)
        check_signature(signature, inputs)
        if sorted(out_names) != sorted(outputs):
            raise PortError(f"serving signature outputs {out_names}, expected {list(outputs)}")
        _replace(tmp_model, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    layout = ", ".join(f"{s.name} {_fmt(s.shape)} {s.dtype}" for s in inputs)
    raw = result.get("notes")
    notes = (
        f"serving signature keeps the ONNX inputs as they are: {layout}",
        *(str(n) for n in (raw if isinstance(raw, list) else [])),
    )
    return PortResult(out_dir, time.perf_counter() - start, str(result["tool"]), notes)


def _replace(new: Path, dest: Path) -> None:
    """Move ``new`` to ``dest``; an existing ``dest`` is removed only once ``new`` is in place."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        dest.rename(old)
    new.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
