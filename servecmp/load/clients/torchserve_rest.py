"""TorchServe inference API over REST: ``POST /predictions/<model>``.

Encodings (docs/ARCHITECTURE.md): ``json`` sends ``{"instances": [B,C,H,W] nested list}`` and
reads ``{"predictions": [[...]]}``; ``raw`` sends little-endian float32 bytes as
``application/octet-stream`` and reads raw float32 ``[B, classes]`` bytes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients._http import HttpConnection
from servecmp.load.clients.base import TargetClient, TransportError
from servecmp.load.payloads import PayloadSet

JSON_HEADERS = {"Content-Type": "application/json"}
RAW_HEADERS = {"Content-Type": "application/octet-stream"}


def decode_predictions_json(data: bytes, output_name: str = "logits") -> np.ndarray:
    """``{"predictions": [[...], ...]}`` (rows may be ``{output_name: [...]}``) -> float32 array."""
    try:
        doc: Any = json.loads(data)
        preds = doc["predictions"] if isinstance(doc, dict) else doc
        if preds and isinstance(preds[0], dict):
            preds = [row[output_name] for row in preds]
        return np.asarray(preds, dtype=np.float32)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise TransportError("decode", f"bad predictions JSON ({err}): {data[:120]!r}") from None


class TorchServeRestClient(TargetClient):
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
        if self.encoding not in (Encoding.json, Encoding.raw):
            raise ValueError(f"TorchServe REST does not take encoding {self.encoding.value}")
        payloads.prepare([self.encoding])
        self._headers = JSON_HEADERS if self.encoding is Encoding.json else RAW_HEADERS
        self._path = f"/predictions/{self.model_name}"
        self._http = HttpConnection(address, timeout_s, concurrency=concurrency)

    def _transfer(self, index: int) -> tuple[bytes, int]:
        data = self._http.post(self._path, self.payloads.body(self.encoding, index), self._headers)
        return data, len(data)

    def _decode(self, answer: bytes) -> np.ndarray:
        if self.encoding is Encoding.json:
            flat = decode_predictions_json(answer, self.payloads.output_name)
        else:
            if len(answer) % 4:
                raise TransportError("decode", f"raw reply of {len(answer)} bytes is not float32")
            flat = np.frombuffer(answer, dtype="<f4")
        return self._logits_from_flat(flat)

    def close(self) -> None:
        self._http.close()
