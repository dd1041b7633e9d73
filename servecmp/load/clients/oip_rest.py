"""KServe-style REST: Open Inference Protocol v2 ``POST /v2/models/<m>/infer`` (``oip``) and the
v1 predict API ``POST /v1/models/<m>:predict`` (``json``, TF Serving's ``{"instances"}`` body).

``oip`` sends ``{"inputs": [{"name", "shape": [B,C,H,W], "datatype": "FP32", "data": flat}]}``
and reads ``outputs[0]`` (``{"name", "shape": [B,K], "datatype": "FP32", "data": flat}``), the
JSON form every OIP server answers (KServe, Triton, MLServer, OpenVINO Model Server); ``json``
reads ``{"predictions": [[...]]}`` as the TF Serving client does.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients._http import HttpConnection
from servecmp.load.clients.base import TargetClient, TransportError
from servecmp.load.clients.torchserve_rest import JSON_HEADERS, decode_predictions_json
from servecmp.load.payloads import PayloadSet

V2_INFER = "/v2/models/{model}/infer"
V1_PREDICT = "/v1/models/{model}:predict"


def decode_oip_json(data: bytes, output_name: str | None = None) -> np.ndarray:
    """The first output (or the one named ``output_name``) of a v2 JSON response, reshaped."""
    try:
        doc: Any = json.loads(data)
        outputs = doc["outputs"]
        out = next((o for o in outputs if o.get("name") == output_name), outputs[0])
        if out.get("datatype") != "FP32":
            raise TransportError(
                "decode", f"output {out.get('name')!r} is {out.get('datatype')}, not FP32"
            )
        return np.asarray(out["data"], dtype=np.float32).reshape([int(d) for d in out["shape"]])
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise TransportError("decode", f"bad v2 inference JSON ({err}): {data[:120]!r}") from None


class OipRestClient(TargetClient):
    # Any server whose adapter lists this client for rest (KServe today; Triton, MLServer and
    # OpenVINO Model Server speak the same protocol): the protocol is checked, not the server.
    serves = ()

    def __init__(
        self,
        target: Target,
        address: str,
        payloads: PayloadSet,
        timeout_s: float,
        *,
        concurrency: int = 1,
    ) -> None:
        super().__init__(target, address, payloads, timeout_s)
        if target.protocol is not Protocol.rest:
            raise ValueError(
                f"{type(self).__name__} speaks rest, not {target.protocol.value} ({target.name})"
            )
        if self.encoding not in (Encoding.oip, Encoding.json):
            raise ValueError(f"OIP/v1 REST does not take encoding {self.encoding.value}")
        payloads.prepare([self.encoding])
        template = V2_INFER if self.encoding is Encoding.oip else V1_PREDICT
        self._path = template.format(model=self.model_name)
        self._http = HttpConnection(address, timeout_s, concurrency=concurrency)

    def _transfer(self, index: int) -> tuple[bytes, int]:
        data = self._http.post(self._path, self.payloads.body(self.encoding, index), JSON_HEADERS)
        return data, len(data)

    def _decode(self, answer: bytes) -> np.ndarray:
        if self.encoding is Encoding.oip:
            flat = decode_oip_json(answer, self.payloads.output_name).ravel()
        else:
            flat = decode_predictions_json(answer, self.payloads.output_name)
        return self._logits_from_flat(flat)

    def close(self) -> None:
        self._http.close()
