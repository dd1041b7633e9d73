"""TensorFlow Serving over gRPC: ``tensorflow.serving.PredictionService/Predict``.

Official stubs (``tensorflow_serving.apis``). ``PredictRequest(model_spec.name=m,
model_spec.signature_name="serving_default", inputs["input"]=TensorProto)``; the TensorProto is
float32 with ``tensor_content`` bytes, built from protobuf fields (no tf ops) once per payload
before the hot loop. A model with several (or integer) inputs sends one TensorProto per input,
each in its own dtype, under the signature's input names. The answer is ``outputs["logits"]``, in ``float_val`` (the server's default:
predict_util.cc AsProtoField, TF Serving 2.20.0) or ``tensor_content`` (with
``--enable_serialization_as_tensor_content``); both decode here. Parsing + decoding a
``float_val`` reply costs ≈6 µs (≈2 µs more than ``tensor_content``;
scripts/bench_tfserving_decode.py) against millisecond exchanges, so it stays in the measured
exchange, as for every client. Importing the official stubs loads
the tensorflow package once (the message definitions live there); in a Locust process import
``locust`` first (gevent patching) and call ``init_gevent_grpc()`` before building clients.
"""

from __future__ import annotations

import grpc
import numpy as np

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients._grpc import insecure_channel, transport_error
from servecmp.load.clients.base import TargetClient, TransportError
from servecmp.load.payloads import PayloadSet, tensor_proto_to_array

SIGNATURE = "serving_default"


class TFServingGrpcClient(TargetClient):
    serves = (Protocol.grpc,)

    def __init__(
        self,
        target: Target,
        address: str,
        payloads: PayloadSet,
        timeout_s: float,
        *,
        signature_name: str = SIGNATURE,
    ) -> None:
        super().__init__(target, address, payloads, timeout_s)
        if self.encoding is not Encoding.tensorproto:
            raise ValueError(f"TF Serving gRPC does not take encoding {self.encoding.value}")
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        payloads.prepare([Encoding.tensorproto])
        self._requests = []
        for i in range(len(payloads)):
            req = predict_pb2.PredictRequest()
            req.model_spec.name = self.model_name
            req.model_spec.signature_name = signature_name
            body = payloads.body(Encoding.tensorproto, i)
            # several inputs: one TensorProto per signature input, keyed by the card's input
            # names, which the port keeps as the serving signature's names (models/port.py)
            protos = body if isinstance(body, dict) else {payloads.input_name: body}
            for name, proto in protos.items():
                req.inputs[name].CopyFrom(proto)
            req.output_filter.append(payloads.output_name)
            self._requests.append(req)
        self._channel = insecure_channel(address)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel).Predict

    def _exchange(self, index: int) -> tuple[np.ndarray, int]:
        try:
            reply = self._predict(self._requests[index], timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise transport_error(err) from None
        name = self.payloads.output_name
        if name not in reply.outputs:
            raise TransportError("decode", f"reply has no output {name!r}: {list(reply.outputs)}")
        try:
            arr = tensor_proto_to_array(reply.outputs[name])
        except ValueError as err:
            raise TransportError("decode", str(err)) from None
        return self._logits_from_flat(arr), reply.ByteSize()

    def close(self) -> None:
        self._channel.close()
