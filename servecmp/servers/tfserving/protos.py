"""TF Serving config protos for parsing the generated files with protobuf ``text_format``.

``models.config`` is checked with the official ``tensorflow_serving.config.model_server_config_pb2``
from tensorflow-serving-api. That package ships no Python module for ``monitoring_config.proto``
or ``session_bundle_config.proto`` (BatchingParameters), so those two messages are declared here
field for field (same package, names, numbers and types as tensorflow_serving's .proto files) and
parsed with the same ``text_format`` the server uses: a misspelt key or wrong type fails as it
would in ``tensorflow_model_server``.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeAlias

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

_F: TypeAlias = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, ftype: int, type_name: str = "", repeated: bool = False) -> _F:
    f = _F(
        name=name,
        number=number,
        type=ftype,  # type: ignore[arg-type]  # an int FieldDescriptorProto.Type value
        label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
    )
    if type_name:  # only message fields carry a type name (an empty one counts as set)
        f.type_name = type_name
    return f


@cache
def _messages() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)

    f = descriptor_pb2.FileDescriptorProto(
        name="servecmp/tfserving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    # tensorflow_serving/config/monitoring_config.proto
    prom = f.message_type.add(name="PrometheusConfig")
    prom.field.extend([_field("enable", 1, _F.TYPE_BOOL), _field("path", 2, _F.TYPE_STRING)])
    mon = f.message_type.add(name="MonitoringConfig")
    mon.field.append(
        _field("prometheus_config", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")
    )
    # tensorflow_serving/servables/tensorflow/session_bundle_config.proto: BatchingParameters
    bp = f.message_type.add(name="BatchingParameters")
    i64, s = ".google.protobuf.Int64Value", ".google.protobuf.StringValue"
    bp.field.extend(
        [
            _field("max_batch_size", 1, _F.TYPE_MESSAGE, i64),
            _field("batch_timeout_micros", 2, _F.TYPE_MESSAGE, i64),
            _field("max_enqueued_batches", 3, _F.TYPE_MESSAGE, i64),
            _field("num_batch_threads", 4, _F.TYPE_MESSAGE, i64),
            _field("thread_pool_name", 5, _F.TYPE_MESSAGE, s),
            _field("allowed_batch_sizes", 6, _F.TYPE_INT64, repeated=True),
            _field("pad_variable_length_inputs", 7, _F.TYPE_BOOL),
        ]
    )
    pool.Add(f)
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"tensorflow.serving.{name}")
        )
        for name in ("MonitoringConfig", "BatchingParameters")
    }


def parse_models_config(text: str) -> Any:
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def parse_monitoring_config(text: str) -> Any:
    return text_format.Parse(text, _messages()["MonitoringConfig"]())


def parse_batching_config(text: str) -> Any:
    return text_format.Parse(text, _messages()["BatchingParameters"]())
