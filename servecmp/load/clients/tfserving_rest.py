"""TensorFlow Serving predict API over REST: ``POST /v1/models/<model>:predict``.

``json`` sends ``{"instances": [B,C,H,W] nested list}`` (the same bytes as TorchServe JSON);
``b64`` sends ``{"signature_name": "serving_b64", "instances": [{"input": {"b64": ...}}, ...]}``,
one base64 float32 ``[C,H,W]`` buffer per batch item, for a SavedModel that exports that string
signature. Both read ``{"predictions": [[...], ...]}``. A model with several (or integer) inputs
sends ``json`` as row objects, ``{"instances": [{"input_ids": [...], "attention_mask": [...]}]}``:
each object's keys must equal the signature's input names and int64 values must be JSON
integers (tensorflow/serving 2.20.0 util/json_tensor.cc FillTensorMapFromInstancesList,
AddValueToTensor); the card's names are the signature's (models/port.py keeps them).
"""

from __future__ import annotations

import numpy as np

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients._http import HttpConnection
from servecmp.load.clients.base import TargetClient
from servecmp.load.clients.torchserve_rest import JSON_HEADERS, decode_predictions_json
from servecmp.load.payloads import PayloadSet


class TFServingRestClient(TargetClient):
    serves = (Protocol.rest,)

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
        if self.encoding not in (Encoding.json, Encoding.b64):
            raise ValueError(f"TF Serving REST does not take encoding {self.encoding.value}")
        payloads.prepare([self.encoding])
        self._path = f"/v1/models/{self.model_name}:predict"
        self._http = HttpConnection(address, timeout_s, concurrency=concurrency)

    def _transfer(self, index: int) -> tuple[bytes, int]:
        data = self._http.post(self._path, self.payloads.body(self.encoding, index), JSON_HEADERS)
        return data, len(data)

    def _decode(self, answer: bytes) -> np.ndarray:
        return self._logits_from_flat(decode_predictions_json(answer, self.payloads.output_name))

    def close(self) -> None:
        self._http.close()
