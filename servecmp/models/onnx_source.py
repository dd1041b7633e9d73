"""An ONNX file as a model's source: loaded, checked against its card and run by ONNX Runtime.

The reference of an ONNX card is ONNX Runtime on the card's own file (no ONNX -> PyTorch
converter runs here: both on the registry need torchvision, which fails at import beside torch
2.13). ``OnnxModel`` stands where a torch module stands for the other sources
(``sources.run_torch`` runs either), so the card check, parity and payload answers use it alike.

Refusals are ``ModelCardError`` naming the card's field: a file that is not ONNX, a graph whose
inputs or outputs differ from the card's (name, dtype, non-batch shape), an op ONNX Runtime
cannot run (named with its node).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from servecmp.models.card import ModelCardError

if TYPE_CHECKING:
    from servecmp.models.card import ModelCard

# onnx TensorProto.DataType codes of the dtypes a card may declare
ONNX_DTYPES = {1: "float32", 6: "int32", 7: "int64"}
ONNX_TYPE_NAMES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}


def ort_version() -> str:
    try:
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return "not installed"


def runtime_label() -> str:
    """How reports name what ran an ONNX source in-process."""
    return f"ONNX Runtime {ort_version()} (in-process)"


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def session_options(intra_op_threads: int | None) -> Any:
    """The thread budget every server's session gets: intra-op = the server's per-worker math
    threads (torch.set_num_threads for a TorchScript model), inter-op 1 (sequential execution)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if intra_op_threads:
        opts.intra_op_num_threads = int(intra_op_threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return opts


@dataclass
class OnnxModel:
    """An ONNX Runtime session on a card's file; ``run`` takes the card's inputs in order."""

    path: Path
    input_names: list[str]
    output_names: list[str]
    parameter_count: int
    session: Any = field(repr=False)

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        feeds = {n: np.ascontiguousarray(a) for n, a in zip(self.input_names, arrays, strict=True)}
        return [np.asarray(o) for o in self.session.run(self.output_names, feeds)]

    def eval(self) -> OnnxModel:  # parity with nn.Module's call sites
        return self


def _where(card: ModelCard) -> str:
    return f"{card.card_path}: " if card.card_path else f"model {card.name!r}: "


def _dims(value_info: Any) -> list[int | str | None]:
    shape = value_info.type.tensor_type.shape
    out: list[int | str | None] = []
    for d in shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            out.append(d.dim_param or None)
    return out


def _load_graph(card: ModelCard, path: Path) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path))
    except (DecodeError, OSError, ValueError, RuntimeError) as err:
        raise ModelCardError(
            f"{_where(card)}source.onnx: not an ONNX model: {path} ({type(err).__name__}: "
            f"{str(err).strip()[:200]})"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise ModelCardError(f"{_where(card)}source.onnx: not an ONNX model: {path} (no graph)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise ModelCardError(
            f"{_where(card)}source.onnx: not an ONNX model: {path} (onnx.checker: "
            f"{str(err).strip().splitlines()[0][:300]})"
        ) from None
    return model


def _check_inputs(card: ModelCard, graph: Any) -> None:
    inits = {i.name for i in graph.initializer}
    feeds = [v for v in graph.input if v.name not in inits]
    names = [v.name for v in feeds]
    if [i.name for i in card.inputs] != names:
        raise ModelCardError(
            f"{_where(card)}inputs: the card declares {[i.name for i in card.inputs]}, the ONNX "
            f"graph's inputs are {names} (same names, same order)"
        )
    for k, (spec, v) in enumerate(zip(card.inputs, feeds, strict=True)):
        elem = v.type.tensor_type.elem_type
        if ONNX_DTYPES.get(elem) != spec.dtype:
            raise ModelCardError(
                f"{_where(card)}inputs.{k}.dtype: declared {spec.dtype}, the ONNX graph's input "
                f"{v.name!r} is {ONNX_TYPE_NAMES.get(elem, f'type {elem}')}"
            )
        dims = _dims(v)
        rest = dims[1:]
        fixed = [d if isinstance(d, int) else None for d in rest]
        if len(dims) != len(spec.shape) or any(
            g is not None and g != c for g, c in zip(fixed, spec.example_shape, strict=True)
        ):
            raise ModelCardError(
                f"{_where(card)}inputs.{k}.shape: declared {spec.shape}, the ONNX graph's input "
                f"{v.name!r} is {[None, *rest] if dims else dims}"
            )


def _check_outputs(card: ModelCard, graph: Any) -> list[str]:
    names = [v.name for v in graph.output]
    if len(names) != len(card.outputs):
        raise ModelCardError(
            f"{_where(card)}outputs: the card declares {len(card.outputs)} output(s) "
            f"({', '.join(o.name for o in card.outputs)}), the ONNX graph has {len(names)} "
            f"({', '.join(names)})"
        )
    for k, (spec, name) in enumerate(zip(card.outputs, names, strict=True)):
        if spec.name != name:
            raise ModelCardError(
                f"{_where(card)}outputs.{k}.name: declared {spec.name!r}, the ONNX graph's "
                f"output {k} is {name!r}"
            )
    return names


_OP_IN_MESSAGE = re.compile(r"([A-Za-z_.]*:)?([A-Za-z_][A-Za-z0-9_]*)\(-?\d+\)")


def _session_error(card: ModelCard, path: Path, graph: Any, err: Exception) -> ModelCardError:
    """ONNX Runtime refused the graph: name the op and node it cannot run where the message
    says which (e.g. "Could not find an implementation for Foo(1) node with name 'n0'",
    "com.x:Foo(-1) is not a registered function/op")."""
    msg = str(err).strip().replace("\n", " ")
    ops = {n.op_type for n in graph.node}
    named = [m.group(2) for m in _OP_IN_MESSAGE.finditer(msg) if m.group(2) in ops]
    if named:
        op = named[0]
        nodes = [n for n in graph.node if n.op_type == op]
        where = ", ".join(repr(n.name or f"#{list(graph.node).index(n)}") for n in nodes[:3])
        domain = nodes[0].domain or "ai.onnx"
        return ModelCardError(
            f"{_where(card)}source.onnx: ONNX Runtime {ort_version()} cannot run op {op!r} "
            f"(domain {domain}) at node {where} of {path}: {msg[:300]}"
        )
    return ModelCardError(
        f"{_where(card)}source.onnx: ONNX Runtime {ort_version()} cannot load {path}: {msg[:300]}"
    )


def load_onnx(card: ModelCard, intra_op_threads: int | None = None) -> OnnxModel:
    """The card's ONNX file as an ONNX Runtime session, after checking the graph against the
    card (inputs by name, dtype and non-batch shape; outputs by count and name)."""
    assert card.source.onnx is not None
    path = card.path(card.source.onnx)
    model = _load_graph(card, path)
    graph = model.graph
    _check_inputs(card, graph)
    outputs = _check_outputs(card, graph)
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelCardError(
            f"{_where(card)}source.onnx: onnxruntime is not installed (scripts/setup.sh installs "
            "it): an ONNX source is run by ONNX Runtime"
        ) from None
    try:
        session = ort.InferenceSession(
            str(path),
            sess_options=session_options(intra_op_threads),
            providers=["CPUExecutionProvider"],
        )
    except Exception as err:  # ORT raises its own Fail/NotImplemented/InvalidGraph classes
        raise _session_error(card, path, graph, err) from None
    params = int(sum(int(np.prod(t.dims)) for t in graph.initializer))
    return OnnxModel(path, [i.name for i in card.inputs], outputs, params, session)
