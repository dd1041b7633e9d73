"""TorchServe handler for servecmp models (packaged into every .mar as ``handler.py``).

Self-contained on purpose: the worker imports only torch, numpy and ts (and onnxruntime for an
ONNX-source card's ``model.onnx``), so the .mar runs on any TorchServe image without the
servecmp package. The model's input shape comes from
``model_spec.json`` packaged beside the TorchScript file.

Wire formats (docs/ARCHITECTURE.md):
  * JSON ``{"instances": <nested list [B, C, H, W]>}``  ->  JSON ``{"predictions": [[...], ...]}``
  * raw little-endian float32 ``[B, C, H, W]`` bytes (REST application/octet-stream, gRPC
    ``input["data"]``)  ->  raw little-endian float32 ``[B, classes]`` bytes
A model with several inputs (``inputs`` in model_spec.json, e.g. int64 token ids and an
attention mask) takes JSON ``{"instances": [{<name>: <row>, ...}, ...]}`` (one object per row,
as TF Serving's row format) or raw bytes: each input's little-endian ``[B, ...]`` tensor in the
spec's order, one after the other.

TorchServe may hand one call several requests (server-side batching), each with B >= 1 rows:
their rows run as one tensor and each request gets its own slice back. A malformed request
gets HTTP 400 with a message naming what was expected; the others in the batch still succeed.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

logger = logging.getLogger(__name__)

SPEC_FILE = "model_spec.json"
# Math threads for this worker; overrides the model config's handler.intra_op_threads.
THREADS_ENV = "SERVECMP_INTRA_OP_THREADS"
JSON_TYPE = "application/json"
RAW_TYPE = "application/octet-stream"


# TorchServe's loader requires exactly ONE class in the handler module, so per-request errors
# are PredictionException(message, 4xx) and a parsed request is a plain tuple.
# (rows per input, each [B, *shape] in its dtype; answer raw bytes?)
ParsedRequest = tuple[list[np.ndarray], bool]
DTYPES = {"float32": "<f4", "int64": "<i8", "int32": "<i4"}


def bad_request(message: str) -> PredictionException:
    return PredictionException(message, 400)


def parse_threads(value: Any, source: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{source}: expected a positive integer number of threads, got {value!r}")
    return n


class ServecmpHandler(BaseHandler):
    def __init__(self) -> None:
        super().__init__()
        self.input_shape: tuple[int, ...] = ()
        self.num_classes = 0
        # (name, shape without the batch axis, little-endian numpy dtype) per model input
        self.inputs: list[tuple[str, tuple[int, ...], np.dtype]] = []
        self._parsed: list[ParsedRequest | PredictionException] = []
        self._ort = False  # serving an ONNX file through ONNX Runtime

    # ---- load ---------------------------------------------------------------------------
    def initialize(self, context: Any) -> None:
        threads = self._configure_threads(context)
        # loads the file named by --serialized-file: TorchScript (.pt) or, for an ONNX-source
        # card, an ONNX Runtime session on the .onnx (pytorch/serve v0.12.0
        # ts/torch_handler/base_handler.py `setup_ort_session`)
        super().initialize(context)
        self._ort = bool(self.model_pt_path and str(self.model_pt_path).endswith(".onnx"))
        if self._ort:
            # BaseHandler gives the session intra_op_num_threads = psutil.cpu_count(logical=True)
            # (every host core, v0.12.0 base_handler.py); a worker gets the same budget as for
            # a TorchScript model: this worker's threads, inter-op 1
            self.model = self._ort_session(str(self.model_pt_path), threads)
        spec_path = os.path.join(context.system_properties["model_dir"], SPEC_FILE)
        try:
            with open(spec_path) as f:
                spec = json.load(f)
            if "inputs" in spec:
                self.inputs = [
                    (
                        str(i["name"]),
                        tuple(int(d) for d in i["shape"][1:]),
                        np.dtype(DTYPES[i["dtype"]]),
                    )
                    for i in spec["inputs"]
                ]
            else:  # a spec written before model cards: one float32 input
                shape = tuple(int(d) for d in spec["input_shape"])
                self.inputs = [(str(spec.get("input_name", "input")), shape, np.dtype("<f4"))]
            self.input_shape = self.inputs[0][1]
            self.num_classes = int(spec.get("num_classes", 0))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
            raise RuntimeError(
                f"{spec_path}: expected JSON with input_shape (list of ints) or inputs (name, "
                f"shape, dtype per input), packaged with --extra-files: {err}"
            ) from err
        logger.info(
            "servecmp handler ready: input [B, %s], %d classes, %d intra-op threads",
            ", ".join(map(str, self.input_shape)),
            self.num_classes,
            torch.get_num_threads(),
        )

    def _configure_threads(self, context: Any) -> int:
        """This worker's math threads (0: torch's default, which TorchServe's OMP_NUM_THREADS
        may set), applied to torch and returned for an ONNX Runtime session."""
        env = os.environ.get(THREADS_ENV)
        if env:
            threads = parse_threads(env, f"environment variable {THREADS_ENV}")
        else:
            cfg = (getattr(context, "model_yaml_config", None) or {}).get("handler") or {}
            if cfg.get("intra_op_threads") is None:
                return 0  # keep torch's default (TorchServe may set OMP_NUM_THREADS)
            threads = parse_threads(
                cfg["intra_op_threads"], "model config handler.intra_op_threads"
            )
        torch.set_num_threads(threads)
        return threads

    @staticmethod
    def _ort_session(path: str, threads: int) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])

    # ---- request -> tensor --------------------------------------------------------------
    def _expected(self) -> str:
        return "[B, " + ", ".join(str(d) for d in self.input_shape) + "]"

    @property
    def _single(self) -> bool:
        """One float32 input: the original wire formats and messages."""
        return len(self.inputs) == 1 and self.inputs[0][2] == np.dtype("<f4")

    def _content_type(self, idx: int, field: str) -> str:
        if self.context is None or getattr(self.context, "request_processor", None) is None:
            return ""
        header = self.context.get_request_header(idx, field)
        if isinstance(header, dict):  # per-parameter headers: {"content-type": ...}
            return str(header.get("content-type") or "")
        return ""

    def parse_request(self, idx: int, request: Any) -> ParsedRequest:
        if not isinstance(request, dict):
            raise bad_request(
                f"request {idx}: expected a request body, got {type(request).__name__}"
            )
        field = "body" if "body" in request else "data"
        value = request.get(field)
        if isinstance(value, str):  # text/* bodies arrive decoded
            try:
                value = json.loads(value)
            except ValueError:
                raise bad_request(self._usage("body is text but not valid JSON")) from None
        if isinstance(value, (bytes, bytearray)):
            if JSON_TYPE in self._content_type(idx, field).lower():
                raise bad_request(
                    self._usage("Content-Type is application/json but the body is not valid JSON")
                )
            if not self._single:
                return (self._tensors_from_raw(value), True)
            return ([self._rows_from_raw(value)], True)
        if isinstance(value, dict):
            if not self._single:
                return (self._tensors_from_json(value), False)
            return ([self._rows_from_json(value)], False)
        got = "an empty body" if value is None else f"a JSON {type(value).__name__}"
        raise bad_request(self._usage(f"got {got}"))

    def _describe(self) -> str:
        return ", ".join(
            f"{name} [B, {', '.join(map(str, shape))}] {dt.name}" for name, shape, dt in self.inputs
        )

    def _tensors_from_raw(self, value: bytes | bytearray) -> list[np.ndarray]:
        per_row = sum(int(np.prod(shape)) * dt.itemsize for _, shape, dt in self.inputs)
        if len(value) == 0 or len(value) % per_row:
            raise bad_request(
                f"raw body: expected the inputs {self._describe()} one after the other "
                f"(little-endian), i.e. a positive multiple of {per_row} bytes, got {len(value)} bytes"
            )
        b, offset, out = len(value) // per_row, 0, []
        for _, shape, dt in self.inputs:
            n = b * int(np.prod(shape)) * dt.itemsize
            # a copy: torch wants writable memory, frombuffer gives a read-only view
            arr = np.frombuffer(value, dtype=dt, count=n // dt.itemsize, offset=offset).copy()
            out.append(
                arr.reshape(b, *shape)
                if dt.kind != "f"
                else self._finite(arr.reshape(b, *shape), "raw body")
            )
            offset += n
        return out

    def _tensors_from_json(self, value: dict) -> list[np.ndarray]:
        rows = value.get("instances")
        names = [name for name, _, _ in self.inputs]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise bad_request(
                f"instances: expected a non-empty list of objects with {', '.join(names)} "
                f"(inputs {self._describe()})"
            )
        out = []
        for name, shape, dt in self.inputs:
            if any(name not in r for r in rows):
                raise bad_request(
                    f"instances: every row needs {name!r} (inputs {self._describe()})"
                )
            try:
                arr = np.asarray([r[name] for r in rows])
            except ValueError:
                raise bad_request(f"instances.{name}: expected a rectangular nested list") from None
            kinds = "iu" if dt.kind in "iu" else "fiu"
            if arr.dtype.kind not in kinds or tuple(arr.shape[1:]) != shape:
                raise bad_request(
                    f"instances.{name}: expected {dt.name} values shaped [B, "
                    f"{', '.join(map(str, shape))}], got {arr.dtype} {list(arr.shape)}"
                )
            out.append(
                self._finite(arr.astype(dt), f"instances.{name}")
                if dt.kind == "f"
                else arr.astype(dt)
            )
        return out

    def _usage(self, problem: str) -> str:
        return (
            f'{problem}; expected JSON {{"instances": <nested list {self._expected()}>}} or raw '
            f"little-endian float32 {self._expected()} bytes (Content-Type {RAW_TYPE})"
        )

    def _rows_from_raw(self, value: bytes | bytearray) -> np.ndarray:
        per_row = 4 * int(np.prod(self.input_shape))
        if len(value) == 0 or len(value) % per_row:
            raise bad_request(
                f"raw body: expected little-endian float32 {self._expected()}, i.e. a positive "
                f"multiple of {per_row} bytes, got {len(value)} bytes"
            )
        rows = np.frombuffer(value, dtype="<f4").reshape(-1, *self.input_shape)
        return self._finite(rows.astype(np.float32), "raw body")

    def _rows_from_json(self, value: dict) -> np.ndarray:
        if "instances" not in value:
            keys = ", ".join(sorted(map(str, value))) or "none"
            raise bad_request(self._usage(f'JSON body has no "instances" field (fields: {keys})'))
        try:
            arr = np.asarray(value["instances"])
        except ValueError:  # ragged nested lists
            raise bad_request(
                f"instances: expected a rectangular nested list {self._expected()} of numbers, got a ragged list"
            ) from None
        if arr.dtype.kind not in "fiu":  # strings, booleans, objects, nulls
            raise bad_request(
                f"instances: expected numbers (float32) shaped {self._expected()}, got values of type {arr.dtype}"
            )
        if (
            arr.ndim != len(self.input_shape) + 1
            or tuple(arr.shape[1:]) != self.input_shape
            or arr.shape[0] == 0
        ):
            raise bad_request(
                f"instances: expected shape {self._expected()} with B >= 1, got {list(arr.shape)}"
            )
        with np.errstate(over="ignore"):  # out-of-range numbers become inf, rejected just below
            rows = arr.astype(np.float32)
        return self._finite(rows, "instances")

    def _finite(self, rows: np.ndarray, field: str) -> np.ndarray:
        if not np.isfinite(rows).all():
            raise bad_request(f"{field}: expected finite float32 values, got NaN or infinity")
        return rows

    def preprocess(self, data: list[Any]) -> list[torch.Tensor]:
        self._parsed = []
        for idx, request in enumerate(data):
            try:
                self._parsed.append(self.parse_request(idx, request))
            except PredictionException as err:
                self._parsed.append(err)
        good = [p[0] for p in self._parsed if isinstance(p, tuple)]
        if not good:
            # Every request is bad (always so without batching): TorchServe turns this into
            # one error response per request carrying our code and message.
            messages = list(
                dict.fromkeys(p.message for p in self._parsed if isinstance(p, PredictionException))
            )
            raise PredictionException("; ".join(messages) or "empty batch", 400)
        # one tensor per model input, the requests' rows one after the other
        return [
            torch.from_numpy(np.concatenate([g[k] for g in good]) if len(good) > 1 else good[0][k])
            for k in range(len(self.inputs))
        ]

    # ---- model ---------------------------------------------------------------------------
    def inference(self, data: list[torch.Tensor], *args: Any, **kwargs: Any) -> Any:
        if self._ort:  # ONNX Runtime takes numpy feeds by the spec's input names
            feeds = {name: t.numpy() for (name, _, _), t in zip(self.inputs, data, strict=True)}
            return self.model.run(None, feeds)[0]
        with torch.inference_mode():
            return self.model(*data)

    # ---- tensor -> one response per request ---------------------------------------------
    def postprocess(self, data: Any) -> list[bytes | str]:
        out = data if isinstance(data, np.ndarray) else data.detach().cpu().numpy()
        logits = out.astype("<f4", copy=False)
        responses: list[bytes | str] = []
        offset = 0
        for idx, parsed in enumerate(self._parsed):
            if isinstance(parsed, PredictionException):
                code, message = parsed.error_code, parsed.message
                self._respond(idx, code, JSON_TYPE, message)
                responses.append(
                    json.dumps({"code": code, "type": "BadRequest", "message": message})
                )
                continue
            n, raw = parsed[0][0].shape[0], parsed[1]
            rows = logits[offset : offset + n]
            offset += n
            if raw:
                self._respond(idx, 200, RAW_TYPE)
                responses.append(rows.tobytes())
            else:
                self._respond(idx, 200, JSON_TYPE)
                responses.append(json.dumps({"predictions": rows.tolist()}))
        return responses

    def _respond(self, idx: int, code: int, content_type: str, phrase: str = "") -> None:
        if self.context is None or getattr(self.context, "request_processor", None) is None:
            return
        if code != 200:
            self.context.set_response_status(code, phrase, idx)
        self.context.set_response_content_type(idx, content_type)
