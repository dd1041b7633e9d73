"""gRPC plumbing shared by the gRPC clients (TorchServe, TF Serving, OIP): gevent, channels, errors."""

from __future__ import annotations

import os

import grpc

from servecmp.load.clients.base import TransportError
from servecmp.load.clients.gevent_support import (  # re-exported: public home is the package
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


LB_ENV = "SERVECMP_GRPC_LB"


def channel_target(address: str, lb: str | None = None) -> tuple[str, list[tuple[str, object]]]:
    """The dial target and options. Kubernetes balances gRPC per *connection*, so with several
    replicas behind a headless Service the cluster path sets ``SERVECMP_GRPC_LB=round_robin``:
    dial ``dns:///svc:port`` (every pod IP) and spread calls over them client-side."""
    target = address.split("://", 1)[-1].rstrip("/")
    lb = lb if lb is not None else os.environ.get(LB_ENV, "")
    if lb == "round_robin":
        return f"dns:///{target}", [*CHANNEL_OPTIONS, ("grpc.lb_policy_name", "round_robin")]
    if lb:
        raise ValueError(f"{LB_ENV}={lb!r}: expected 'round_robin' or empty")
    return target, list(CHANNEL_OPTIONS)


def insecure_channel(address: str) -> grpc.Channel:
    target, options = channel_target(address)
    return grpc.insecure_channel(target, options=options)


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
