"""KServe Python model server serving servecmp's TorchScript model (a standalone script).

Run by ``.venv-kserve/bin/python`` locally and as the entrypoint of the cluster image
(deploy/kind/kserve.Dockerfile copies this file): it imports only ``kserve``, ``torch`` and
``numpy``, never ``servecmp`` (that lives in another venv / is absent from the image).

CLI (one flag per line in the generated ``flags.txt``; servecmp/servers/kserve/config.py writes it)::

    python model_server.py --model_name resnet --model_dir /mnt/models/resnet \\
        --intra_op_threads 1 --http_port 8080 --grpc_port 8081 --workers 1 --max_threads 4

Our flags: ``--model_dir`` holds ``<version>/model.pt`` (the TorchScript file from inside the
.mar; ``<version>/model_spec.json`` beside it, when present, fixes the input's [C, H, W]); the
highest version loads. An ONNX-source card's version holds ``model.onnx`` instead, run in an
ONNX Runtime session with the same threads (intra-op ``--intra_op_threads``, inter-op 1). ``--intra_op_threads`` sets ``torch.set_num_threads`` (the
TorchServe handler and the in-process baseline do the same) in each REST worker process,
``--parent_intra_op_threads`` (0: the same) in the parent, which alone serves gRPC when
``--workers`` > 1; ``--interop_threads`` ``torch.set_num_interop_threads``. Every other flag is KServe's own: ``kserve/model_server.py``
(kserve 0.21.0) parses ``sys.argv`` with ``parse_known_args`` when it is imported
(``--http_port``, ``--grpc_port``, ``--workers``, ``--max_threads``, ``--enable_grpc``, ...).

What it serves (routes of kserve 0.21.0, ``kserve/protocol/rest/{v1,v2}_endpoints.py``,
``kserve/protocol/rest/server.py``, ``kserve/protocol/grpc/servicer.py``):
- v1 predict ``POST /v1/models/<m>:predict``: ``{"instances": [B,C,H,W]}`` ->
  ``{"predictions": [[...]]}`` (TF Serving's row format);
- Open Inference Protocol v2 REST ``POST /v2/models/<m>/infer``: ``inputs[0]`` FP32
  ``[B,C,H,W]`` -> ``outputs[0]`` ``logits`` FP32 ``[B,K]``; JSON tensors or the binary tensor
  extension (KServe 0.21.0 decodes a body with ``inference-header-content-length``,
  ``InferRequest.from_bytes`` in ``protocol/infer_type.py``; ``binary_data_output`` asks for
  binary outputs, ``InferResponse.to_rest``);
- a model with several (or integer) inputs (``inputs`` in model_spec.json: token ids and a
  mask) takes each by name over OIP (REST JSON, binary, gRPC) and as row objects over v1;
- OIP v2 gRPC ``inference.GRPCInferenceService/ModelInfer`` on ``--grpc_port``: raw
  ``raw_input_contents`` in -> ``raw_output_contents`` out (KServe answers raw for raw), or
  typed ``contents.fp32_contents`` both ways;
- readiness ``GET /v2/health/ready``, ``GET /v2/models/<m>/ready``; Prometheus ``GET /metrics``
  on the HTTP port (histograms ``request_{preprocess,predict,postprocess}_seconds{model_name}``,
  ``kserve/metrics.py``);
- model update: ``POST /v2/repository/models/<m>/load`` reloads the highest version under
  ``--model_dir`` (KServe's model repository extension calls ``ModelRepository.load``, a no-op
  upstream; ours loads). With ``--workers`` > 1 each REST process holds its own copy and only
  the process answering the call reloads.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ours = argparse.ArgumentParser(add_help=False)
ours.add_argument("--model_dir", required=True, help="directory holding <version>/model.pt")
ours.add_argument(
    "--intra_op_threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)"
)
ours.add_argument(
    "--parent_intra_op_threads",
    type=int,
    default=0,
    help="torch.set_num_threads of the parent process (0: --intra_op_threads)",
)
ours.add_argument(
    "--interop_threads", type=int, default=0, help="torch.set_num_interop_threads (0: default)"
)
ours.add_argument("--output_name", default="logits", help="name of the OIP output tensor")

import kserve  # noqa: E402 - parses sys.argv for its own flags at import (model_server.py)
from kserve.errors import InvalidInput  # noqa: E402
from kserve.model_repository import ModelRepository  # noqa: E402
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse  # noqa: E402

MODEL_FILE = "model.pt"
SPEC_FILE = "model_spec.json"  # from the .mar, optional: {"input_shape": [C, H, W], ...}
# OIP datatype per card dtype (the Open Inference Protocol's tensor data types)
OIP_DTYPES = {"float32": "FP32", "int64": "INT64", "int32": "INT32"}


def spec_inputs(spec: dict[str, Any]) -> list[tuple[str, list[int], str]]:
    """(name, shape without the batch axis, dtype) per input of a model with several (or
    integer) inputs; [] for one float32 input (the image path: ``input_shape``)."""
    inputs = spec.get("inputs") or []
    if len(inputs) == 1 and inputs[0].get("dtype", "float32") == "float32":
        return []
    return [(str(i["name"]), [int(d) for d in i["shape"][1:]], str(i["dtype"])) for i in inputs]


ONNX_FILE = "model.onnx"  # an ONNX-source card's file, run in ONNX Runtime


def _model_file(version_dir: Path) -> Path | None:
    for name in (ONNX_FILE, MODEL_FILE):
        if (version_dir / name).is_file():
            return version_dir / name
    return None


def ort_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime session with the budget torch gets here: ``--intra_op_threads`` math
    threads (0: ONNX Runtime's default), inter-op 1."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def latest_version(model_dir: Path) -> tuple[int, Path]:
    """(version, file) of the highest ``<version>/model.pt`` (or ``model.onnx``) under
    ``model_dir``."""
    found = (
        sorted(
            (int(d.name), f)
            for d in model_dir.iterdir()
            if d.is_dir() and d.name.isdigit() and (f := _model_file(d)) is not None
        )
        if model_dir.is_dir()
        else []
    )
    if not found:
        raise FileNotFoundError(
            f"{model_dir}: no <version>/{MODEL_FILE} (expected e.g. {model_dir}/1/{MODEL_FILE})"
        )
    return found[-1]


class TorchScriptModel(kserve.Model):
    """One TorchScript module; ``predict`` runs it synchronously (KServe's custom-predictor way:
    the call holds the process's event loop, one request at a time per process)."""

    def __init__(
        self,
        name: str,
        model_dir: str,
        output_name: str = "logits",
        threads: int = 0,
        worker_threads: int = 0,
    ) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.output_name = output_name
        self.threads = threads  # torch intra-op threads of this process (0: torch's default)
        self.worker_threads = worker_threads or threads  # ... of each REST worker process
        self.version = 0
        self.input_shape: list[int] | None = None  # [C, H, W] when the version ships its spec
        # (name, shape without batch, dtype) per input of a several-input model; [] otherwise
        self.inputs: list[tuple[str, list[int], str]] = []
        self._module: Any = None
        self._ort = False  # an ONNX file in an ONNX Runtime session (else TorchScript)
        self._feeds: list[str] = []  # the ONNX graph's input names, in order
        self._loading: threading.Thread | None = None

    # --workers > 1 starts REST processes with multiprocessing "spawn" and pickles the model
    # registry into them (kserve/protocol/rest/multiprocess/server.py); a TorchScript module
    # does not pickle, so each process loads its own copy. The parent pings each child over a
    # pipe every 0.5 s and kills one that does not answer within 5 s (RESTServerProcess.ping,
    # kserve 0.21.0); the child answers only once unpickling is over and its pong thread runs.
    # So the copy (torch import included) loads in a thread: readiness says "not ready" and a
    # request waits for it (DataPlane.get_model calls load() on a model that is not ready).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_module"] = None
        state["_loading"] = None
        state["threads"] = self.worker_threads
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if state.get("ready"):
            self.ready = False
            self._loading = threading.Thread(
                target=self._load, name="servecmp-model-load", daemon=True
            )
            self._loading.start()

    def load(self) -> bool:
        loading = self._loading
        if loading is not None and loading is not threading.current_thread() and not self.ready:
            loading.join()  # the copy still loading in the background: wait for it, never twice
            if self.ready:
                return True
        return self._load()  # first load, or a reload (repository extension)

    def _load(self) -> bool:
        import torch

        if self.threads > 0:
            torch.set_num_threads(self.threads)
        version, path = latest_version(self.model_dir)
        self._ort = path.name == ONNX_FILE
        if self._ort:
            module: Any = ort_session(path, self.threads)
            self._feeds = [i.name for i in module.get_inputs()]
        else:
            module = torch.jit.load(str(path), map_location="cpu")
            module.eval()
        spec_path = path.with_name(SPEC_FILE)
        spec = json.loads(spec_path.read_text()) if spec_path.is_file() else {}
        shape = spec.get("input_shape")
        self._module, self.version = module, version
        self.input_shape = [int(d) for d in shape] if shape else None
        self.inputs = spec_inputs(spec)
        self.ready = True
        return self.ready

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype != np.float32:
            raise InvalidInput(f"input must be FP32 (float32), got {batch.dtype}")
        if batch.ndim != 4:
            raise InvalidInput(f"input must be a [B, C, H, W] batch, got shape {list(batch.shape)}")
        if self.input_shape and list(batch.shape[1:]) != self.input_shape:
            # A global-pooling CNN would answer other H, W too: the model's declared shape rules.
            raise InvalidInput(
                f"input shape {list(batch.shape)} does not match the model's [B, "
                f"{', '.join(map(str, self.input_shape))}]"
            )
        try:
            return self._forward([batch])
        except RuntimeError as err:  # wrong C/H/W reaches the network's first layer
            last = (str(err).strip().splitlines() or ["?"])[-1]  # not the TorchScript traceback
            raise InvalidInput(
                f"model {self.name} cannot run input of shape {list(batch.shape)}: {last}"
            ) from None

    def _forward(self, arrays: list[np.ndarray]) -> np.ndarray:
        """The model on every input (in its order): TorchScript, or ONNX Runtime for an ONNX
        file (numpy feeds by the graph's input names)."""
        if self._ort:
            feeds = {n: np.ascontiguousarray(a) for n, a in zip(self._feeds, arrays, strict=True)}
            return np.asarray(self._module.run(None, feeds)[0]).astype(np.float32, copy=False)
        import torch

        if self.threads > 0 and torch.get_num_threads() != self.threads:
            torch.set_num_threads(
                self.threads
            )  # OpenMP's setting is per thread: the loader's was another
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        with torch.inference_mode():
            out = self._module(*tensors)
        return out.numpy().astype(np.float32, copy=False)

    def _describe(self) -> str:
        return ", ".join(
            f"{n} [B, {', '.join(map(str, shape))}] {dt}" for n, shape, dt in self.inputs
        )

    def _run_multi(self, arrays: list[np.ndarray]) -> np.ndarray:
        """Every input (in the model's order) checked against the spec, then one call."""
        batch = {int(a.shape[0]) if a.ndim else -1 for a in arrays}
        for (name, shape, dtype), a in zip(self.inputs, arrays, strict=True):
            if a.dtype != np.dtype(dtype) or list(a.shape[1:]) != shape or a.ndim != len(shape) + 1:
                raise InvalidInput(
                    f"input {name!r}: expected {dtype} [B, {', '.join(map(str, shape))}], got "
                    f"{a.dtype} {list(a.shape)} (inputs {self._describe()})"
                )
        if len(batch) != 1:
            raise InvalidInput(f"inputs disagree on the batch size B: {sorted(batch)}")
        return self._forward(arrays)

    def _oip_multi(self, inputs: list[Any]) -> np.ndarray:
        by_name = {inp.name: inp for inp in inputs}
        names = [n for n, _, _ in self.inputs]
        if sorted(by_name) != sorted(names):
            raise InvalidInput(
                f"expected the inputs {', '.join(names)}, got {', '.join(sorted(by_name))} "
                f"(inputs {self._describe()})"
            )
        arrays = []
        for name, _, dtype in self.inputs:
            inp = by_name[name]
            if inp.datatype != OIP_DTYPES.get(dtype):
                raise InvalidInput(
                    f"input {name!r}: datatype must be {OIP_DTYPES.get(dtype)}, got {inp.datatype}"
                )
            try:
                arrays.append(inp.as_numpy())
            except ValueError as err:  # data length does not match the declared shape
                raise InvalidInput(f"input {name!r}: {err}") from None
        return self._run_multi(arrays)

    def _v1_multi(self, rows: Any) -> np.ndarray:
        """v1 rows as objects, one entry per input (TF Serving's row format; the TorchServe
        handler takes the same body)."""
        names = [n for n, _, _ in self.inputs]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise InvalidInput(
                f"instances: expected a non-empty list of objects with {', '.join(names)} "
                f"(inputs {self._describe()})"
            )
        arrays = []
        for name, _, dtype in self.inputs:
            if any(name not in r for r in rows):
                raise InvalidInput(
                    f"instances: every row needs {name!r} (inputs {self._describe()})"
                )
            try:
                arr = np.asarray([r[name] for r in rows])
            except ValueError:
                raise InvalidInput(
                    f"instances.{name}: expected a rectangular nested list"
                ) from None
            if arr.dtype.kind not in ("iu" if dtype != "float32" else "fiu"):
                raise InvalidInput(f"instances.{name}: expected {dtype} values, got {arr.dtype}")
            arrays.append(arr.astype(dtype))
        return self._run_multi(arrays)

    def _oip_single(self, inputs: list[Any]) -> np.ndarray:
        if len(inputs) != 1:
            raise InvalidInput(f"expected exactly 1 input tensor, got {len(inputs)}")
        inp = inputs[0]
        if inp.datatype != "FP32":
            raise InvalidInput(f"input {inp.name!r}: datatype must be FP32, got {inp.datatype}")
        try:
            batch = inp.as_numpy()
        except ValueError as err:  # data length does not match the declared shape
            raise InvalidInput(f"input {inp.name!r}: {err}") from None
        return self._run(batch)

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, InferRequest):  # OIP v2: REST (JSON or binary) or gRPC
            inputs = payload.inputs
            logits = self._oip_multi(inputs) if self.inputs else self._oip_single(inputs)
            # gRPC: raw in -> raw out; REST: the binary tensor extension's binary_data_output
            # (InferRequest.use_binary_outputs, kserve 0.21.0 protocol/infer_type.py)
            binary = payload.use_binary_outputs
            out = InferOutput(name=self.output_name, shape=list(logits.shape), datatype="FP32")
            out.set_data_from_numpy(logits, binary_data=binary)
            return InferResponse(
                response_id=payload.id or str(uuid.uuid4()),
                model_name=self.name,
                infer_outputs=[out],
                model_version=str(self.version),
                use_binary_outputs=binary,
            )
        # v1: {"instances": [...]} (TF Serving row format), answered {"predictions": [...]}
        if isinstance(
            payload, (bytes, bytearray)
        ):  # dataplane.decode parses JSON content types only
            raise InvalidInput("v1 predict takes a JSON body: send Content-Type: application/json")
        if not isinstance(payload, dict) or "instances" not in payload:
            raise InvalidInput(
                'v1 predict body must be a JSON object with "instances": [B, C, H, W]'
            )
        if self.inputs:
            return {"predictions": self._v1_multi(payload["instances"]).tolist()}
        try:
            batch = np.asarray(payload["instances"], dtype=np.float32)
        except (ValueError, TypeError) as err:
            raise InvalidInput(
                f'"instances" is not a rectangular array of numbers: {err}'
            ) from None
        return {"predictions": self._run(batch).tolist()}


# How long the parent waits for a REST process's pong (upstream: 5 s, RESTServerProcess.ping in
# kserve/protocol/rest/multiprocess/server.py 0.21.0). A spawned process answers only after it has
# imported this script (kserve included) and unpickled the registry: on a loaded machine that took
# more than 5 s, so the parent killed it and spawned a replacement, which upstream starts without
# --log_config_file. A live process answers at once, so a longer wait costs only a hung one.
CHILD_PING_TIMEOUT_S = 60.0


def patient_ping() -> None:
    from kserve.protocol.rest.multiprocess.server import RESTServerProcess

    upstream = RESTServerProcess.ping

    def ping(self: RESTServerProcess, timeout: float = 5) -> bool:
        return bool(upstream(self, max(timeout, CHILD_PING_TIMEOUT_S)))

    RESTServerProcess.ping = ping


class VersionedRepository(ModelRepository):
    """``POST /v2/repository/models/<m>/load`` reloads the newest version from disk (upstream's
    ``ModelRepository.load`` is a no-op: kserve/model_repository.py 0.21.0)."""

    def load(self, name: str) -> bool:
        model = self.get_model(name)
        if model is None:
            raise KeyError(f"model {name} is not registered")
        return bool(model.load())


# Entry point of the KServe container image (deploy/kind/kserve.Dockerfile) and of the local KServe process (local.py).
def main() -> None:
    import torch

    args, _ = ours.parse_known_args()
    if args.interop_threads > 0:
        torch.set_num_interop_threads(args.interop_threads)
    name = kserve.model_server.args.model_name  # KServe's own --model_name flag
    model = TorchScriptModel(
        name,
        args.model_dir,
        args.output_name,
        args.parent_intra_op_threads or args.intra_op_threads,
        args.intra_op_threads,
    )
    model.load()
    print(
        f"servecmp-kserve: model {name} version {model.version} loaded; torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, pid {os.getpid()}",
        flush=True,
    )
    patient_ping()
    kserve.ModelServer(registered_models=VersionedRepository()).start([model])


if __name__ == "__main__":
    main()
