"""Open Inference Protocol v2 over gRPC: ``inference.GRPCInferenceService/ModelInfer``.

Request: each model input (one FP32 ``[B,C,H,W]``, or int64 token ids and a mask) as a tensor
whose little-endian bytes travel in ``raw_input_contents`` (no per-float protobuf encoding, as
TorchServe's ``bytes`` and TF
Serving's ``tensor_content``). A server answers raw inputs with ``raw_output_contents`` (KServe
0.21.0 ``InferRequest.use_binary_outputs``; Triton does the same); typed
``outputs[0].contents.fp32_contents`` are read too. Stubs: ``protos.load("oip")`` (generated with our
grpcio-tools). Under gevent call ``init_gevent_grpc()`` before constructing any client.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients import protos
from servecmp.load.clients._grpc import insecure_channel, transport_error
from servecmp.load.clients.base import TargetClient, TransportError
from servecmp.load.payloads import OIP_DATATYPES, PayloadSet


class OipGrpcClient(TargetClient):
    # Any server whose adapter lists this client for grpc (KServe, Triton, Ray Serve; MLServer and
    # OpenVINO Model Server speak the same protocol): the protocol is checked, not the server.
    serves = ()

    def __init__(
        self, target: Target, address: str, payloads: PayloadSet, timeout_s: float
    ) -> None:
        super().__init__(target, address, payloads, timeout_s)
        if target.protocol is not Protocol.grpc:
            raise ValueError(
                f"{type(self).__name__} speaks grpc, not {target.protocol.value} ({target.name})"
            )
        if self.encoding is not Encoding.oip:
            raise ValueError(f"OIP gRPC does not take encoding {self.encoding.value}")
        pb2, pb2_grpc = protos.load("oip")
        # Requests are built once; the hot loop only serialises them. Every input of the model
        # (token ids and a mask, say) is one tensor, its little-endian bytes in
        # raw_input_contents in the same order.
        self._requests = [
            pb2.ModelInferRequest(
                model_name=self.model_name,
                inputs=[
                    pb2.ModelInferRequest.InferInputTensor(
                        name=name, datatype=OIP_DATATYPES[a.dtype.name], shape=list(a.shape[1:])
                    )
                    for name, a in zip(payloads.names, payloads.all_inputs, strict=True)
                ],
                raw_input_contents=[a[i].tobytes() for a in payloads.all_inputs],
            )
            for i in range(len(payloads))
        ]
        self._channel = insecure_channel(address)
        self._infer = pb2_grpc.GRPCInferenceServiceStub(self._channel).ModelInfer

    def _transfer(self, index: int) -> tuple[Any, int]:
        try:
            reply = self._infer(self._requests[index], timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise transport_error(err) from None
        if reply.raw_output_contents:
            data: bytes = reply.raw_output_contents[0]
            return data, len(data)
        return reply, reply.ByteSize()

    def _decode(self, answer: Any) -> np.ndarray:
        if isinstance(answer, bytes):
            if len(answer) % 4:
                raise TransportError("decode", f"raw output of {len(answer)} bytes is not FP32")
            return self._logits_from_flat(np.frombuffer(answer, dtype="<f4"))
        if not answer.outputs:
            raise TransportError("decode", "ModelInferResponse has no outputs")
        out = answer.outputs[0]
        if out.datatype != "FP32":
            raise TransportError("decode", f"output {out.name!r} is {out.datatype}, not FP32")
        return self._logits_from_flat(np.asarray(out.contents.fp32_contents, dtype=np.float32))

    def close(self) -> None:
        self._channel.close()
