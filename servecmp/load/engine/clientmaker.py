"""How load processes make their TargetClients: a custom ``client_factory`` or the default
(a ``PayloadSet`` loaded from ``payloads_path`` or built from the model registry, then
``clients.make_client``). Used by the engine's step process and by the locustfiles."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from servecmp.experiment import Payload, Target
from servecmp.load.engine.spec import StepSpec


def load_payloads(
    target: Target, *, model: str, payload: Payload, seed: int, payloads_path: str | None
) -> Any:
    from servecmp.load.payloads import PayloadSet

    if payloads_path:
        payloads = PayloadSet.load(payloads_path)
    else:
        from servecmp.models.registry import get_model

        payloads = PayloadSet.build(
            get_model(model), seed, payload.batch_size, payload.distinct_inputs, atol=payload.atol
        )
    payloads.prepare([target.effective_encoding])  # encode before the hot loop
    return payloads


def make_client_maker(
    target: Target,
    address: str | None,
    *,
    model: str,
    payload: Payload,
    seed: int,
    payloads_path: str | None,
    timeout_s: float,
    client_options: Mapping[str, Any] | None = None,
) -> Callable[[], Any]:
    """A zero-argument function returning a new TargetClient (one per user / in-flight slot).

    It carries ``n_inputs`` (the number of distinct payloads)."""
    from servecmp.load.clients.base import make_client

    payloads = load_payloads(
        target, model=model, payload=payload, seed=seed, payloads_path=payloads_path
    )
    options = dict(client_options or {})

    def new_client() -> Any:
        return make_client(target, address or "", payloads, timeout_s, **options)

    new_client.n_inputs = len(payloads)  # type: ignore[attr-defined]
    return new_client


def resolve(path: str) -> Callable[..., Callable[[], Any]]:
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"client_factory {path!r}: expected 'module:function'")
    return getattr(importlib.import_module(module), attr)


def client_maker(spec: StepSpec) -> Callable[[], Any]:
    """The step's client maker: ``spec.client_factory(spec)`` if set, else the default."""
    if spec.client_factory:
        return resolve(spec.client_factory)(spec)
    return make_client_maker(
        spec.target,
        spec.address,
        model=spec.model,
        payload=spec.payload,
        seed=spec.seed,
        payloads_path=spec.payloads_path,
        timeout_s=spec.load.request_timeout_s,
        client_options=spec.client_options,
    )
