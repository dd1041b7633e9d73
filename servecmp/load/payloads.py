"""Seeded request payloads: one tensor per index, sent unchanged to every target.

A :class:`PayloadSet` holds ``distinct_inputs`` seeded float32 batches ``[B, C, H, W]``, the
expected logits ``[B, classes]`` for each (computed in-process by the PyTorch reference, or
injected), and the request bodies for each wire encoding, encoded once per encoding before the
hot loop (``prepare``) so that encoding cost never lands inside a measured request.

Input values are exact multiples of 1/256 in [-4, 4]: every such value is a float32 *and* has a
short exact decimal form, so the JSON text body decodes to bit-identical float32 on any server
(no decimal rounding), the raw/b64/TensorProto bodies carry the same bytes, and the only
difference between targets is the wire format.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from servecmp.experiment import Encoding

FORMAT_VERSION = 1
PAYLOAD_FILE = "payloads.npz"
QUANTUM = 1.0 / 256.0  # inputs are k * QUANTUM, |value| <= CLIP
CLIP = 4.0

# Name of the TF Serving signature that takes the b64 (DT_STRING) form of the input: one
# little-endian float32 [C, H, W] buffer per batch item (tf.io.decode_raw inside the model).
B64_SIGNATURE = "serving_b64"


class ModelSpecLike(Protocol):
    """What payloads need from ``servecmp.models.registry.ModelSpec``."""

    @property
    def name(self) -> str: ...
    @property
    def input_shape(self) -> tuple[int, ...]: ...  # [C, H, W] (a leading batch dim is dropped)
    @property
    def num_classes(self) -> int: ...


ExpectedFn = Callable[[np.ndarray], np.ndarray]  # inputs [M, C, H, W] -> logits [M, classes]


def chw(spec: ModelSpecLike) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in spec.input_shape if d is not None)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3:
        raise ValueError(f"model {spec.name!r}: input_shape {spec.input_shape} is not [C, H, W]")
    return shape


def seeded_inputs(
    seed: int,
    distinct_inputs: int,
    batch_size: int,
    shape: tuple[int, int, int],
    value_range: tuple[float, float] = (-CLIP, CLIP),
) -> np.ndarray:
    """Deterministic inputs ``[N, B, C, H, W]`` float32, exact multiples of 1/256 in
    ``value_range`` (the model card's input range; [-4, 4] by default)."""
    # the bounds themselves on the 1/256 grid, inside the range, so clipped values stay exact
    lo = float(np.ceil(value_range[0] / QUANTUM) * QUANTUM)
    hi = float(np.floor(value_range[1] / QUANTUM) * QUANTUM)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((distinct_inputs, batch_size, *shape), dtype=np.float64)
    x = np.clip(np.round(x / QUANTUM) * QUANTUM, lo, hi)
    return np.ascontiguousarray(x.astype("<f4"))


def value_range(spec: ModelSpecLike) -> tuple[float, float]:
    """The generated inputs' range from a model card's input spec ([-4, 4] without one)."""
    inputs = getattr(spec, "inputs", None)
    if inputs and len(inputs) == 1 and hasattr(inputs[0], "value_range"):
        lo, hi = inputs[0].value_range
        return float(lo), float(hi)
    return (-CLIP, CLIP)


def reference_expected(spec: ModelSpecLike, weights_seed: int | None = None) -> ExpectedFn:
    """The models package's PyTorch reference logits for ``spec`` with the weights of
    ``weights_seed`` (``None``: the registry default), imported lazily."""
    try:
        from servecmp.models import reference
    except ImportError as err:  # pragma: no cover - depends on the models work
        raise RuntimeError(
            "servecmp.models.reference is not available: pass expected= to PayloadSet.build"
        ) from err
    fn = getattr(reference, "expected_logits", None)
    if fn is None:  # pragma: no cover
        raise RuntimeError("servecmp.models.reference has no expected_logits(model, inputs)")
    if weights_seed is None:
        return lambda inputs: np.asarray(fn(spec.name, inputs), dtype=np.float32)
    return lambda inputs: np.asarray(fn(spec.name, inputs, weights_seed), dtype=np.float32)


def _json_body(batch: np.ndarray) -> bytes:
    # float32 -> Python float is exact; the values are dyadic with <= 8 fractional digits,
    # so repr() is short and exact.
    return json.dumps({"instances": batch.tolist()}, separators=(",", ":")).encode()


def _oip_json_body(batch: np.ndarray, input_name: str) -> bytes:
    # Open Inference Protocol v2 REST: the tensor's data flattened in row-major order.
    body = {
        "inputs": [
            {
                "name": input_name,
                "shape": list(batch.shape),
                "datatype": "FP32",
                "data": batch.ravel().tolist(),
            }
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _b64_body(batch: np.ndarray, input_name: str) -> bytes:
    instances = [
        {input_name: {"b64": base64.b64encode(item.astype("<f4").tobytes()).decode("ascii")}}
        for item in batch
    ]
    body = {"signature_name": B64_SIGNATURE, "instances": instances}
    return json.dumps(body, separators=(",", ":")).encode()


# numpy dtype name -> tensorflow DataType name (types.proto); the inputs a card can declare
TF_DTYPES = {"float32": "DT_FLOAT", "int64": "DT_INT64", "int32": "DT_INT32"}


def tensor_proto(array: np.ndarray) -> Any:
    """A ``tensorflow.TensorProto`` with little-endian ``tensor_content`` bytes (no tf ops
    involved): float32 for floats, integers in their own width (int64 token ids stay DT_INT64,
    which a signature input of that dtype requires: TF Serving converts nothing).

    Importing ``tensorflow.core.framework.tensor_pb2`` loads the tensorflow package once
    (that is how the official TF Serving API stubs are packaged); building the message uses only
    protobuf fields.
    """
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    arr = _wire(array)
    if arr.dtype.name not in TF_DTYPES:
        raise ValueError(f"tensor_proto: dtype {arr.dtype.name} is not one of {list(TF_DTYPES)}")
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DataType.Value(TF_DTYPES[arr.dtype.name]),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in arr.shape]
        ),
        tensor_content=arr.tobytes(),
    )


def tensor_proto_to_array(proto: Any) -> np.ndarray:
    """Decode a float32 TensorProto (``tensor_content`` or ``float_val``) without tensorflow ops."""
    from tensorflow.core.framework import types_pb2

    if proto.dtype != types_pb2.DT_FLOAT:
        raise ValueError(f"expected DT_FLOAT, got dtype {proto.dtype}")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if proto.tensor_content:
        flat = np.frombuffer(proto.tensor_content, dtype="<f4")
    else:
        flat = np.asarray(proto.float_val, dtype=np.float32)
        if flat.size == 1 and int(np.prod(shape)) > 1:
            flat = np.full(int(np.prod(shape)), flat[0], dtype=np.float32)
    return flat.reshape(shape)


OIP_DATATYPES = {"float32": "FP32", "int64": "INT64", "int32": "INT32"}
# Encodings that carry several inputs or integer inputs (see PayloadSet._encode_multi).
MULTI_ENCODINGS = ("json", "raw", "bytes", "oip", "oip-binary", "ndarray", "tensorproto")
# The binary tensor extension's request header naming the JSON part's length (Triton v2.51.0
# src/common.h kInferHeaderContentLengthHTTPHeader; KServe 0.21.0 constants.py, lower case).
INFER_HEADER_LENGTH = "Inference-Header-Content-Length"


class BinaryBody(bytes):
    """A body of the OIP binary tensor extension: the JSON header, then the tensors' bytes;
    ``header_length`` is the JSON part's length (the ``Inference-Header-Content-Length``)."""

    header_length: int

    def __new__(cls, data: bytes, header_length: int) -> BinaryBody:
        if not 0 <= header_length <= len(data):
            raise ValueError(f"header_length {header_length} outside the body of {len(data)} B")
        self = super().__new__(cls, data)
        self.header_length = header_length
        return self


def oip_binary_body(names: list[str], arrays: list[np.ndarray]) -> BinaryBody:
    """Open Inference Protocol REST with the binary tensor extension (Triton v2.51.0
    docs/protocol/extension_binary_data.md): each input's ``binary_data_size`` in the JSON
    header, its little-endian row-major bytes after the header in the same order, and
    ``binary_data_output`` asking for every output as binary data the same way."""
    raw = [_wire(a) for a in arrays]
    header = {
        "inputs": [
            {
                "name": n,
                "shape": list(a.shape),
                "datatype": OIP_DATATYPES[a.dtype.name],
                "parameters": {"binary_data_size": a.nbytes},
            }
            for n, a in zip(names, raw, strict=True)
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    return BinaryBody(head + b"".join(a.tobytes() for a in raw), len(head))


def _wire(array: Any) -> np.ndarray:
    """Floats as little-endian float32, integers little-endian in their own width."""
    a = np.asarray(array)
    if a.dtype.kind in "iu":
        return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a, dtype="<f4")


@dataclass
class PayloadSet:
    """Seeded inputs, expected logits and pre-encoded bodies for one model and batch size.

    ``inputs`` is the model's (first) input ``[N, B, ...]``; a model card with several inputs
    (token ids and an attention mask) has the others in ``more_inputs``, in the card's order, and
    their names in ``input_names``."""

    model: str
    seed: int
    inputs: np.ndarray  # [N, B, C, H, W] float32
    expected: np.ndarray  # [N, B, classes] float32
    atol: float = 1e-3
    weights_seed: int | None = None  # the model weights the expected logits belong to
    input_name: str = "input"
    output_name: str = "logits"
    more_inputs: list[np.ndarray] = field(default_factory=list)
    input_names: list[str] = field(default_factory=list)  # every input's name; [] = [input_name]
    _bodies: dict[Encoding, list[Any]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.inputs = _wire(self.inputs)
        self.more_inputs = [_wire(a) for a in self.more_inputs]
        self.expected = np.ascontiguousarray(self.expected, dtype=np.float32)
        if self.inputs.ndim < 3:
            raise ValueError(f"inputs must be [N, B, ...], got shape {self.inputs.shape}")
        if any(a.shape[:2] != self.inputs.shape[:2] for a in self.more_inputs):
            raise ValueError(
                f"more_inputs must share [N, B] = {list(self.inputs.shape[:2])} with inputs, got "
                f"{[list(a.shape) for a in self.more_inputs]}"
            )
        if self.input_names and len(self.input_names) != 1 + len(self.more_inputs):
            raise ValueError(
                f"input_names: expected {1 + len(self.more_inputs)} names, got {self.input_names}"
            )
        if self.expected.ndim != 3 or self.expected.shape[:2] != self.inputs.shape[:2]:
            raise ValueError(
                f"expected must be [N, B, classes] matching inputs {self.inputs.shape[:2]}, "
                f"got {self.expected.shape}"
            )

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        spec: ModelSpecLike,
        seed: int,
        batch_size: int,
        distinct_inputs: int,
        *,
        atol: float = 1e-3,
        expected: np.ndarray | ExpectedFn | None = None,
        weights_seed: int | None = None,
        encodings: Iterable[Encoding] = (),
    ) -> PayloadSet:
        """Seeded inputs for ``spec``; expected logits from ``expected`` (array ``[N, B, K]`` or
        a function of ``[M, C, H, W]``) or, by default, the models package's PyTorch reference
        (``servecmp.models.reference.expected_logits``) with the weights of ``weights_seed``
        (the seed the artifacts were exported with; ``None`` = the registry default)."""
        card_inputs = getattr(spec, "inputs", None) or []
        if len(card_inputs) > 1 or (card_inputs and card_inputs[0].dtype != "float32"):
            return cls._build_multi(
                spec,
                seed,
                batch_size,
                distinct_inputs,
                atol=atol,
                expected=expected,
                weights_seed=weights_seed,
                encodings=encodings,
            )
        shape = chw(spec)
        inputs = seeded_inputs(seed, distinct_inputs, batch_size, shape, value_range(spec))
        if expected is None:
            expected = reference_expected(spec, weights_seed)
        if callable(expected):
            flat = inputs.reshape(distinct_inputs * batch_size, *shape)
            logits = np.asarray(expected(flat), dtype=np.float32)
            exp_arr = logits.reshape(distinct_inputs, batch_size, -1)
        else:
            exp_arr = np.asarray(expected, dtype=np.float32)
        if exp_arr.shape[-1] != spec.num_classes:
            raise ValueError(
                f"expected logits have {exp_arr.shape[-1]} classes, model {spec.name!r} "
                f"declares {spec.num_classes}"
            )
        ps = cls(
            model=spec.name,
            seed=seed,
            inputs=inputs,
            expected=exp_arr,
            atol=atol,
            weights_seed=weights_seed,
            input_name=getattr(spec, "input_name", "input") or "input",
            output_name=getattr(spec, "output_name", "logits") or "logits",
        )
        ps.prepare(encodings)
        return ps

    @classmethod
    def _build_multi(
        cls,
        spec: Any,
        seed: int,
        batch_size: int,
        distinct_inputs: int,
        *,
        atol: float,
        expected: Any,
        weights_seed: int | None,
        encodings: Iterable[Encoding],
    ) -> PayloadSet:
        """Inputs from a model card's spec (dtype, value range) for models with several or
        integer inputs; expected outputs from the PyTorch reference unless given."""
        from servecmp.models.sources import generate

        rng = np.random.default_rng(seed)
        n = distinct_inputs * batch_size
        flat = [generate(i, n, rng) for i in spec.inputs]
        if expected is None:
            from servecmp.models.reference import expected_outputs

            expected = expected_outputs(spec.name, flat, weights_seed)
        out = np.asarray(expected(flat) if callable(expected) else expected, dtype=np.float32)
        arrays = [a.reshape(distinct_inputs, batch_size, *a.shape[1:]) for a in flat]
        ps = cls(
            model=spec.name,
            seed=seed,
            inputs=arrays[0],
            expected=out.reshape(distinct_inputs, batch_size, -1),
            atol=atol,
            weights_seed=weights_seed,
            input_name=spec.inputs[0].name,
            output_name=spec.outputs[0].name,
            more_inputs=arrays[1:],
            input_names=[i.name for i in spec.inputs],
        )
        ps.prepare(encodings)
        return ps

    @property
    def all_inputs(self) -> list[np.ndarray]:
        return [self.inputs, *self.more_inputs]

    @property
    def names(self) -> list[str]:
        return self.input_names or [self.input_name]

    @property
    def is_multi(self) -> bool:
        """Several inputs, or an integer one: bodies carry every input by name."""
        return bool(self.more_inputs) or self.inputs.dtype.kind != "f"

    def flat_inputs(self) -> list[np.ndarray]:
        """Every input as ``[N * B, ...]`` (what the reference model is called on)."""
        return [a.reshape(-1, *a.shape[2:]) for a in self.all_inputs]

    # ---- shape helpers -----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.expected.shape[2])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.inputs.shape[2:])  # type: ignore[return-value]

    def index(self, i: int) -> int:
        """Any integer to a valid payload index (requests cycle through the distinct inputs)."""
        return i % len(self)

    # ---- encodings ---------------------------------------------------------------------------
    def prepare(self, encodings: Iterable[Encoding]) -> None:
        """Encode every input for each encoding once (idempotent); call before the hot loop."""
        for enc in encodings:
            enc = Encoding(enc)
            if enc in self._bodies:
                continue
            twin = {Encoding.raw: Encoding.bytes, Encoding.bytes: Encoding.raw}.get(enc)
            if twin in self._bodies:  # same little-endian float32 bytes: share, don't copy
                self._bodies[enc] = self._bodies[twin]
                continue
            if self.is_multi:
                self._bodies[enc] = [self._encode_multi(enc, i) for i in range(len(self))]
            else:
                self._bodies[enc] = [self._encode(enc, self.inputs[i]) for i in range(len(self))]

    def _encode_multi(self, enc: Encoding, index: int) -> Any:
        arrays = [a[index] for a in self.all_inputs]
        if enc is Encoding.json:  # row objects (TF Serving's row format; the handler's too)
            rows = [
                {n: a[b].tolist() for n, a in zip(self.names, arrays, strict=True)}
                for b in range(self.batch_size)
            ]
            return json.dumps({"instances": rows}, separators=(",", ":")).encode()
        if enc in (Encoding.raw, Encoding.bytes):  # each input's tensor in order
            return b"".join(a.tobytes() for a in arrays)
        if enc is Encoding.oip:
            body = {
                "inputs": [
                    {
                        "name": n,
                        "shape": list(a.shape),
                        "datatype": OIP_DATATYPES[a.dtype.name],
                        "data": a.ravel().tolist(),
                    }
                    for n, a in zip(self.names, arrays, strict=True)
                ]
            }
            return json.dumps(body, separators=(",", ":")).encode()
        if enc is Encoding.oip_binary:
            return oip_binary_body(self.names, arrays)
        if enc is Encoding.ndarray:
            return tuple(arrays)
        if enc is Encoding.tensorproto:  # TF Serving gRPC: one TensorProto per named input
            return {n: tensor_proto(a) for n, a in zip(self.names, arrays, strict=True)}
        raise ValueError(
            f"encoding {enc.value}: model {self.model!r} has inputs "
            f"{', '.join(f'{n} {a.dtype.name}' for n, a in zip(self.names, arrays, strict=True))}; "
            f"this encoding carries one float32 tensor (multi-input encodings: "
            f"{', '.join(MULTI_ENCODINGS)})"
        )

    def _encode(self, enc: Encoding, batch: np.ndarray) -> Any:
        if enc is Encoding.json:
            return _json_body(batch)
        if enc in (Encoding.raw, Encoding.bytes):
            return batch.tobytes()  # little-endian float32, C order [B, C, H, W]
        if enc is Encoding.b64:
            return _b64_body(batch, self.input_name)
        if enc is Encoding.tensorproto:
            return tensor_proto(batch)
        if enc is Encoding.ndarray:
            return batch
        if enc is Encoding.oip:
            return _oip_json_body(batch, self.input_name)
        if enc is Encoding.oip_binary:
            return oip_binary_body([self.input_name], [batch])
        raise ValueError(f"unknown encoding {enc!r}")

    def body(self, encoding: Encoding, index: int) -> Any:
        """The pre-encoded request body (bytes; a TensorProto for ``tensorproto``; the array for
        ``ndarray``). Encodes all inputs for ``encoding`` on first use."""
        encoding = Encoding(encoding)
        bodies = self._bodies.get(encoding)
        if bodies is None:
            self.prepare([encoding])
            bodies = self._bodies[encoding]
        return bodies[index]

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, run_dir: str | Path) -> Path:
        """Write ``<run_dir>/payloads.npz`` (inputs, expected logits, seed, model, atol)."""
        path = Path(run_dir) / PAYLOAD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "seed": self.seed,
            "atol": self.atol,
            "weights_seed": self.weights_seed,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "quantum": QUANTUM,
        }
        meta["input_names"] = self.input_names
        arrays: dict[str, Any] = {
            "inputs": self.inputs,
            "expected": self.expected,
            "meta": np.array(json.dumps(meta)),
            **{f"input_{k + 1}": a for k, a in enumerate(self.more_inputs)},
        }
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PayloadSet:
        """Read a file written by :meth:`save` (a run dir or the npz path itself)."""
        p = Path(path)
        if p.is_dir():
            p = p / PAYLOAD_FILE
        with np.load(p, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{p}: unsupported payload format {meta.get('format_version')}")
            return cls(
                model=meta["model"],
                seed=int(meta["seed"]),
                inputs=data["inputs"],
                expected=data["expected"],
                atol=float(meta["atol"]),
                weights_seed=meta.get("weights_seed"),
                input_name=meta["input_name"],
                output_name=meta["output_name"],
                more_inputs=[
                    data[f"input_{k}"] for k in range(1, len(meta.get("input_names") or [None]))
                ],
                input_names=list(meta.get("input_names") or []),
            )
