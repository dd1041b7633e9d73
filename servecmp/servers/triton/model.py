"""Triton Python backend model serving servecmp's TorchScript file (a standalone script).

Triton's Python backend stub runs this file from ``<repository>/<model>/<version>/model.py``
beside ``model.pt`` (the TorchScript bytes from inside the .mar: the same file TorchServe, KServe
and the in-process baseline run). It imports only ``torch``, ``numpy`` and the backend's own
``triton_python_backend_utils``, never ``servecmp``.

The stub embeds the system's libpython and builds its own ``sys.path``: ``PYTHONPATH`` is not
honoured (checked with the stub of nvidia-pytriton 0.7.0 / Triton 2.51.0). Locally, torch and
numpy live in ``.venv-triton``: the launcher passes that venv's site-packages in
``SERVECMP_TRITON_SITE_PACKAGES`` (the stub inherits the server's environment, python_backend
r24.10 ``src/stub_launcher.cc`` forks and execs ``bash -c``), put first on ``sys.path`` before
numpy is imported. The cluster image installs them into the system Python instead.

Per request: each input (several for a token model: ids and a mask, in config.pbtxt's order) of
every request in the (dynamic) batch is concatenated along the batch axis, the model runs once
on them all, and its output is split back, so Triton's batcher (``config.pbtxt``
``dynamic_batching``) decides how many examples share a forward pass. ``parameters.intra_op_threads`` sets
``torch.set_num_threads`` in this instance's process (each instance is its own stub process).
An ONNX-source card publishes ``model.onnx`` instead of ``model.pt``: it runs in an ONNX Runtime
session with the same budget (intra-op ``intra_op_threads``, inter-op 1).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_SITE = os.environ.get("SERVECMP_TRITON_SITE_PACKAGES", "")
if _SITE and _SITE not in sys.path:
    sys.path.insert(0, _SITE)

import numpy as np  # noqa: E402 - after the site-packages of Triton's own environment
import torch  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

MODEL_FILE = "model.pt"
ONNX_FILE = "model.onnx"  # an ONNX-source card's file (published instead of model.pt)


class TritonPythonModel:
    """The interface the Python backend calls (python_backend r24.10 README "Usage")."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.threads = int(params.get("intra_op_threads") or 0)
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        # every input of config.pbtxt, in its order (token ids and a mask: the forward's order);
        # Triton has checked each one's datatype and dims against it before execute
        self.input_names = [i["name"] for i in config["input"]]
        self.output_name = config["output"][0]["name"]
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        onnx_path = os.path.join(version_dir, ONNX_FILE)
        self.ort = os.path.isfile(onnx_path)
        if self.ort:  # an ONNX-source card: its file in ONNX Runtime, the same thread budget
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if self.threads > 0:
                opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            self.module = ort.InferenceSession(
                onnx_path, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        else:
            path = os.path.join(version_dir, MODEL_FILE)
            self.module = torch.jit.load(path, map_location="cpu").eval()

    def execute(self, requests: list[Any]) -> list[Any]:
        # OpenMP's thread count is per calling thread: hold it where execute runs.
        if self.threads > 0 and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        try:
            per_input = [
                [pb_utils.get_input_tensor_by_name(r, n).as_numpy() for r in requests]
                for n in self.input_names
            ]
            arrays = [np.concatenate(xs) for xs in per_input]
            if self.ort:
                out = self.module.run(None, dict(zip(self.input_names, arrays, strict=True)))[0]
            else:
                with torch.inference_mode():
                    out = self.module(*[torch.from_numpy(a) for a in arrays]).numpy()
        except Exception as err:  # every request of the batch gets the reason
            error = pb_utils.TritonError(f"{type(err).__name__}: {err}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses = []
        start = 0
        for x in per_input[0]:
            part = np.ascontiguousarray(out[start : start + x.shape[0]], dtype=np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, part)]))
            start += x.shape[0]
        return responses

    def finalize(self) -> None:
        self.module = None
