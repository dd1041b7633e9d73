"""A TF Serving *test double* — used only to test our TF Serving code paths.

It is NOT TensorFlow Serving and must never be reported as such: the real
``tensorflow_model_server`` is not obtainable on our build machines. It lives under ``tests/``
only (never importable from the package), and a result made with it never leaves a test's
temporary directory. It answers with the REAL SavedModel run by TensorFlow in this process, and
mirrors TF Serving 2.20.0 wherever our code depends on its behaviour (each item names the
upstream file, tensorflow/serving at tag 2.20.0, it follows):

- REST routing: ``/v1/`` prefix, case-insensitive, predict and model-status regexes
  (model_servers/http_rest_api_util.cc ``kPredictionApiGegex``/``kModelStatusApiRegex``); a
  ``/v1/`` path that matches neither is ``400 {"error": "Malformed request: <M> <path>"}``
  (http_rest_api_handler.cc); any other path is a bare 404 (evhttp_server.cc); the metrics path
  is matched exactly (http_server.cc ``RegisterRequestHandler``).
- One pool of ``--rest_api_num_threads`` threads runs every REST request to completion, the
  model call and the metrics page included (http_server.cc ``RequestExecutor``), and one of its
  threads is held for good by the event loop (evhttp_server.cc ``StartAcceptingRequests``).
- gRPC: a thread quota of ``--grpc_max_threads`` (default 4 x NumSchedulableCPUs, server.h) with
  one thread always polling, so at most ``max - 1`` calls run; one more is refused with
  RESOURCE_EXHAUSTED before any service sees it, and no metric counts it (server.cc
  ``ResourceQuota::SetMaxThreads``; grpc src/cpp/thread_manager/thread_manager.cc).
- Flags: only ``tensorflow_model_server``'s own (main.cc ``flag_list``); another one is refused
  with ``unknown argument`` and the usage text.
- Errors: ``{"error": msg}`` (util/json_tensor.cc ``MakeJsonFromStatus``) with the status mapped
  to HTTP as in http_server.cc ``ToHTTPStatusCode``; JSON texts from json_tensor.cc; gRPC input
  names from predict_util.cc and TensorFlow's saved_model util.
- Model status: every version the server has seen, newest first, ``END`` after unload, 404
  ``Could not find version N of model M`` (model_servers/get_model_status_impl.cc).
- gRPC replies carry ``float_val`` (servables/tensorflow/predict_util.cc ``AsProtoField``)
  unless ``--enable_serialization_as_tensor_content``.
- ``/monitoring/prometheus/metrics`` with the real names, labels and histogram buckets
  (servables/tensorflow/util.cc, batching/batching_session.cc, util/prometheus_exporter.cc),
  served only when a monitoring config enables it, at its ``path`` (http_server.cc
  ``CreateAndStartHttpServer``: the handler is registered only if ``prometheus_config().enable()``).

``perturb`` adds an offset to every output (to test wrong-answer detection); ``delay_s`` makes
each model call take at least that long (to saturate the REST pool in tests); ``hold``, an
``threading.Event``, keeps every model call waiting until it is set, so a test can fill the pools
without relying on timing (``in_model`` counts the calls waiting or running).

Run as a program it takes ``tensorflow_model_server`` flags (the test-only ``docker`` shim
starts it as the "container" process): ``python tfserving_double.py --port=.. --rest_api_port=..
--model_config_file=.. [--rest_api_num_threads=..] [--enable_batching=true ...]``. The shim
puts ``--docker-shim-spec=<file>`` first (the container's mounts, published ports and whether
the server is PID 1); it is consumed before the flags are checked.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

# model_servers/http_rest_api_util.{h,cc} (2.20.0)
_V1 = re.compile(r"(?i)/v1/.*")
_PREDICT = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)"
)
_STATUS = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:\/(metadata))?"
)
METRICS_PATH = "/monitoring/prometheus/metrics"  # util/prometheus_exporter.cc kPrometheusPath

# model_servers/http_server.cc ToHTTPStatusCode
_HTTP = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500, grpc.StatusCode.UNAUTHENTICATED: 401,
}  # fmt: skip
# error::Code_Name, the `status` label of request_count (servables/tensorflow/util.cc)
_CODE_NAME = {c: c.name for c in grpc.StatusCode}

# util.cc: Buckets::Exponential(10, 1.8, 33) for request/runtime latency (µs);
# batching_session.cc: Exponential(100, 1.2, 52) for queuing latency.
_LATENCY_BOUNDS = [10 * 1.8**i for i in range(33)]
_QUEUE_BOUNDS = [100 * 1.2**i for i in range(52)]


class DoubleError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def http_status(self) -> int:
        return _HTTP[self.code]


def _invalid(msg: str) -> DoubleError:
    return DoubleError(grpc.StatusCode.INVALID_ARGUMENT, msg)


# ---- metrics, exposed like util/prometheus_exporter.cc ------------------------------------------
class _Histogram:
    def __init__(self, bounds: list[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def add(self, value: float) -> None:
        i = next((k for k, b in enumerate(self.bounds) if value < b), len(self.bounds))
        self.counts[i] += 1
        self.total += value


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.request_count: dict[tuple[str, str], int] = {}
        self.hists: dict[str, dict[tuple[tuple[str, str], ...], _Histogram]] = {}

    def count(self, model: str, code: grpc.StatusCode) -> None:
        with self.lock:
            key = (model, _CODE_NAME[code])
            self.request_count[key] = self.request_count.get(key, 0) + 1

    def observe(
        self,
        name: str,
        labels: dict[str, str],
        value_us: float,
        bounds: list[float] = _LATENCY_BOUNDS,
    ) -> None:
        with self.lock:
            cell = self.hists.setdefault(name, {})
            key = tuple(labels.items())
            cell.setdefault(key, _Histogram(bounds)).add(value_us)

    @staticmethod
    def _num(x: float) -> str:
        return f"{x:.6g}"  # absl::StrCat(double): six significant digits

    def page(self) -> str:
        lines = []
        with self.lock:
            if self.request_count:
                lines.append("# TYPE :tensorflow:serving:request_count counter")
                for (model, status), n in sorted(self.request_count.items()):
                    lines.append(
                        f':tensorflow:serving:request_count{{model_name="{model}",status="{status}"}} {n}'
                    )
            for name, cells in sorted(self.hists.items()):
                lines.append(f"# TYPE {name} histogram")
                for key, h in cells.items():
                    labels = ",".join(f'{k}="{v}"' for k, v in key)
                    cum = 0
                    for i, c in enumerate(h.counts):
                        cum += c
                        le = self._num(h.bounds[i]) if i < len(h.bounds) else "+Inf"
                        lines.append(f'{name}_bucket{{{labels},le="{le}"}} {cum}')
                    lines.append(f"{name}_sum{{{labels}}} {self._num(h.total)}")
                    lines.append(f"{name}_count{{{labels}}} {cum}")
        return "\n".join(lines) + "\n"


# ---- models and versions ------------------------------------------------------------------------
class _Version:
    def __init__(self, number: int, path: Path) -> None:
        self.number = number
        self.path = path
        self.state = "LOADING"
        self.loaded: Any = None

    def load(self) -> None:
        self.loaded = tf.saved_model.load(str(self.path))
        self.signatures = dict(self.loaded.signatures)
        self.state = "AVAILABLE"

    def unload(self) -> None:
        self.state = "UNLOADING"
        self.loaded = None
        self.signatures = {}
        self.state = "END"  # ServableStateMonitor keeps the END state (get_model_status_impl.cc)


class _Model:
    """One model. ``base_path`` holds numeric version directories; the newest is served (the
    default ``latest { num_versions: 1 }`` policy) and a newer one replaces it when it appears.
    A plain SavedModel directory (no version subdirectories) is served as version 1."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.base = Path(path)
        self.versions: dict[int, _Version] = {}
        self.fixed = (self.base / "saved_model.pb").is_file()
        self.lock = threading.Lock()
        self.poll()

    def _on_disk(self) -> dict[int, Path]:
        if self.fixed:
            return {1: self.base}
        if (
            not self.base.is_dir()
        ):  # the server logs "No versions of servable ... found" and polls on
            return {}
        return {
            int(p.name): p
            for p in self.base.iterdir()
            if p.name.isdigit() and (p / "saved_model.pb").is_file()
        }

    def poll(self) -> None:
        found = self._on_disk()
        if not found:
            return
        newest = max(found)
        with self.lock:
            current = self.serving()
            if current is not None and current.number >= newest:
                return
        v = _Version(newest, found[newest])
        with self.lock:
            self.versions[newest] = v
        v.load()
        with self.lock:
            for n, old in self.versions.items():
                if n != newest and old.state == "AVAILABLE":
                    old.unload()

    def serving(self, version: int | None = None) -> _Version | None:
        if version is not None:
            v = self.versions.get(version)
            return v if v is not None and v.state == "AVAILABLE" else None
        live = [v for v in self.versions.values() if v.state == "AVAILABLE"]
        return max(live, key=lambda v: v.number) if live else None


def _unb64(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_unb64(v) for v in value]
    if isinstance(value, dict):
        return {k: _unb64(v) for k, v in value.items()}
    return value


def _json_type(value: Any) -> str:
    # rapidjson type names as util/json_tensor.cc JsonTypeString prints them
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return "Number"


_INT_RANGES = {
    "int64": (-(2**63), 2**63 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (-(2**31), 2**31 - 1),  # json_tensor.cc checks IsInt() for these, not the width
}


def _dtype_string(dtype: Any) -> str:
    """TensorFlow's DataTypeString: DT_FLOAT -> "float", DT_INT64 -> "int64"."""
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(tf.as_dtype(dtype).as_datatype_enum)[3:].lower()


def _leaf_fits(value: Any, dtype: Any) -> bool:
    """util/json_tensor.cc AddValueToTensor: DT_FLOAT/DT_DOUBLE take any number (IsNumber),
    integer types only JSON integers (IsInt/IsInt64: ``1.0`` is a double to rapidjson and is
    refused), nothing else is converted."""
    dt = tf.as_dtype(dtype)
    if dt == tf.string:  # IsString(); a {"b64": ...} object arrives here decoded
        return isinstance(value, str | bytes)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if dt.is_floating:
        return True
    lo, hi = _INT_RANGES.get(dt.name, (0, -1))
    return isinstance(value, int) and lo <= value <= hi


def _type_error(value: Any, dtype: Any) -> str | None:
    """The upstream TypeError text for the first JSON leaf ``dtype`` cannot take, or None."""
    if isinstance(value, list):
        for v in value:
            bad = _type_error(v, dtype)
            if bad is not None:
                return bad
        return None
    if _leaf_fits(value, dtype):
        return None
    return (
        f"JSON Value: {json.dumps(value)} Type: {_json_type(value)} is not of expected type: "
        f"{_dtype_string(dtype)}"
    )


def _debug_string(value: Any) -> str:
    # json_tensor.cc JsonValueToDebugString: compact JSON cut at kMaxJsonDebugStringBytes (256)
    return json.dumps(value, separators=(",", ":"))[:256]


def _as_proto_field(arr: np.ndarray) -> Any:
    """``Tensor::AsProtoField`` for float32: dtype, shape and every value in ``float_val``."""
    proto = tf.make_tensor_proto(np.zeros((0,), np.float32))
    proto.Clear()
    proto.dtype = tf.float32.as_datatype_enum
    for d in arr.shape:
        proto.tensor_shape.dim.add().size = int(d)
    proto.float_val.extend(arr.astype(np.float32).ravel().tolist())
    return proto


# ---- the double ---------------------------------------------------------------------------------
class TFServingDouble:
    """Serves SavedModels ``{name: path}`` over gRPC and REST on 127.0.0.1 ports (0 = free)."""

    def __init__(
        self,
        models: dict[str, str | Path],
        *,
        perturb: float = 0.0,
        grpc_port: int = 0,
        rest_port: int = 0,
        rest_api_num_threads: int | None = None,
        enable_batching: bool = False,
        tensor_content: bool = False,
        poll_s: float = 1.0,
        delay_s: float = 0.0,
        grpc_max_threads: int | None = None,
        schedulable_cpus: int | None = None,
        metrics_path: str | None = METRICS_PATH,
        hold: threading.Event | None = None,
    ) -> None:
        self.models = {name: _Model(name, Path(p)) for name, p in models.items()}
        self.perturb = perturb
        self.delay_s = delay_s
        self.grpc_port = grpc_port
        self.rest_port = rest_port
        # server.h: http_num_threads = grpc_max_threads = 4 * NumSchedulableCPUs() (the CPUs of
        # this process's affinity mask: a container's --cpuset-cpus)
        cpus = schedulable_cpus or len(os.sched_getaffinity(0))
        self.rest_threads = rest_api_num_threads or 4 * cpus
        self.grpc_max_threads = grpc_max_threads or 4 * cpus
        self.metrics_path = metrics_path  # None: no monitoring config enables Prometheus
        self.hold = hold
        self.in_model = 0
        self._in_model_lock = threading.Lock()
        self.enable_batching = enable_batching
        self.tensor_content = tensor_content
        self.poll_s = poll_s
        self.metrics = Metrics()
        self._grpc_server: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._pool: futures.ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- the model call shared by both protocols -------------------------------------------
    def _servable(self, model: str, version: int | None) -> _Version:
        m = self.models.get(model)
        v = m.serving(version) if m is not None else None
        if v is None:
            # core/servable_handle / manager: "Servable not found for request: Latest(m)"
            which = f"Specific({model}, {version})" if version is not None else f"Latest({model})"
            raise DoubleError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {which}")
        return v

    def _signature(self, v: _Version, name: str) -> Any:
        sig = v.signatures.get(name or "serving_default")
        if sig is None:
            # predict_util.cc RunPredict
            raise DoubleError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{name or "serving_default"}" not found.',
            )
        return sig

    def predict(
        self, model: str, signature_name: str, inputs: dict[str, Any], version: int | None = None
    ) -> dict[str, np.ndarray]:
        v = self._servable(model, version)
        sig = self._signature(v, signature_name)
        specs = sig.structured_input_signature[1]
        if set(inputs) != set(specs):
            if len(inputs) != len(specs):  # predict_util.cc VerifyRequestInputsSize
                raise _invalid(
                    f"input size does not match signature: {len(inputs)}!={len(specs)} "
                    f"len({{{','.join(sorted(inputs))}}}) != len({{{','.join(sorted(specs))}}}). "
                    f"Sent extra: {{{','.join(sorted(set(inputs) - set(specs)))}}}. "
                    f"Missing but required: {{{','.join(sorted(set(specs) - set(inputs)))}}}."
                )
            # TensorFlow cc/saved_model/util.cc GetInputValues (text from the 2.20.0 library)
            raise _invalid(
                "Inputs contains invalid name. Used request inputs: " + ",".join(sorted(inputs))
            )
        # Session::Run converts nothing: a tensor of another dtype than its signature input is
        # refused (TensorFlow core/framework/function.cc FunctionCallFrame::SetArgs; the arg
        # index here follows the sorted input names)
        for i, name in enumerate(sorted(specs)):
            got = getattr(inputs[name], "dtype", None)
            if got is None or specs[name].dtype == tf.string or got == np.dtype(object):
                continue  # lists (ragged JSON) and strings: the model call reports them
            if tf.as_dtype(got) != specs[name].dtype:
                raise _invalid(
                    f"Expects arg[{i}] to be {_dtype_string(specs[name].dtype)} but "
                    f"{_dtype_string(got)} is provided"
                )
        t0 = time.perf_counter()
        with self._in_model_lock:
            self.in_model += 1
        try:
            if self.hold is not None:
                self.hold.wait(60)  # bounded: a forgotten hold cannot hang a test forever
            feed = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
            out = sig(**feed)
            if self.delay_s:
                time.sleep(max(0.0, self.delay_s - (time.perf_counter() - t0)))
        except (tf.errors.OpError, ValueError, TypeError) as err:
            raise _invalid(str(err)[:500]) from None
        finally:
            with self._in_model_lock:
                self.in_model -= 1
        elapsed_us = (time.perf_counter() - t0) * 1e6
        # predict_util.cc RecordRuntimeLatency(model, "Predict", "TF1", ...)
        self.metrics.observe(
            ":tensorflow:serving:runtime_latency",
            {"model_name": model, "API": "Predict", "runtime": "TF1"},
            elapsed_us,
        )
        if self.enable_batching:  # batching_session.cc queuing_latency{thread_pool_name}
            self.metrics.observe(
                ":tensorflow:serving:batching_session:queuing_latency",
                {"thread_pool_name": "batch_threads"},
                0.0,
                _QUEUE_BOUNDS,
            )
        return {k: t.numpy() + np.float32(self.perturb) for k, t in out.items()}

    # ---- gRPC ----------------------------------------------------------------------------------
    def _grpc_predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        start = time.perf_counter()
        model = request.model_spec.name
        try:
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            version = (
                request.model_spec.version.value if request.model_spec.HasField("version") else None
            )
            outputs = self.predict(model, request.model_spec.signature_name, inputs, version)
            wanted = list(request.output_filter) or sorted(outputs)
            for name in wanted:
                if name not in outputs:
                    raise _invalid(
                        f"output tensor alias not found in signature: {name} Outputs expected to "
                        f"be in the set {{{','.join(sorted(outputs))}}}."
                    )
        except DoubleError as err:
            self.metrics.count(model, err.code)  # prediction_service_impl.cc
            context.abort(err.code, str(err))
        reply = predict_pb2.PredictResponse()
        reply.model_spec.name = model
        reply.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        reply.model_spec.version.value = self._servable(model, version).number
        for name in wanted:
            arr = outputs[name]
            proto = tf.make_tensor_proto(arr) if self.tensor_content else _as_proto_field(arr)
            reply.outputs[name].CopyFrom(proto)
        self.metrics.observe(
            ":tensorflow:serving:request_latency",
            {"model_name": model, "API": "Predict", "entrypoint": "GRPC"},
            (time.perf_counter() - start) * 1e6,
        )
        self.metrics.count(model, grpc.StatusCode.OK)
        return reply

    def _grpc_status(self, request: Any, context: grpc.ServicerContext) -> Any:
        version = (
            request.model_spec.version.value if request.model_spec.HasField("version") else None
        )
        try:
            doc = self.status(request.model_spec.name, version)
        except DoubleError as err:
            context.abort(err.code, str(err))
        reply = get_model_status_pb2.GetModelStatusResponse()
        for s in doc["model_version_status"]:
            mv = reply.model_version_status.add()
            mv.version = int(s["version"])
            mv.state = get_model_status_pb2.ModelVersionStatus.State.Value(s["state"])
        return reply

    # ---- REST ----------------------------------------------------------------------------------
    def _parse_json(self, body: bytes) -> dict[str, Any]:
        # util/json_tensor.cc ParseJson (rapidjson messages)
        if not body:
            raise _invalid("JSON Parse error: The document is empty")
        try:
            doc = json.loads(body)
        except UnicodeDecodeError:
            raise _invalid("JSON Parse error: Invalid encoding in string. at offset: 0") from None
        except json.JSONDecodeError as err:
            raise _invalid(f"JSON Parse error: Invalid value. at offset: {err.pos}") from None
        if not isinstance(doc, dict):
            raise _invalid(
                f"JSON Value: {json.dumps(doc, separators=(',', ':'))[:200]} Is not object"
            )
        return doc

    def _rest_predict(self, model: str, version: int | None, body: bytes) -> dict[str, Any]:
        doc = self._parse_json(body)
        sig_name = doc.get("signature_name", "serving_default")
        specs = self._signature(
            self._servable(model, version), sig_name
        ).structured_input_signature[1]
        dtypes = {k: s.dtype for k, s in specs.items()}

        # Rebuild the body only when it can hold {"b64": ...}: a copy of a large body's lists
        # would cost the double (not the server) hundreds of MB under the container's memory cap.
        def unb64(value: Any) -> Any:
            return _unb64(value) if b'"b64"' in body else value

        if "instances" in doc and "inputs" in doc:
            raise _invalid(
                "JSON Value: ... Not formatted correctly expecting only one of "
                "'inputs' or 'instances' keys to exist "
            )
        if "instances" in doc:  # row format (json_tensor.cc FillTensorMapFromInstancesList)
            rows = unb64(doc["instances"])
            if not isinstance(rows, list):
                raise _invalid("JSON Value: ... Expecting 'instances' to be an list/array")
            if not rows:
                raise _invalid("JSON Value: ... No values in 'instances' array")
            if not isinstance(rows[0], dict) and len(specs) > 1:
                raise _invalid(
                    "instances is a plain list, but expecting list of objects as "
                    "multiple input tensors required as per tensorinfo_map"
                )
            if isinstance(rows[0], dict):
                names = ",".join(sorted(specs))  # a std::set<string>: sorted
                for i, r in enumerate(rows):
                    if not isinstance(r, dict):
                        raise _invalid(f"Expecting object but got list at item {i} of input list")
                    for key, value in r.items():  # AddInstanceItem, key by key
                        if key not in specs:
                            why = f"JSON object: does not have named input: {key}"
                        else:
                            why = _type_error(value, dtypes[key]) or ""
                        if why:
                            raise _invalid(
                                f"Failed to process element: {i} key: {key} of 'instances' "
                                f"list. Error: INVALID_ARGUMENT: {why}"
                            )
                    if set(r) != set(specs):  # every object names every input, no more
                        raise _invalid(
                            f"Failed to process element: {i} of 'instances' list. JSON object: "
                            f"{_debug_string(r)} keys must be equal to: {names}"
                        )
                inputs = {k: [r[k] for r in rows] for k in rows[0]}
            else:
                name = next(iter(specs))
                for i, r in enumerate(rows):
                    if isinstance(r, dict):
                        raise _invalid(
                            f"Expecting value/list but got object at item {i} of input list"
                        )
                    why = _type_error(r, dtypes[name])
                    if why is not None:
                        raise _invalid(
                            f"Failed to process element: {i} of 'instances' list. Error: "
                            f"INVALID_ARGUMENT: {why}"
                        )
                inputs = {name: rows}
            columnar = False
        elif "inputs" in doc:  # columnar format
            raw = unb64(doc["inputs"])
            if not isinstance(raw, dict) and len(specs) > 1:
                raise _invalid(
                    "inputs is a plain value/list, but expecting an object as multiple "
                    "input tensors required as per tensorinfo_map"
                )
            given = raw if isinstance(raw, dict) else {next(iter(specs)): raw}
            # FillTensorMapFromInputsMap walks the signature's inputs only: a key the signature
            # lacks is ignored, a missing one refused
            inputs = {}
            for name in specs:
                if name not in given:
                    raise _invalid(f"Missing named input: {name} in 'inputs' object.")
                why = _type_error(given[name], dtypes[name])
                if why is not None:
                    raise _invalid(why)
                inputs[name] = given[name]
            columnar = True
        else:
            raise _invalid("Missing 'inputs' or 'instances' key")
        # Arrays now, and the parsed lists dropped: Python lists take ~8x the bytes of the tensor.
        for k in [k for k in inputs if k in specs]:
            with contextlib.suppress(ValueError, TypeError):  # ragged: predict() reports it
                inputs[k] = np.asarray(inputs[k], dtype=specs[k].dtype.as_numpy_dtype)
        doc = rows = raw = None
        outputs = self.predict(model, sig_name, inputs, version)
        if columnar:
            if len(outputs) == 1:
                return {"outputs": next(iter(outputs.values())).tolist()}
            return {"outputs": {k: v.tolist() for k, v in outputs.items()}}
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        n = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(n)]}

    def status(self, model: str, version: int | None = None) -> dict[str, Any]:
        # get_model_status_impl.cc; VersionMap is ordered newest first (servable_state_monitor.h)
        m = self.models.get(model)
        with m.lock if m is not None else threading.Lock():
            seen = dict(m.versions) if m is not None else {}
        if version is not None:
            if version not in seen:
                raise DoubleError(
                    grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {model}"
                )
            seen = {version: seen[version]}
        if not seen:
            raise DoubleError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {model}"
            )
        return {
            "model_version_status": [
                {"version": str(n), "state": v.state,
                 "status": {"error_code": "OK", "error_message": ""}}
                for n, v in sorted(seen.items(), reverse=True)
            ]
        }  # fmt: skip

    def handle_rest(self, method: str, path: str, body: bytes) -> tuple[int, str, str]:
        """(status, content type, body) for one REST request, as the server answers it."""
        if method == "GET" and self.metrics_path is not None and path == self.metrics_path:
            # exact match, its own handler, registered only when monitoring enables it
            return 200, "text/plain", self.metrics.page()
        if not _V1.fullmatch(path):
            return 404, "text/html", "<html><body><h1>404 Not Found</h1></body></html>"
        start = time.perf_counter()
        model, api, code = "", "", grpc.StatusCode.OK
        try:
            m = (
                _PREDICT.fullmatch(path)
                if method == "POST"
                else (_STATUS.fullmatch(path) if method == "GET" else None)
            )
            if m is None:
                raise _invalid(f"Malformed request: {method} {path}")
            model = m.group(1) or ""
            version = int(m.group(2)) if m.group(2) else None
            if method == "POST":
                api = m.group(4)
                # The regex is case-insensitive but the dispatch compares `method == "predict"`
                # (http_rest_api_handler.cc): ":PREDICT" stays a malformed request.
                if api not in ("classify", "regress", "predict"):
                    raise _invalid(f"Malformed request: {method} {path}")
                if api != "predict":
                    raise DoubleError(
                        grpc.StatusCode.UNIMPLEMENTED, f"{api} is not served by the double"
                    )
                doc = self._rest_predict(model, version, body)
            else:
                if not model:
                    raise _invalid("Missing model name in request.")
                doc = self.status(model, version)
            status, text = 200, json.dumps(doc)
        except DoubleError as err:
            code = err.code
            status, text = err.http_status, json.dumps({"error": str(err)}, indent=4)
        if code is grpc.StatusCode.OK:
            # http_server.cc: latency of successful requests, API = method ("" for GETs)
            self.metrics.observe(
                ":tensorflow:serving:request_latency",
                {"model_name": model, "API": api, "entrypoint": "REST"},
                (time.perf_counter() - start) * 1e6,
            )
        self.metrics.count(model, code)  # every REST request, status GETs included
        return status, "application/json", text

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real REST server

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                n = int(self.headers.get("Content-Length", 0) or 0)
                body = self.rfile.read(n) if n else b""
                # Connections are read by the event loop (any number); the request itself runs
                # to completion on the fixed pool, like evhttp_server.cc's executor.
                assert double._pool is not None
                job = double._pool.submit(double.handle_rest, method, self.path.split("?")[0], body)
                status, ctype, text = job.result()
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

        return Handler

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> TFServingDouble:
        # The quota's threads, one of them always polling: max - 1 calls run, the next one is
        # refused with RESOURCE_EXHAUSTED by gRPC itself, before the servicer (or a metric) sees it.
        calls = max(0, self.grpc_max_threads - 1)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max(1, calls)),
            maximum_concurrent_rpcs=max(1, calls),
        )
        double = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
                return double._grpc_predict(request, context)

        class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
            def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
                return double._grpc_status(request, context)

        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(), server)
        self.grpc_port = server.add_insecure_port(f"127.0.0.1:{self.grpc_port}")
        server.start()
        self._grpc_server = server
        # One fixed pool runs every REST request to completion (http_server.cc RequestExecutor):
        # with every thread busy, a scrape waits like any request.
        self._pool = futures.ThreadPoolExecutor(
            self.rest_threads, thread_name_prefix="httprestserver"
        )
        # evhttp_server.cc StartAcceptingRequests: event_base_loop runs on the same executor and
        # keeps its thread until the server stops.
        self._pool.submit(self._stop.wait)
        self._http = ThreadingHTTPServer(("127.0.0.1", self.rest_port), self._handler())
        self._http.daemon_threads = True
        self.rest_port = self._http.server_address[1]
        self._threads = [
            threading.Thread(target=self._http.serve_forever, daemon=True),
            threading.Thread(target=self._poll_loop, daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            for m in self.models.values():
                if not m.fixed:
                    m.poll()

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_address(self) -> str:
        return f"127.0.0.1:{self.rest_port}"

    def stop(self) -> None:
        self._stop.set()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> TFServingDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- as a program: tensorflow_model_server's flags ----------------------------------------------
# model_servers/main.cc (2.20.0) flag_list, stored as names under tests/data.
FLAG_NAMES = Path(__file__).resolve().parents[1] / "data" / "tfserving_2.20.0_flags.txt"
# Given as the first argument by tests/shims/docker only (never a server flag): the container's
# mounts, published ports and whether the server is its PID 1.
SHIM_SPEC = "--docker-shim-spec="
EXIT_FLAGS = 255  # main.cc: a flag that fails to parse prints the usage and returns -1


def known_flags() -> list[str]:
    return [
        ln.strip()
        for ln in FLAG_NAMES.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]


def _flags(argv: list[str]) -> dict[str, str]:
    """tensorflow::Flags::Parse as main.cc uses it. A name not in main.cc's list makes the real
    server print ``unknown argument: <arg>`` and the usage and then start anyway with that flag
    ignored; the double prints the same and exits instead, so a flag the server would silently
    ignore fails the test that passed it."""
    names = set(known_flags())
    out = {}
    for a in argv:
        k, eq, v = a[2:].partition("=") if a.startswith("--") else ("", "", "")
        if k not in names:
            print(
                f"unknown argument: {a}\nusage: tensorflow_model_server\nFlags:\n"
                + "".join(f"\t--{n}\n" for n in sorted(names)),
                flush=True,
            )
            raise SystemExit(EXIT_FLAGS)
        out[k] = v if eq else "true"
    return out


class _Container:
    """The view from inside a (shim) container: only mounted host paths exist, only published
    ports are reachable from the host. Outside the shim every path and port is the host's."""

    def __init__(self, spec: dict[str, Any] | None) -> None:
        self.spec = spec
        # Longest container path first: a nested mount wins over its parent.
        mounts = (spec or {}).get("mounts", {})
        self.mounts = sorted(mounts.items(), key=lambda kv: -len(kv[0]))
        self.empty_root = Path((spec or {}).get("rootfs", "/nonexistent-rootfs"))

    def path(self, inside: str) -> Path:
        if self.spec is None:
            return Path(inside)
        for ctr, host in self.mounts:
            if inside == ctr or inside.startswith(ctr.rstrip("/") + "/"):
                return Path(host + inside[len(ctr.rstrip("/")) :])
        return self.empty_root / inside.lstrip("/")  # the image has nothing there

    def host_port(self, port: int) -> int:
        if self.spec is None:
            return port
        # An unpublished port listens inside the container only: nothing on the host reaches it.
        return int(self.spec.get("ports", {}).get(str(port), 0))


def _metrics_path(container: _Container, flags: dict[str, str]) -> str | None:
    """http_server.cc CreateAndStartHttpServer: the Prometheus handler exists only when
    ``prometheus_config.enable`` is set in --monitoring_config_file, at its ``path`` (default
    util/prometheus_exporter.cc kPrometheusPath)."""
    file = flags.get("monitoring_config_file")
    if not file:
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # servecmp's proto declarations
    from servecmp.servers.tfserving.protos import parse_monitoring_config

    cfg = parse_monitoring_config(container.path(file).read_text())
    if not cfg.prometheus_config.enable:
        return None
    return cfg.prometheus_config.path or METRICS_PATH


def main(argv: list[str]) -> int:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    spec = None
    if argv and argv[0].startswith(SHIM_SPEC):
        spec = json.loads(Path(argv.pop(0)[len(SHIM_SPEC) :]).read_text())
    container = _Container(spec)
    if spec is not None and spec.get("pid1"):
        # PID 1 of a container gets no signal whose action is the default: tensorflow_model_server
        # sets no SIGTERM/SIGINT handler (main.cc, server.cc at 2.20.0), so both are ignored.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        # Not PID 1: no handler, so the default action (the process ends) -- as the real server.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    f = _flags(argv)
    if "version" in f:
        print("TensorFlow ModelServer: 0.0.0-test-double\nTensorFlow Library: " + tf.__version__)
        return 0
    try:
        cfg = model_server_config_pb2.ModelServerConfig()
        text_format.Parse(container.path(f["model_config_file"]).read_text(), cfg)
        metrics_path = _metrics_path(container, f)
    except (OSError, KeyError) as err:  # main.cc: "Failed to start server. Error: ..."; return -1
        print(f"Failed to start server. Error: NOT_FOUND: {err}", flush=True)
        return EXIT_FLAGS
    models = {c.name: container.path(c.base_path) for c in cfg.model_config_list.config}
    double = TFServingDouble(
        models,
        grpc_port=container.host_port(int(f.get("port", "8500"))),
        rest_port=container.host_port(int(f.get("rest_api_port", "0"))),
        rest_api_num_threads=int(f["rest_api_num_threads"])
        if "rest_api_num_threads" in f
        else None,
        grpc_max_threads=int(f["grpc_max_threads"]) if "grpc_max_threads" in f else None,
        enable_batching=f.get("enable_batching") == "true",
        tensor_content=f.get("enable_serialization_as_tensor_content") == "true",
        poll_s=float(f.get("file_system_poll_wait_seconds", "1")),
        metrics_path=metrics_path,
    ).start()
    print(
        f"test double (NOT TF Serving) serving {sorted(models)} on gRPC {double.grpc_port}, "
        f"REST {double.rest_port}",
        flush=True,
    )
    threading.Event().wait()  # serves until a signal ends the process, as the real server
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
