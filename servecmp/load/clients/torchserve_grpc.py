"""TorchServe inference API over gRPC: ``InferenceAPIsService.Predictions``.

Request ``PredictionsRequest(model_name=m, input={"data": little-endian float32 [B,C,H,W]})``;
reply ``prediction`` = raw float32 ``[B, classes]`` bytes (docs/ARCHITECTURE.md). Stubs are
generated from the .proto files in TorchServe's jar (see ``protos``). One channel per
client; under gevent call ``init_gevent_grpc()`` before constructing any client.
"""

from __future__ import annotations

import grpc
import numpy as np

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients import protos
from servecmp.load.clients._grpc import insecure_channel, transport_error
from servecmp.load.clients.base import TargetClient, TransportError
from servecmp.load.payloads import PayloadSet


class TorchServeGrpcClient(TargetClient):
    serves = (Protocol.grpc,)

    def __init__(
        self, target: Target, address: str, payloads: PayloadSet, timeout_s: float
    ) -> None:
        super().__init__(target, address, payloads, timeout_s)
        if self.encoding is not Encoding.bytes:
            raise ValueError(f"TorchServe gRPC does not take encoding {self.encoding.value}")
        pb2, pb2_grpc = protos.load("torchserve")
        payloads.prepare([Encoding.bytes])
        # Requests are built once; the hot loop only serialises them.
        self._requests = [
            pb2.PredictionsRequest(
                model_name=self.model_name, input={"data": payloads.body(Encoding.bytes, i)}
            )
            for i in range(len(payloads))
        ]
        self._channel = insecure_channel(address)
        self._predict = pb2_grpc.InferenceAPIsServiceStub(self._channel).Predictions

    def _transfer(self, index: int) -> tuple[bytes, int]:
        try:
            reply = self._predict(self._requests[index], timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise transport_error(err) from None
        data: bytes = reply.prediction
        return data, len(data)

    def _decode(self, answer: bytes) -> np.ndarray:
        if len(answer) % 4:
            raise TransportError("decode", f"prediction of {len(answer)} bytes is not float32")
        return self._logits_from_flat(np.frombuffer(answer, dtype="<f4"))

    def close(self) -> None:
        self._channel.close()
