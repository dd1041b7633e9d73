"""Shared state between the Locust users and whoever drives them (engine step or locustfile).

Attached to the Locust ``Environment`` as ``environment.servecmp`` (a :class:`LoadContext`).
Nothing here imports Locust or gevent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ATTR = "servecmp"


class Budget:
    """Every load loop stops by itself: a wall-clock deadline AND a request count."""

    def __init__(
        self,
        max_requests: int,
        max_seconds: float,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.max_requests = int(max_requests)
        self.clock = clock
        self.deadline = clock() + float(max_seconds)
        self.taken = 0

    def take(self) -> bool:
        """Reserve one request; False once the count or the deadline is exhausted."""
        if self.taken >= self.max_requests or self.clock() >= self.deadline:
            return False
        self.taken += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.taken >= self.max_requests or self.clock() >= self.deadline

    @property
    def count_exhausted(self) -> bool:
        return self.taken >= self.max_requests

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - self.clock())


@dataclass
class SendCounters:
    """Load counters (monotonic except the in-flight pair; the recorder diffs them per window)."""

    scheduled: int = 0
    sent: int = 0
    late: int = 0
    late_backpressure: int = 0
    late_generator: int = 0
    owed_at_end: int = 0  # scheduled times already past when the scheduler stopped
    in_flight: int = 0  # open loop: requests sent and not yet answered
    in_flight_peak: int = 0  # most in flight at once (the recorder restarts it per window)
    # closed loop: time from a response to the same user's next send (Little's law diagnostic)
    gap_ms_sum: float = 0.0
    gaps: int = 0

    def snapshot(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class RateControl:
    """The open-loop arrival rate (req/s); a shape may change it while the scheduler runs."""

    rate: float = 0.0


@dataclass
class LoadContext:
    """What users need: how to make a client, the bounds, and open-loop settings."""

    new_client: Callable[[], Any]  # -> TargetClient (one per user / in-flight slot)
    n_inputs: int
    budget: Budget
    late_threshold_s: float = 0.010
    max_in_flight: int = 256
    arrival: str = "poisson"  # "uniform" | "poisson"
    seed: int = 0
    rate: RateControl = field(default_factory=RateControl)
    counters: SendCounters = field(default_factory=SendCounters)
    protocol: str = "rest"
    load: Any = None  # servecmp.experiment.Load (the shapes read their stages from it)
    extra: dict[str, Any] = field(default_factory=dict)


def context_of(environment: Any) -> LoadContext:
    ctx = getattr(environment, ATTR, None)
    if ctx is None:
        raise RuntimeError(
            "no servecmp LoadContext on the Locust environment: run through a servecmp "
            "locustfile (loadtests/locustfiles/) or the engine (servecmp.load.engine)"
        )
    return ctx
