"""KServe-style REST: Open Inference Protocol v2 ``POST /v2/models/<m>/infer`` (``oip``,
``oip-binary``) and the v1 predict API ``POST /v1/models/<m>:predict`` (``json``, TF Serving's
``{"instances"}`` body).

``oip`` sends ``{"inputs": [{"name", "shape", "datatype", "data": flat}, ...]}`` (one entry per
model input) and reads the output named like the model's (``{"name", "shape", "datatype": "FP32",
"data": flat}``), the JSON form every OIP server answers (KServe, Triton, MLServer, OpenVINO Model
Server). ``oip-binary`` is the binary tensor extension (Triton v2.51.0
docs/protocol/extension_binary_data.md): the JSON header with each input's ``binary_data_size``,
then the tensors' raw little-endian bytes, the header's length in ``Inference-Header-Content-Length``;
``binary_data_output`` asks for the outputs the same way, and the answer's header says where its
JSON part ends. ``json`` reads ``{"predictions": [[...]]}`` as the TF Serving client does.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients._http import HttpConnection
from servecmp.load.clients.base import TargetClient, TransportError
from servecmp.load.clients.torchserve_rest import JSON_HEADERS, decode_predictions_json
from servecmp.load.payloads import INFER_HEADER_LENGTH, BinaryBody, PayloadSet

V2_INFER = "/v2/models/{model}/infer"
V1_PREDICT = "/v1/models/{model}:predict"
BINARY_CONTENT_TYPE = "application/octet-stream"


def _pick_output(outputs: Any, output_name: str | None) -> Any:
    return next((o for o in outputs if o.get("name") == output_name), outputs[0])


def decode_oip_json(data: bytes, output_name: str | None = None) -> np.ndarray:
    """The first output (or the one named ``output_name``) of a v2 JSON response, reshaped."""
    try:
        doc: Any = json.loads(data)
        out = _pick_output(doc["outputs"], output_name)
        if out.get("datatype") != "FP32":
            raise TransportError(
                "decode", f"output {out.get('name')!r} is {out.get('datatype')}, not FP32"
            )
        return np.asarray(out["data"], dtype=np.float32).reshape([int(d) for d in out["shape"]])
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise TransportError("decode", f"bad v2 inference JSON ({err}): {data[:120]!r}") from None


def decode_oip_binary(
    data: bytes, header_length: int | None, output_name: str | None = None
) -> np.ndarray:
    """The output named ``output_name`` (else the first) of a binary-extension response: the
    JSON header's outputs list their ``binary_data_size`` in the order their bytes follow it.
    An output answered as JSON although binary was asked for is a decode error, so a target
    labelled binary never measures JSON."""
    if header_length is None:
        raise TransportError(
            "decode",
            f"binary outputs were asked for, but the answer has no {INFER_HEADER_LENGTH} "
            f"header: {data[:120]!r}",
        )
    try:
        doc: Any = json.loads(data[:header_length])
        outputs = doc["outputs"]
        want = _pick_output(outputs, output_name)
        offset = header_length
        for out in outputs:
            size = int((out.get("parameters") or {}).get("binary_data_size", -1))
            if size < 0:
                raise TransportError(
                    "decode", f"output {out.get('name')!r} came as JSON, not binary data"
                )
            if out is want:
                if out.get("datatype") != "FP32":
                    raise TransportError(
                        "decode", f"output {out.get('name')!r} is {out.get('datatype')}, not FP32"
                    )
                if offset + size > len(data):
                    raise TransportError(
                        "decode",
                        f"output {out.get('name')!r}: {size} B declared, "
                        f"{len(data) - offset} B left in the body",
                    )
                flat = np.frombuffer(data, dtype="<f4", count=size // 4, offset=offset)
                return flat.reshape([int(d) for d in out["shape"]])
            offset += size
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise TransportError(
            "decode", f"bad v2 binary inference header ({err}): {data[:120]!r}"
        ) from None
    raise TransportError("decode", "no output in the binary answer")  # pragma: no cover


class OipRestClient(TargetClient):
    # Any server whose adapter lists this client for rest (KServe, Triton, Ray Serve; MLServer and
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
        if self.encoding not in (Encoding.oip, Encoding.oip_binary, Encoding.json):
            raise ValueError(f"OIP/v1 REST does not take encoding {self.encoding.value}")
        payloads.prepare([self.encoding])
        template = V1_PREDICT if self.encoding is Encoding.json else V2_INFER
        self._path = template.format(model=self.model_name)
        self._http = HttpConnection(address, timeout_s, concurrency=concurrency)
        self._binary = self.encoding is Encoding.oip_binary
        if self._binary:  # per payload: its header's length travels in a request header
            self._headers = [
                {
                    "Content-Type": BINARY_CONTENT_TYPE,
                    INFER_HEADER_LENGTH: str(self._binary_body(i).header_length),
                }
                for i in range(len(payloads))
            ]

    def _binary_body(self, index: int) -> BinaryBody:
        body = self.payloads.body(self.encoding, index)
        assert isinstance(body, BinaryBody)
        return body

    def _transfer(self, index: int) -> tuple[bytes, int]:
        body = self.payloads.body(self.encoding, index)
        if self._binary:
            data, head = self._http.post_with_header(
                self._path, body, self._headers[index], INFER_HEADER_LENGTH
            )
            n = int(head) if head is not None and head.strip().isdigit() else -1
            answer = BinaryBody(data, n) if 0 <= n <= len(data) else data  # else: decode error
            return answer, len(data)
        data = self._http.post(self._path, body, JSON_HEADERS)
        return data, len(data)

    def _decode(self, answer: bytes) -> np.ndarray:
        if self._binary:
            length = answer.header_length if isinstance(answer, BinaryBody) else None
            flat = decode_oip_binary(answer, length, self.payloads.output_name).ravel()
        elif self.encoding is Encoding.oip:
            flat = decode_oip_json(answer, self.payloads.output_name).ravel()
        else:
            flat = decode_predictions_json(answer, self.payloads.output_name)
        return self._logits_from_flat(flat)

    def close(self) -> None:
        self._http.close()
