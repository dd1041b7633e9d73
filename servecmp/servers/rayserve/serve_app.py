"""Ray Serve 2.60 serving servecmp's TorchScript model: the deployment and its launcher (one script).

Run by ``.venv-ray/bin/python`` locally and as the entrypoint of the cluster image
(deploy/kind/rayserve.Dockerfile copies this file): it imports only ``ray``, ``torch``, ``numpy``,
``starlette`` (Ray Serve's own dependency) and the OIP gRPC stubs (``servecmp_oip_grpc_stubs``,
on ``PYTHONPATH``), never ``servecmp``.

As a script (``python serve_app.py --config serve_config.yaml --num_cpus 1 ...``) it is the
launcher: ``ray.init`` of a local one-node cluster (``num_cpus`` = the CPU budget, no dashboard,
Prometheus export on ``--metrics_export_port``, ``_temp_dir`` from ``--temp_dir``), then what
``serve run <config file>`` does (ray 2.60.0 ``ray/serve/scripts.py`` ``run``): validate the
file as a ``ServeDeploySchema``, ``serve_start`` with its ``http_options``/``grpc_options``,
``deploy_apps``. On SIGHUP it reads the file again and redeploys it (what ``serve deploy`` of an
edited file does; servecmp's model update edits ``user_config.model_version``). SIGTERM/SIGINT
shut Ray down (``serve.shutdown``, ``ray.shutdown``).

As a module (``import_path: serve_app:app`` in the config) it is the application: one
deployment, :class:`TorchScriptModel`, which answers
- v1 predict ``POST /v1/models/<m>:predict`` (``{"instances"}``: the chart's ``helm test``);
- Open Inference Protocol v2 REST ``POST /v2/models/<m>/infer`` (JSON body: ``inputs[0]`` FP32
  ``[B,C,H,W]`` -> ``outputs[0]`` ``logits`` FP32 ``[B,K]``; or the binary tensor extension,
  which Ray Serve does not implement itself: this deployment parses and answers it as Triton
  v2.51.0 docs/protocol/extension_binary_data.md describes), ``GET /v2/models/<m>/ready``,
  ``GET /v2/health/ready``, all through Ray Serve's HTTP proxy (``route_prefix: /``); a model
  with several (or integer) inputs (``inputs`` in model_spec.json) takes each by name, over REST
  and gRPC alike;
- OIP v2 gRPC ``inference.GRPCInferenceService/ModelInfer`` (raw ``raw_input_contents`` in ->
  ``raw_output_contents`` out; typed ``fp32_contents`` both ways), ``ModelReady``, ``ServerReady``,
  ``ServerLive`` through Ray Serve's gRPC proxy: the proxy calls the deployment method named
  like the gRPC method with the deserialized request (``ray/serve/_private/grpc_util.py``
  ``gRPCGenericServer``, ``replica.py``); a code set on ``grpc_context`` is what the client
  gets (``grpc_util.set_grpc_code_and_details``).

An ONNX-source card's version holds ``model.onnx`` instead of ``model.pt``: it runs in an ONNX
Runtime session with the replica's threads (intra-op ``intra_op_threads``, inter-op 1).

``user_config`` (reconfigured in place, no replica restart): ``model_version`` (the
``<model_dir>/<version>/model.pt`` to load), ``max_batch_size``/``batch_wait_timeout_s`` of the
``@serve.batch`` queue (``batching: false`` runs each request alone, no batch queue).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MODEL_FILE = "model.pt"
ONNX_FILE = "model.onnx"  # an ONNX-source card's file (published instead of model.pt)
SPEC_FILE = "model_spec.json"  # from the .mar, optional: {"input_shape": [C, H, W], ...}
OUTPUT_NAME = "logits"
# The binary tensor extension's header giving the JSON part's length (Triton v2.51.0
# docs/protocol/extension_binary_data.md; starlette reads header names case-insensitively).
INFER_HEADER_LENGTH = "inference-header-content-length"
NP_DTYPES = {"FP32": "<f4", "INT64": "<i8", "INT32": "<i4"}
OIP_DTYPES = {"float32": "FP32", "int64": "INT64", "int32": "INT32"}
# Ray pushes each process's metrics to the exported page every max(this, 1000) ms (default
# 10000: a step's window-edge reads would be up to 10 s old); 1000 is the floor (ray 2.60.0
# ray/_private/telemetry/open_telemetry_metric_recorder.py, mirroring src/ray/stats/stats.h).
METRICS_REPORT_INTERVAL_MS = 1000


class BadInput(ValueError):
    """The request cannot be run: the message says what is wrong (HTTP 400, INVALID_ARGUMENT)."""


def _oip() -> Any:
    # Imported at first use: the HTTP path needs no stubs.
    from servecmp_oip_grpc_stubs import grpc_predict_v2_pb2

    return grpc_predict_v2_pb2


@serve.deployment
class TorchScriptModel:
    def __init__(self, model_name: str, model_dir: str, intra_op_threads: int = 0) -> None:
        import torch

        self.model_name = model_name
        self.model_dir = Path(model_dir)
        self.threads = intra_op_threads
        if intra_op_threads > 0:
            torch.set_num_threads(intra_op_threads)
        self.version = 0
        self.batching = False
        self.input_shape: list[int] | None = None
        # (name, shape without batch, dtype) per input of a several-input model; [] otherwise
        self.inputs: list[tuple[str, list[int], str]] = []
        self._module: Any = None
        self._ort = False  # an ONNX file in an ONNX Runtime session (else TorchScript)
        self._feeds: list[str] = []  # the ONNX graph's input names, in order
        self._lock = threading.Lock()

    # ---- user_config: version and batching, applied in place -------------------------------
    def reconfigure(self, config: dict[str, Any]) -> None:
        version = int(config.get("model_version", 1))
        if version != self.version:
            self._load(version)
        self.batching = bool(config.get("batching", False))
        if self.batching:
            self._batched.set_max_batch_size(int(config["max_batch_size"]))
            self._batched.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

    def _load(self, version: int) -> None:
        import torch

        path = self.model_dir / str(version) / MODEL_FILE
        onnx_path = path.with_name(ONNX_FILE)
        if onnx_path.is_file():  # an ONNX-source card: ONNX Runtime, the same thread budget
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if self.threads > 0:
                opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            module: Any = ort.InferenceSession(
                str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            self._feeds = [i.name for i in module.get_inputs()]
            path = onnx_path
        elif not path.is_file():
            raise FileNotFoundError(f"{path}: no version {version} of {self.model_name}")
        else:
            module = torch.jit.load(str(path), map_location="cpu")
            module.eval()
        self._ort = path == onnx_path
        spec_path = path.with_name(SPEC_FILE)
        spec = json.loads(spec_path.read_text()) if spec_path.is_file() else {}
        shape = spec.get("input_shape")
        self._module, self.version = module, version
        self.input_shape = [int(d) for d in shape] if shape else None
        self.inputs = spec_inputs(spec)
        print(
            f"servecmp-rayserve: {self.model_name} version {version} loaded; pid {os.getpid()}, "
            f"torch threads {torch.get_num_threads()}",
            flush=True,
        )

    # ---- the model -----------------------------------------------------------------------------
    @property
    def datatypes(self) -> tuple[str, ...]:
        """The OIP datatypes the model takes (FP32 for one float input)."""
        return tuple(dict.fromkeys(OIP_DTYPES[d] for _, _, d in self.inputs)) or ("FP32",)

    def _check(self, named: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The request's tensors in the model's input order, each checked against the spec."""
        if not self.inputs:
            if len(named) != 1:
                raise BadInput(f"expected exactly 1 input tensor, got {len(named)}")
            ((name, batch),) = named.items()
            if batch.dtype != np.float32:
                raise BadInput(f"input {name!r}: datatype must be FP32, got {batch.dtype}")
            if batch.ndim != 4:
                raise BadInput(f"input must be a [B, C, H, W] batch, got shape {list(batch.shape)}")
            if self.input_shape and list(batch.shape[1:]) != self.input_shape:
                raise BadInput(
                    f"input shape {list(batch.shape)} does not match the model's [B, "
                    f"{', '.join(map(str, self.input_shape))}]"
                )
            return [batch]
        want = ", ".join(f"{n} [B, {', '.join(map(str, s))}] {d}" for n, s, d in self.inputs)
        if sorted(named) != sorted(n for n, _, _ in self.inputs):
            raise BadInput(f"expected the inputs {want}, got {', '.join(sorted(named))}")
        arrays = [named[n] for n, _, _ in self.inputs]
        for (name, shape, dtype), a in zip(self.inputs, arrays, strict=True):
            if a.dtype != np.dtype(dtype) or a.ndim != len(shape) + 1 or list(a.shape[1:]) != shape:
                raise BadInput(
                    f"input {name!r}: expected {dtype} [B, {', '.join(map(str, shape))}], got "
                    f"{a.dtype} {list(a.shape)} (inputs {want})"
                )
        if len({len(a) for a in arrays}) != 1:
            raise BadInput(f"inputs disagree on the batch size B: {[len(a) for a in arrays]}")
        return arrays

    def _run(self, arrays: list[np.ndarray]) -> np.ndarray:
        if self._ort:  # numpy feeds by the graph's input names
            feeds = {n: np.ascontiguousarray(a) for n, a in zip(self._feeds, arrays, strict=True)}
            with self._lock:
                out = self._module.run(None, feeds)[0]
            return np.asarray(out).astype(np.float32, copy=False)
        import torch

        if self.threads > 0 and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)  # OpenMP's setting is per thread
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        with self._lock, torch.inference_mode():
            out = self._module(*tensors)
        return out.numpy().astype(np.float32, copy=False)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _batched(self, requests: list[list[np.ndarray]]) -> list[np.ndarray]:
        # Ray's batch counts calls (requests), each may hold several rows: one forward pass over
        # their concatenation (per input), split back per request.
        sizes = [len(r[0]) for r in requests]
        logits = self._run([np.concatenate(parts) for parts in zip(*requests, strict=True)])
        return list(np.split(logits, np.cumsum(sizes)[:-1]))

    async def _infer(self, named: dict[str, np.ndarray]) -> np.ndarray:
        arrays = self._check(named)
        if self.batching:
            return await self._batched(arrays)
        return self._run(arrays)

    # ---- OIP v2 REST (through the HTTP proxy) ----------------------------------------------
    async def __call__(self, request: Request) -> JSONResponse:
        parts = request.url.path.strip("/").split("/")
        if parts == ["v2", "health", "ready"] or parts == ["v2", "health", "live"]:
            return JSONResponse({parts[-1]: True})
        if len(parts) == 3 and parts[:2] == ["v1", "models"] and parts[2].endswith(":predict"):
            return await self._v1_predict(parts[2].removesuffix(":predict"), request)
        if len(parts) != 4 or parts[:2] != ["v2", "models"]:
            return JSONResponse({"error": f"no route {request.url.path}"}, status_code=404)
        name, verb = parts[2], parts[3]
        if name != self.model_name:
            return JSONResponse(
                {"error": f"model {name} does not exist (served: {self.model_name})"},
                status_code=404,
            )
        if verb == "ready" and request.method == "GET":
            return JSONResponse({"name": name, "ready": self._module is not None})
        if verb != "infer" or request.method != "POST":
            return JSONResponse({"error": f"no route {request.method} {request.url.path}"}, 404)
        try:
            body = await request.body()
            header = request.headers.get(INFER_HEADER_LENGTH)
            named, binary_out = (
                oip_binary_input(body, header, self.datatypes)
                if header is not None
                else oip_json_input(body, self.datatypes)
            )
            logits = await self._infer(named)
        except BadInput as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        out: dict[str, Any] = {"name": OUTPUT_NAME, "shape": list(logits.shape), "datatype": "FP32"}
        reply: dict[str, Any] = {
            "model_name": name,
            "model_version": str(self.version),
            "outputs": [out],
        }
        if not binary_out:
            out["data"] = logits.ravel().tolist()
            return JSONResponse(reply)
        # binary_data_output: the header, then the output's bytes (extension_binary_data.md)
        raw = logits.astype("<f4").tobytes()
        out["parameters"] = {"binary_data_size": len(raw)}
        head = json.dumps(reply, separators=(",", ":")).encode()
        return Response(
            head + raw,
            media_type="application/octet-stream",
            headers={INFER_HEADER_LENGTH: str(len(head))},
        )

    async def _v1_predict(self, name: str, request: Request) -> JSONResponse:
        """``{"instances": [B,C,H,W]}`` -> ``{"predictions": [[...]]}`` (TF Serving's row format;
        the chart's ``helm test`` posts it to every server)."""
        if name != self.model_name:
            return JSONResponse({"error": f"model {name} does not exist"}, status_code=404)
        try:
            doc = json.loads(await request.body())
            if not isinstance(doc, dict) or "instances" not in doc:
                raise BadInput(
                    'v1 predict body must be a JSON object with "instances": [B, C, H, W]'
                )
            logits = await self._infer(self._v1_named(doc["instances"]))
        except ValueError as err:  # BadInput, or a body that is not JSON
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse({"predictions": logits.tolist()})

    def _v1_named(self, rows: Any) -> dict[str, np.ndarray]:
        """v1 rows: the batch itself for one float input; objects with one entry per input for a
        model with several (TF Serving's row format, the TorchServe handler's too)."""
        if not self.inputs:
            try:
                return {"input": np.asarray(rows, dtype=np.float32)}
            except (ValueError, TypeError) as err:
                raise BadInput(
                    f'"instances" is not a rectangular array of numbers: {err}'
                ) from None
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise BadInput("instances: expected a non-empty list of objects, one entry per input")
        named = {}
        for name, _, dtype in self.inputs:
            if any(name not in r for r in rows):
                raise BadInput(f"instances: every row needs {name!r}")
            try:
                named[name] = np.asarray([r[name] for r in rows]).astype(dtype)
            except (ValueError, TypeError) as err:
                raise BadInput(f"instances.{name}: {err}") from None
        return named

    # ---- OIP v2 gRPC (through the gRPC proxy) ----------------------------------------------
    async def ModelInfer(self, request: Any, grpc_context: Any = None) -> Any:
        pb2 = _oip()
        try:
            if request.model_name != self.model_name:
                raise LookupError(f"model {request.model_name} does not exist")
            logits = await self._infer(oip_grpc_input(request, self.datatypes))
        except (BadInput, LookupError) as err:
            import grpc

            code = (
                grpc.StatusCode.NOT_FOUND
                if isinstance(err, LookupError)
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            grpc_context.set_code(code)
            grpc_context.set_details(str(err).strip("'\""))
            return pb2.ModelInferResponse()
        out = pb2.ModelInferResponse.InferOutputTensor(
            name=OUTPUT_NAME, datatype="FP32", shape=list(logits.shape)
        )
        reply = pb2.ModelInferResponse(
            model_name=self.model_name, model_version=str(self.version), id=request.id
        )
        if request.raw_input_contents:  # raw in -> raw out, as KServe and Triton answer
            reply.outputs.append(out)
            reply.raw_output_contents.append(logits.astype("<f4").tobytes())
        else:
            out.contents.fp32_contents.extend(logits.ravel().tolist())
            reply.outputs.append(out)
        return reply

    async def ModelReady(self, request: Any) -> Any:
        return _oip().ModelReadyResponse(
            ready=request.name == self.model_name and self._module is not None
        )

    async def ServerReady(self, request: Any) -> Any:
        return _oip().ServerReadyResponse(ready=self._module is not None)

    async def ServerLive(self, request: Any) -> Any:
        return _oip().ServerLiveResponse(live=True)


def spec_inputs(spec: dict[str, Any]) -> list[tuple[str, list[int], str]]:
    """(name, shape without the batch axis, dtype) per input of a model with several (or
    integer) inputs; [] for one float32 input (the image path: ``input_shape``)."""
    inputs = spec.get("inputs") or []
    if len(inputs) == 1 and inputs[0].get("dtype", "float32") == "float32":
        return []
    return [(str(i["name"]), [int(d) for d in i["shape"][1:]], str(i["dtype"])) for i in inputs]


def _check_datatype(name: str, datatype: Any, allowed: tuple[str, ...]) -> None:
    if datatype not in allowed:
        raise BadInput(f"input {name!r}: datatype must be {' or '.join(allowed)}, got {datatype}")


def _tensor_meta(inp: Any, where: str, allowed: tuple[str, ...]) -> tuple[str, str, list[int]]:
    if not isinstance(inp, dict):
        raise BadInput(f"{where} must be an object {{name, shape, datatype, ...}}")
    name, datatype = str(inp.get("name")), inp.get("datatype")
    _check_datatype(name, datatype, allowed)
    try:
        shape = [int(d) for d in inp["shape"]]
    except KeyError as err:
        raise BadInput(f"input {name!r}: missing {err}") from None
    except (ValueError, TypeError) as err:
        raise BadInput(f"input {name!r}: shape: {err}") from None
    return name, str(datatype), shape


def _inputs_of(doc: Any) -> list[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise BadInput('body must be a JSON object with "inputs": [{name, shape, datatype, data}]')
    return list(doc["inputs"])


def _binary_out(doc: dict[str, Any]) -> bool:
    return bool((doc.get("parameters") or {}).get("binary_data_output", False))


def oip_json_input(body: bytes, allowed: tuple[str, ...]) -> tuple[dict[str, np.ndarray], bool]:
    """An OIP v2 JSON request's tensors by name (shaped), and whether binary outputs were asked
    for; BadInput names what is wrong (a datatype outside ``allowed`` first)."""
    try:
        doc = json.loads(body)
    except ValueError as err:
        raise BadInput(f"body is not JSON: {err}") from None
    named = {}
    for k, inp in enumerate(_inputs_of(doc)):
        name, datatype, shape = _tensor_meta(inp, f"inputs[{k}]", allowed)
        try:
            named[name] = np.asarray(inp["data"], dtype=NP_DTYPES[datatype]).reshape(shape)
        except KeyError as err:
            raise BadInput(f"input {name!r}: missing {err}") from None
        except (ValueError, TypeError) as err:
            raise BadInput(f"input {name!r}: {err}") from None
    return named, _binary_out(doc)


def oip_binary_input(
    body: bytes, header_length: str, allowed: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], bool]:
    """A request of the binary tensor extension (Triton v2.51.0
    docs/protocol/extension_binary_data.md): the JSON header's inputs give each tensor's
    ``binary_data_size``; their bytes follow the header in the same order and must fill the body
    exactly (a short or long body is refused, as Triton's src/http_server.cc does)."""
    try:
        n = int(header_length)
    except ValueError:
        raise BadInput(f"{INFER_HEADER_LENGTH}: not an integer: {header_length!r}") from None
    if not 0 < n <= len(body):
        raise BadInput(f"{INFER_HEADER_LENGTH} {n} outside the body's {len(body)} bytes")
    try:
        doc = json.loads(body[:n])
    except ValueError as err:
        raise BadInput(f"the first {n} bytes are not a JSON header: {err}") from None
    named, offset = {}, n
    for k, inp in enumerate(_inputs_of(doc)):
        name, datatype, shape = _tensor_meta(inp, f"inputs[{k}]", allowed)
        size = (inp.get("parameters") or {}).get("binary_data_size")
        if size is None:  # this input travels as JSON data
            try:
                named[name] = np.asarray(inp["data"], dtype=NP_DTYPES[datatype]).reshape(shape)
            except (KeyError, ValueError, TypeError) as err:
                raise BadInput(f"input {name!r}: {err}") from None
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(body):
            raise BadInput(
                f"input {name!r}: binary_data_size {size!r}, {len(body) - offset} bytes left"
            )
        dtype = np.dtype(NP_DTYPES[datatype])
        if size != dtype.itemsize * int(np.prod(shape)):
            raise BadInput(
                f"input {name!r}: {size} bytes do not hold {datatype} {shape} "
                f"({dtype.itemsize * int(np.prod(shape))} bytes)"
            )
        named[name] = np.frombuffer(body, dtype=dtype, count=size // dtype.itemsize, offset=offset)
        named[name] = named[name].reshape(shape)
        offset += size
    if offset != len(body):
        raise BadInput(f"{len(body) - offset} bytes after the last input's binary data")
    return named, _binary_out(doc)


def oip_grpc_input(request: Any, allowed: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A ``ModelInferRequest``'s tensors by name (raw bytes in order, or typed contents)."""
    named = {}
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadInput(f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents")
    for k, inp in enumerate(request.inputs):
        _check_datatype(inp.name, inp.datatype, allowed)
        shape = [int(d) for d in inp.shape]
        try:
            if raw:
                flat = np.frombuffer(raw[k], dtype=NP_DTYPES[inp.datatype])
            elif inp.datatype == "FP32":
                flat = np.asarray(inp.contents.fp32_contents, dtype=np.float32)
            else:
                flat = np.asarray(inp.contents.int64_contents or inp.contents.int_contents)
                flat = flat.astype(NP_DTYPES[inp.datatype])
            named[inp.name] = flat.reshape(shape)
        except ValueError as err:
            raise BadInput(f"input {inp.name!r}: {err}") from None
    return named


def app(args: dict[str, Any]) -> Any:
    """The application builder the config's ``import_path`` names (``args`` from the config)."""
    # @serve.deployment made it a Deployment (mypy keeps the class type through a decorator)
    return TorchScriptModel.bind(  # type: ignore[attr-defined]
        str(args["model_name"]), str(args["model_dir"]), int(args.get("intra_op_threads", 0))
    )


# ---- the launcher ------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="Serve config file (ServeDeploySchema YAML)")
    p.add_argument("--num_cpus", type=int, required=True, help="ray.init num_cpus (CPU budget)")
    p.add_argument("--metrics_export_port", type=int, required=True, help="Prometheus port")
    p.add_argument("--temp_dir", default=None, help="Ray's root temp dir (absolute, short)")
    return p


def _deploy(client: Any, path: str) -> None:
    import yaml
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load(Path(path).read_text()))
    client.deploy_apps(config, _blocking=False)


def main(argv: list[str] | None = None) -> None:
    import ray
    import yaml
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions
    from ray.serve.schema import ServeDeploySchema

    args, _ = _parser().parse_known_args(argv)
    t0 = time.time()
    config = ServeDeploySchema.model_validate(yaml.safe_load(Path(args.config).read_text()))
    ray.init(
        num_cpus=args.num_cpus,
        include_dashboard=False,
        namespace="serve",  # SERVE_NAMESPACE, as `serve run` (ray/serve/scripts.py)
        _metrics_export_port=args.metrics_export_port,
        _system_config={"metrics_report_interval_ms": METRICS_REPORT_INTERVAL_MS},
        _temp_dir=args.temp_dir,
    )
    client = serve_api.serve_start(
        http_options=config.http_options.model_dump(),
        proxy_location=config.proxy_location,
        grpc_options=gRPCOptions(**config.grpc_options.model_dump()),
    )
    client.deploy_apps(config, _blocking=False)
    print(f"servecmp-rayserve: config deployed {time.time() - t0:.1f} s after start", flush=True)

    redeploy = threading.Event()
    stop = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: redeploy.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        if redeploy.wait(0.2):
            redeploy.clear()
            try:
                _deploy(client, args.config)
                print("servecmp-rayserve: config redeployed", flush=True)
            except Exception as err:  # a bad edit must not take the server down
                print(f"servecmp-rayserve: redeploy failed: {err}", file=sys.stderr, flush=True)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
