"""Cost of decoding a TF Serving gRPC reply in our client: ``float_val`` (the server's default,
predict_util.cc AsProtoField, 2.20.0) vs ``tensor_content`` (--enable_serialization_as_tensor_content).
Prints microseconds per reply (parse + decode) for a few batch sizes; run: .venv/bin/python
scripts/bench_tfserving_decode.py"""

from __future__ import annotations

import timeit

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

from servecmp.load.payloads import tensor_proto_to_array


def _proto(arr: np.ndarray, content: bool) -> tensor_pb2.TensorProto:
    p = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for d in arr.shape:
        p.tensor_shape.dim.add().size = d
    if content:
        p.tensor_content = arr.astype("<f4").tobytes()
    else:
        p.float_val.extend(arr.ravel().tolist())
    return p


def main() -> None:
    for batch in (1, 8, 64):
        arr = np.random.default_rng(0).standard_normal((batch, 10)).astype(np.float32)
        for name, content in (("float_val", False), ("tensor_content", True)):
            reply = predict_pb2.PredictResponse()
            reply.outputs["logits"].CopyFrom(_proto(arr, content))
            blob = reply.SerializeToString()

            def decode(blob: bytes = blob) -> None:
                r = predict_pb2.PredictResponse.FromString(blob)
                tensor_proto_to_array(r.outputs["logits"])

            n = 20_000
            us = min(timeit.repeat(decode, number=n, repeat=3)) / n * 1e6
            print(f"batch {batch:3d}  {name:14s}  {us:6.2f} us per reply (parse + decode)")


if __name__ == "__main__":
    main()
