"""One client per server x protocol (+ in-process baselines), all behind ``TargetClient``.

Importing this package is cheap: protocol modules (and tensorflow/torch) load only when
``make_client`` builds a client of that kind.
"""

from servecmp.load.clients.base import (
    CallResult,
    Outcome,
    TargetClient,
    TransportError,
    WrongAnswer,
    call,
    execute,
    fire_result,
    make_client,
)
from servecmp.load.clients.gevent_support import gevent_grpc_ready, init_gevent_grpc

__all__ = [
    "CallResult",
    "Outcome",
    "TargetClient",
    "TransportError",
    "WrongAnswer",
    "call",
    "execute",
    "fire_result",
    "gevent_grpc_ready",
    "init_gevent_grpc",
    "make_client",
]
