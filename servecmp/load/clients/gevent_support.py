"""gRPC under gevent (Locust): patch grpcio once, before any channel exists.

Kept free of top-level grpc imports so that ``import servecmp.load.clients`` stays cheap
and cannot disturb Locust's import order (``import locust`` first: it monkey-patches).
"""

from __future__ import annotations

_ready = False


def init_gevent_grpc() -> None:
    """Make grpcio cooperate with gevent. Call once per process, after gevent's monkey patching
    (``import locust`` does it) and BEFORE creating any gRPC channel or client. Idempotent."""
    global _ready
    if _ready:
        return
    from grpc.experimental import gevent as grpc_gevent

    grpc_gevent.init_gevent()
    _ready = True


def gevent_grpc_ready() -> bool:
    return _ready
