"""Every server servecmp knows, in report order. Other modules iterate over this, never name one.

A server's package exposes ``ADAPTER`` (a ``ServerAdapter``); importing it must stay cheap (no
torch, tensorflow or grpc stubs at import time).
"""

from __future__ import annotations

import importlib
from functools import cache

from servecmp.servers.base import ServerAdapter

# name -> module holding ADAPTER. Servers first, then the in-process baselines.
MODULES: dict[str, str] = {
    "torchserve": "servecmp.servers.torchserve",
    "tfserving": "servecmp.servers.tfserving",
    "kserve": "servecmp.servers.kserve",
    "triton": "servecmp.servers.triton",
    "rayserve": "servecmp.servers.rayserve",
    "pytorch": "servecmp.servers.inprocess:PYTORCH",
    "tensorflow": "servecmp.servers.inprocess:TENSORFLOW",
}


@cache
def get(name: str) -> ServerAdapter:
    try:
        ref = MODULES[name]
    except KeyError:
        raise KeyError(f"unknown server {name!r}; known: {', '.join(MODULES)}") from None
    module, _, attr = ref.partition(":")
    adapter = getattr(importlib.import_module(module), attr or "ADAPTER")
    assert adapter.name == name, f"{ref} holds {adapter.name!r}, registered as {name!r}"
    return adapter


def names() -> tuple[str, ...]:
    return tuple(MODULES)


def adapters() -> tuple[ServerAdapter, ...]:
    return tuple(get(n) for n in MODULES)


def servers() -> tuple[ServerAdapter, ...]:
    """Real model servers (not the in-process baselines)."""
    return tuple(a for a in adapters() if not a.is_inprocess)
