"""The client contract every target implements, and ``call()``: one measured, checked request.

``TargetClient.send(index)`` sends the pre-encoded payload ``index`` and returns the decoded
logits ``[B, classes]`` or raises :class:`TransportError`. ``call()`` wraps one send: it measures
the latency (from the scheduled time in open loop), checks the logits against the expected ones
(a wrong answer is counted apart from transport errors) and fires a Locust-style request event.
"""

from __future__ import annotations

import time
from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.payloads import PayloadSet


class Outcome(StrEnum):
    ok = "ok"
    transport_error = "transport_error"
    wrong_answer = "wrong_answer"


class TransportError(Exception):
    """The request did not produce a decodable answer.

    ``kind`` is one of ``connect``, ``timeout``, ``http_4xx``, ``http_5xx``, ``grpc_<CODE>``
    (e.g. ``grpc_UNAVAILABLE``), ``decode``, ``inprocess``, ``client`` (an unexpected
    exception inside the client: a bug, reported rather than hidden).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class WrongAnswer(Exception):
    """The server answered, but the logits differ from the expected ones beyond ``atol``."""

    def __init__(self, message: str, max_abs_diff: float) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


class TargetClient(ABC):  # noqa: B024 - a client implements _exchange or _transfer + _decode
    """One connection (pool / channel / loaded model) to one target.

    Subclasses implement :meth:`_exchange`; clients are safe to share between greenlets of one
    process, but the load engine normally gives each user its own.
    """

    #: protocols this class speaks (a client serves every server whose adapter lists it for the
    #: protocol: a new server speaking an existing protocol reuses the client)
    serves: tuple[Protocol, ...] = ()

    def __init__(
        self, target: Target, address: str, payloads: PayloadSet, timeout_s: float
    ) -> None:
        if self.serves and target.protocol not in self.serves:
            raise ValueError(f"{type(self).__name__} cannot serve target {target.name}")
        self.target = target
        self.address = address
        self.payloads = payloads
        self.timeout_s = float(timeout_s)
        self.encoding: Encoding = target.effective_encoding
        self.model_name = payloads.model

    def send(self, index: int) -> np.ndarray:
        """Send payload ``index``; the logits ``[B, classes]`` or :class:`TransportError`."""
        return self._exchange(index)[0]

    def _exchange(self, index: int) -> tuple[np.ndarray, int]:
        """Send payload ``index``; return (logits ``[B, classes]``, response length in bytes)."""
        answer, length = self._transfer(index)
        return self._decode(answer), length

    # The timed part of a request is ``_transfer`` only (send, wait, receive the answer's bytes),
    # as for ``wrk``; turning the answer into logits (``_decode``, e.g. JSON parsing) and checking
    # them happen after the clock stopped. A client overrides either ``_exchange`` (all timed) or
    # ``_transfer`` + ``_decode``.
    def _transfer(self, index: int) -> tuple[Any, int]:
        """Send payload ``index``; return (the undecoded answer, response length in bytes)."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither _exchange nor _transfer"
        )

    def _decode(self, answer: Any) -> np.ndarray:
        """The logits ``[B, classes]`` of what ``_transfer`` returned (TransportError("decode"))."""
        return np.asarray(answer)

    @property
    def _split(self) -> bool:
        return type(self)._transfer is not TargetClient._transfer

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections / channels / models."""

    def __enter__(self) -> TargetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # helper for subclasses
    def _logits_from_flat(self, flat: np.ndarray) -> np.ndarray:
        b, k = self.payloads.batch_size, self.payloads.num_classes
        if flat.size != b * k:
            raise TransportError(
                "decode", f"expected {b}x{k} logits, got {flat.size} values {tuple(flat.shape)}"
            )
        return flat.reshape(b, k)


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"http://127.0.0.1:8080"`` -> (host, port)."""
    addr = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, default_port
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class CallResult:
    outcome: Outcome
    response_time_ms: float  # from scheduled_at (open loop) or send start, to answer received
    late_ms: float  # how late the send started versus scheduled_at (0 when not scheduled)
    response_length: int
    exception: Exception | None
    error_kind: str | None  # TransportError.kind, "wrong_answer" or None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.ok


def check_logits(payloads: PayloadSet, index: int, logits: np.ndarray) -> WrongAnswer | None:
    expected = payloads.expected[index]
    if logits.shape != expected.shape:
        return WrongAnswer(f"logits shape {logits.shape} != expected {expected.shape}", np.inf)
    diff = (
        float(np.abs(np.subtract(logits, expected, dtype=np.float32)).max())
        if expected.size
        else 0.0
    )
    if not np.isfinite(diff) or diff > payloads.atol:
        return WrongAnswer(
            f"payload {index}: max |logit - expected| = {diff:.3g} > atol {payloads.atol:g}", diff
        )
    return None


def execute(client: TargetClient, index: int, *, scheduled_at: float | None = None) -> CallResult:
    """One request, measured and checked; never raises for server or network problems."""
    index = client.payloads.index(index)
    start = time.perf_counter()
    t0 = start if scheduled_at is None else scheduled_at
    late_ms = 0.0 if scheduled_at is None else max(0.0, (start - scheduled_at) * 1000.0)
    exc: Exception | None = None
    length = 0
    split = client._split
    try:
        if split:
            answer, length = client._transfer(index)
        else:
            logits, length = client._exchange(index)
    except TransportError as err:
        elapsed = (time.perf_counter() - t0) * 1000.0
        return CallResult(Outcome.transport_error, elapsed, late_ms, 0, err, err.kind)
    except Exception as err:  # a client bug must not kill the load loop; it is reported as such
        elapsed = (time.perf_counter() - t0) * 1000.0
        wrapped = TransportError("client", f"{type(err).__name__}: {err}")
        return CallResult(Outcome.transport_error, elapsed, late_ms, 0, wrapped, wrapped.kind)
    elapsed = (time.perf_counter() - t0) * 1000.0  # the clock stops when the answer is in
    if split:
        # A deterministic server answers an input with the same bytes every time: bytes equal to
        # an answer already decoded and checked for this input are that same correct answer.
        verified: dict[int, bytes] = client.__dict__.setdefault("_verified", {})
        if isinstance(answer, bytes) and verified.get(index) == answer:
            return CallResult(Outcome.ok, elapsed, late_ms, length, None, None)
        try:
            logits = client._decode(answer)
        except TransportError as err:
            return CallResult(Outcome.transport_error, elapsed, late_ms, length, err, err.kind)
        except Exception as err:
            wrapped = TransportError("client", f"{type(err).__name__}: {err}")
            return CallResult(
                Outcome.transport_error, elapsed, late_ms, length, wrapped, wrapped.kind
            )
    exc = check_logits(client.payloads, index, logits)
    if exc is not None:
        return CallResult(Outcome.wrong_answer, elapsed, late_ms, length, exc, "wrong_answer")
    if split and isinstance(answer, bytes):
        verified[index] = answer
    return CallResult(Outcome.ok, elapsed, late_ms, length, None, None)


FireFn = Callable[..., Any]


def fire_result(client: TargetClient, result: CallResult, fire: FireFn) -> None:
    """Report ``result`` with the signature of ``locust.events.request.fire``."""
    t = client.target
    static = client.__dict__.get("_fire_static")
    if static is None:  # per client, once: the hot path only adds the per-request fields
        static = client.__dict__["_fire_static"] = {
            "server": t.server,
            "protocol": t.protocol.value,
            "encoding": t.effective_encoding.value,
        }
    fire(
        request_type=static["protocol"],
        name=t.name,
        response_time=result.response_time_ms,
        response_length=result.response_length,
        exception=result.exception,
        context={
            "outcome": result.outcome.value,
            "late_ms": result.late_ms,
            "error_kind": result.error_kind,
            **static,
        },
    )


def call(
    client: TargetClient,
    index: int,
    *,
    scheduled_at: float | None = None,
    fire: FireFn | None = None,
) -> Outcome:
    """Send payload ``index`` through ``client``, check the answer, report it via ``fire``.

    ``scheduled_at`` is a ``time.perf_counter()`` instant (open loop): latency is measured from
    it, so a late send counts against the target's latency (no coordinated omission), and
    ``late_ms`` says how late the send started.
    """
    result = execute(client, index, scheduled_at=scheduled_at)
    if fire is not None:
        fire_result(client, result, fire)
    return result.outcome


def make_client(
    target: Target, address: str, payloads: PayloadSet, timeout_s: float, **options: Any
) -> TargetClient:
    """The client for ``target``. ``address``: ``host:port`` for servers; for in-process
    baselines the model artifact path (TorchScript file / SavedModel dir). ``options`` go to the
    client class (e.g. ``intra_op_threads`` for in-process). The class is the one the target's
    server adapter lists for the protocol (servecmp/servers/<name>/, ``ProtocolSpec.client``)."""
    from servecmp.servers import registry

    return registry.get(target.server).make_client(target, address, payloads, timeout_s, **options)
