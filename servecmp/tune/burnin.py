"""A short, bounded warm load on a freshly started server before a confirmation measurement.

A server's first seconds of traffic are slower than its steady state (lazy initialisation, JIT,
allocator and cache warm-up), and the step engine's own warm-up is short: confirmation rounds
burn each server in first, so they compare configurations in the state a full ``servecmp run``
measures them in, not their start-up. Bounded in time and in requests; loopback only (the
address is the local server's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from servecmp.load.clients.base import TargetClient, execute

BURN_IN_S = 8.0
BURN_IN_MAX_REQUESTS = 5_000


@dataclass(frozen=True)
class BurnIn:
    seconds: float
    requests: int
    failures: int


def level_concurrency(level: str | None) -> int:
    """Closed-loop level "concurrency=N" -> N; anything else (a rate) -> 1."""
    if level and level.startswith("concurrency="):
        return max(1, int(float(level.split("=", 1)[1])))
    return 1


def burn_in(
    make: Callable[[], TargetClient],
    n_payloads: int,
    concurrency: int,
    seconds: float = BURN_IN_S,
    max_requests: int = BURN_IN_MAX_REQUESTS,
) -> BurnIn:
    """``concurrency`` closed-loop senders for ``seconds`` or ``max_requests`` requests in all,
    whichever ends first; answers are checked (a failure is counted, not raised)."""
    t0 = time.monotonic()
    deadline = t0 + seconds
    lock = threading.Lock()
    sent = [0, 0]  # requests, failures

    def sender() -> None:
        with make() as client:
            while time.monotonic() < deadline:
                with lock:
                    if sent[0] >= max_requests:
                        return
                    i = sent[0]
                    sent[0] += 1
                ok = execute(client, i % n_payloads).ok
                if not ok:
                    with lock:
                        sent[1] += 1

    threads = [
        threading.Thread(target=sender, name=f"burn-in-{k}", daemon=True)
        for k in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60.0)  # a request in flight at the deadline ends by its own timeout
    return BurnIn(round(time.monotonic() - t0, 2), sent[0], sent[1])
