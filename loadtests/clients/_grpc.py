"""gRPC plumbing shared by the TorchServe and TF Serving clients: gevent, channels, errors."""

from __future__ import annotations

import grpc

from servecmp.loadtests.clients.base import TransportError
from servecmp.loadtests.clients.gevent_support import (  # re-exported: public home is the package
    gevent_grpc_ready,
    init_gevent_grpc,
)

__all__ = ["gevent_grpc_ready", "init_gevent_grpc", "insecure_channel", "transport_error"]

# Large image batches exceed gRPC's 4 MiB default message size.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


def insecure_channel(address: str) -> grpc.Channel:
    target = address.split("://", 1)[-1].rstrip("/")
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)


_CONNECT_HINTS = ("failed to connect", "connection refused", "connect failed", "no route to host")


def transport_error(err: grpc.RpcError) -> TransportError:
    """Map a failed RPC to a TransportError kind: ``connect`` (never reached the server),
    ``timeout`` (deadline exceeded) or ``grpc_<CODE>``."""
    code = err.code() if hasattr(err, "code") else None
    details = (err.details() if hasattr(err, "details") else str(err)) or ""
    name = code.name if code is not None else "UNKNOWN"
    if code is grpc.StatusCode.UNAVAILABLE and any(h in details.lower() for h in _CONNECT_HINTS):
        return TransportError("connect", f"grpc UNAVAILABLE: {details}")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return TransportError("timeout", f"grpc DEADLINE_EXCEEDED: {details}")
    return TransportError(f"grpc_{name}", details[:300])
