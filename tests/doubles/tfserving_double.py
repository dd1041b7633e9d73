"""A TF Serving *test double* — used only to test the TF Serving clients.

It is NOT TensorFlow Serving and must never be reported as such: the real
``tensorflow_model_server`` is not obtainable on our build machines, so this double speaks TF
Serving's wire protocols (gRPC ``tensorflow.serving.PredictionService/Predict`` with the official
messages, REST ``POST /v1/models/<m>:predict`` and ``GET /v1/models/<m>``) and answers with the
REAL SavedModel run by TensorFlow in this process. ``perturb`` adds an offset to every output
(to test wrong-answer detection).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

_PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?/?$")


class DoubleError(Exception):
    def __init__(self, http_status: int, grpc_code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.grpc_code = grpc_code


class _Model:
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.version = 1
        self.loaded = tf.saved_model.load(str(path))
        self.signatures = dict(self.loaded.signatures)

    def signature(self, name: str) -> Any:
        sig = self.signatures.get(name or "serving_default")
        if sig is None:
            raise DoubleError(
                400,
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature name: "{name}" not found in signature def',
            )
        return sig


def _unb64(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_unb64(v) for v in value]
    if isinstance(value, dict):
        return {k: _unb64(v) for k, v in value.items()}
    return value


class TFServingDouble:
    """Serves SavedModels ``{name: path}`` over gRPC and REST on free 127.0.0.1 ports."""

    def __init__(self, models: dict[str, str | Path], *, perturb: float = 0.0) -> None:
        self.models = {name: _Model(name, Path(p)) for name, p in models.items()}
        self.perturb = perturb
        self.grpc_port = 0
        self.rest_port = 0
        self._grpc_server: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- the model call shared by both protocols -------------------------------------------
    def predict(
        self, model: str, signature_name: str, inputs: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        m = self.models.get(model)
        if m is None:
            raise DoubleError(
                404, grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({model})"
            )
        sig = m.signature(signature_name)
        specs = sig.structured_input_signature[1]
        missing = set(specs) - set(inputs)
        extra = set(inputs) - set(specs)
        if missing or extra:
            raise DoubleError(
                400,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input names mismatch: missing {sorted(missing)}, unexpected {sorted(extra)}",
            )
        try:
            feed = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
            out = sig(**feed)
        except (tf.errors.OpError, ValueError, TypeError) as err:
            raise DoubleError(400, grpc.StatusCode.INVALID_ARGUMENT, str(err)[:500]) from None
        return {k: v.numpy() + np.float32(self.perturb) for k, v in out.items()}

    # ---- gRPC ----------------------------------------------------------------------------------
    def _grpc_predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        try:
            outputs = self.predict(
                request.model_spec.name, request.model_spec.signature_name, inputs
            )
        except DoubleError as err:
            context.abort(err.grpc_code, str(err))
        reply = predict_pb2.PredictResponse()
        reply.model_spec.name = request.model_spec.name
        reply.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        reply.model_spec.version.value = self.models[request.model_spec.name].version
        wanted = set(request.output_filter) or set(outputs)
        for name in wanted:
            if name not in outputs:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output {name!r} not found")
            reply.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
        return reply

    # ---- REST ----------------------------------------------------------------------------------
    def _rest_predict(self, model: str, body: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(body)
        except ValueError as err:
            raise DoubleError(400, grpc.StatusCode.INVALID_ARGUMENT, f"bad JSON: {err}") from None
        sig_name = doc.get("signature_name", "serving_default")
        m = self.models.get(model)
        if m is None:
            raise DoubleError(
                404, grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({model})"
            )
        specs = m.signature(sig_name).structured_input_signature[1]
        if "instances" in doc:  # row format
            rows = _unb64(doc["instances"])
            if rows and all(isinstance(r, dict) for r in rows):
                inputs = {k: [r[k] for r in rows] for k in rows[0]}
            elif len(specs) == 1:
                inputs = {next(iter(specs)): rows}
            else:
                raise DoubleError(400, grpc.StatusCode.INVALID_ARGUMENT, "instances need names")
            columnar = False
        elif "inputs" in doc:  # columnar format
            raw = _unb64(doc["inputs"])
            inputs = raw if isinstance(raw, dict) else {next(iter(specs)): raw}
            columnar = True
        else:
            raise DoubleError(
                400, grpc.StatusCode.INVALID_ARGUMENT, "missing 'instances' or 'inputs'"
            )
        outputs = self.predict(model, sig_name, inputs)
        if columnar:
            if len(outputs) == 1:
                return {"outputs": next(iter(outputs.values())).tolist()}
            return {"outputs": {k: v.tolist() for k, v in outputs.items()}}
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        n = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(n)]}

    def _rest_status(self, model: str) -> dict[str, Any]:
        m = self.models.get(model)
        if m is None:
            raise DoubleError(
                404, grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {model}"
            )
        return {
            "model_version_status": [
                {
                    "version": str(m.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real REST server

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self, fn: Any, *args: Any) -> None:
                try:
                    self._reply(200, fn(*args))
                except DoubleError as err:
                    self._reply(err.http_status, {"error": str(err)})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                m = _PREDICT.match(self.path)
                if not m:
                    self._reply(404, {"error": f"Malformed request: POST {self.path}"})
                    return
                self._serve(double._rest_predict, m.group(1), body)

            def do_GET(self) -> None:
                m = _STATUS.match(self.path)
                if not m:
                    self._reply(404, {"error": f"Malformed request: GET {self.path}"})
                    return
                self._serve(double._rest_status, m.group(1))

        return Handler

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> TFServingDouble:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        double = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
                return double._grpc_predict(request, context)

        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
        self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._grpc_server = server
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self.rest_port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_address(self) -> str:
        return f"127.0.0.1:{self.rest_port}"

    def stop(self) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> TFServingDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
