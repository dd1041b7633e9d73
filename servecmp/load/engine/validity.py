"""The validity rule: was a step a measurement of the *server*? Pure functions over two small
records: :class:`Measured` (what the reported windows hold, built by ``measure.Reported``) and
:class:`Asked` (what the step was asked to do and the limits it is judged by, from its spec).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SERVER_SATURATED_FRACTION = 0.90


@dataclass(frozen=True)
class Sends:
    """Open loop: what the generator did against its schedule in the reported windows."""

    sent: int = 0  # sends started
    late: int = 0  # all late sends
    late_generator: int = 0  # late with a free in-flight slot (the generator's own delay)
    late_backpressure: int = 0  # late because every in-flight slot was busy (the server's queue)
    in_flight_peak: int = 0  # most requests in flight at once


@dataclass(frozen=True)
class Measured:
    """What the reported windows hold."""

    ok: int
    requests: int  # completed, any outcome
    generator_cpu: float  # fraction of one core used by the step process
    server_cpu: float | None = None  # cores used by the server processes (None: not watched)
    seconds: float = 0.0  # wall seconds of the reported windows
    # Little's law (closed loop): completed requests / s and their mean latency, any outcome
    completed_rps: float = 0.0
    latency_mean_all_ms: float | None = None
    send_gap_ms: float | None = None  # mean time from a response to the user's next send
    service_p99_ms: float | None = None  # open loop: from actual send start
    sends: Sends = field(default_factory=Sends)


@dataclass(frozen=True)
class Asked:
    """What the step was asked to do, and the limits it is judged by."""

    mode: str  # "closed_loop" | "open_loop"
    generator_cpu_limit: float = 0.90
    server_cpu_budget: float | None = None  # cores the server was given
    inprocess: bool = False  # the target runs inside the generator process (baseline)
    concurrency: int | None = None  # closed loop: users
    offered_rps: float | None = None  # open loop: the offered schedule
    arrival: str = "poisson"
    max_in_flight: int | None = None
    late_send_tolerance: float = 0.05
    late_threshold_ms: float = 10.0

    @classmethod
    def of(cls, spec: Any) -> Asked:
        """From a :class:`~servecmp.load.engine.spec.StepSpec`."""
        load, open_loop = spec.load, spec.mode == "open_loop"
        return cls(
            mode=spec.mode,
            generator_cpu_limit=load.generator_cpu_limit,
            server_cpu_budget=spec.server_cpu_budget,
            inprocess=spec.target.is_baseline,
            concurrency=None if open_loop else spec.concurrency,
            offered_rps=spec.rate if open_loop else None,
            arrival=load.arrival.value,
            max_in_flight=spec.max_in_flight if open_loop else None,
            late_send_tolerance=load.late_send_tolerance,
            late_threshold_ms=load.late_threshold_ms,
        )


# Little's law for a closed loop of N users: N = throughput x (latency + time between a response
# and the user's next send). That gap is the generator's own work (check the answer, record it,
# schedule the next send): tens of microseconds against milliseconds of latency, so mean latency
# x throughput / N must be 1 within LITTLE_TOLERANCE; the rest absorbs requests straddling a
# window edge (<= N per window). Fewer than LITTLE_MIN_REQUESTS completions: not judged.
LITTLE_TOLERANCE = 0.15
LITTLE_MIN_REQUESTS = 50
# Open loop: sends in the reported windows vs offered rate x time. Poisson arrivals vary by
# sqrt(expected): the tolerance is the larger of 10 % and 3 standard deviations.
SENT_TOLERANCE = 0.10


def sent_tolerance(expected: float, arrival: str) -> float:
    if expected <= 0:
        return float("inf")
    noise = 3.0 / expected**0.5 if arrival == "poisson" else 2.0 / expected
    return max(SENT_TOLERANCE, noise)


def judge_validity(m: Measured, a: Asked) -> tuple[bool, str | None]:
    """Was this a measurement of the *server*? Returns (valid, invalid_reason).

    The step is marked ``valid=false`` when any rule fires (first match is reported):

    R0 no answer: zero ok responses in the reported windows -> no latency/throughput to report.

    R1 generator CPU: ``generator_cpu >= generator_cpu_limit`` (the step process's CPU seconds /
       wall seconds over the reported windows; 1.0 = one full core: the gevent generator cannot
       use more) while the target was NOT shown to be saturated. The target counts as saturated
       only when its processes were watched (``server_pids``) and used
       >= 90% of ``server_cpu_budget`` cores. Unwatched servers (cluster, or no pids given) are
       never assumed saturated: a busy generator then always invalidates the step.
       Not applied to in-process baselines: there the generator process *is* the computation
       being measured, so its full core is the model's compute, not a generator bottleneck.

    R2 generator-late sends (open loop): sends that started more than ``late_threshold_ms``
       after ``max(scheduled time, moment an in-flight slot became free)`` exceed
       ``late_send_tolerance`` of sends. Such lateness is the generator's own scheduling delay
       (event loop busy), not backpressure from a slow server. Late sends caused by all
       in-flight slots being busy are the server's queueing: they stay in the reported latency
       (measured from the scheduled time) and do not invalidate the step.

    R3 late while the server was fast (open loop): all late sends exceed
       ``late_send_tolerance`` of sends while the service-time p99 (from actual send start) was
       within ``late_threshold_ms``: a server answering that fast cannot have caused the
       lateness (it catches R2's blind spot, e.g. the in-flight bound set too low).

    Self-checks (a violation is a measurement bug, not a server property):

    L1 Little's law (closed loop, >= ``LITTLE_MIN_REQUESTS`` completions): with X completed
       requests/s and W their mean latency, ``|X * W / concurrency - 1| <= LITTLE_TOLERANCE``.
       Below: time in each user's cycle is outside the measured latency (e.g. a blocking call
       that keeps the other users from sending: their wait is in no one's latency).

    O1 in flight (open loop): more requests in flight at once than ``max_in_flight``.

    O2 sent vs offered (open loop): the sends in the reported windows differ from
       ``offered_rps * seconds`` by more than :func:`sent_tolerance` — unless every
       in-flight slot was busy (backpressure: the server's queue, which stays in its latency).
    """
    for rule in RULES:
        reason = rule(m, a)
        if reason is not None:
            return False, reason
    return True, None


def no_answer(m: Measured, a: Asked) -> str | None:
    return None if m.ok else f"no successful responses ({m.requests} requests completed)"


def generator_busy(m: Measured, a: Asked) -> str | None:
    saturated = (
        m.server_cpu is not None
        and a.server_cpu_budget is not None
        and m.server_cpu >= SERVER_SATURATED_FRACTION * a.server_cpu_budget
    )
    if m.generator_cpu < a.generator_cpu_limit or saturated or a.inprocess:
        return None
    if m.server_cpu is None:
        why = "server CPU not watched"
    else:
        why = f"server used {m.server_cpu:.2f} of {a.server_cpu_budget} cores"
    return (
        f"generator-bound: load generator used {m.generator_cpu:.0%} of one core "
        f"(limit {a.generator_cpu_limit:.0%}) while the target was not saturated ({why})"
    )


def littles_law(m: Measured, a: Asked) -> str | None:
    if not (
        a.mode == "closed_loop"
        and a.concurrency
        and m.requests >= LITTLE_MIN_REQUESTS
        and m.latency_mean_all_ms is not None
    ):
        return None
    product = m.completed_rps * m.latency_mean_all_ms / 1000.0
    ratio = product / a.concurrency
    if abs(ratio - 1.0) <= LITTLE_TOLERANCE:
        return None
    gap = (
        ""
        if m.send_gap_ms is None
        else f"; mean {m.send_gap_ms:.2f} ms from a response to the next send"
    )
    return (
        f"self-check failed (Little's law): throughput {m.completed_rps:.1f} req/s x mean "
        f"latency {m.latency_mean_all_ms:.2f} ms = {product:.2f} requests in flight, but "
        f"{a.concurrency} users were sending ({ratio:.2f}x, tolerance "
        f"±{LITTLE_TOLERANCE:.0%}){gap}: part of each request's time is not in its latency"
    )


def late_sends(m: Measured, a: Asked) -> str | None:
    if a.mode != "open_loop" or m.sends.sent <= 0:
        return None
    limit = a.late_send_tolerance * m.sends.sent
    if m.sends.late_generator > limit:
        return (
            f"generator-bound: {m.sends.late_generator} of {m.sends.sent} sends started > "
            f"{a.late_threshold_ms:g} ms late with a free in-flight slot "
            f"(tolerance {a.late_send_tolerance:.0%})"
        )
    if (
        m.sends.late > limit
        and m.service_p99_ms is not None
        and m.service_p99_ms <= a.late_threshold_ms
    ):
        return (
            f"generator-bound: {m.sends.late} of {m.sends.sent} sends were late while the server "
            f"answered within {m.service_p99_ms:.1f} ms p99 (<= {a.late_threshold_ms:g} ms)"
        )
    return None


def in_flight(m: Measured, a: Asked) -> str | None:
    if (
        a.mode == "open_loop"
        and a.max_in_flight is not None
        and m.sends.in_flight_peak > a.max_in_flight
    ):
        return (
            f"self-check failed: {m.sends.in_flight_peak} requests in flight at once, above "
            f"max_in_flight {a.max_in_flight}"
        )
    return None


def sent_vs_offered(m: Measured, a: Asked) -> str | None:
    if not (a.mode == "open_loop" and a.offered_rps and m.seconds > 0):
        return None
    expected = a.offered_rps * m.seconds
    tol = sent_tolerance(expected, a.arrival)
    dev = m.sends.sent / expected - 1.0
    if dev > tol or (dev < -tol and m.sends.late_backpressure == 0):
        return (
            f"self-check failed: sent {m.sends.sent / m.seconds:.1f} req/s against "
            f"{a.offered_rps:g} offered ({dev:+.0%}, tolerance ±{tol:.0%}) "
            + ("with a free in-flight slot for every send" if dev < 0 else "(more than scheduled)")
        )
    return None


# in the order of the docstring above: the first that fires is the reason
RULES = (no_answer, generator_busy, littles_law, late_sends, in_flight, sent_vs_offered)
