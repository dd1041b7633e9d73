"""Locust users built on the client layer (thin): all protocol work is in ``clients/``.

- :class:`ClosedLoopUser` — one in-flight request per user, no think time: ``call()`` in a loop.
  The target kind (TorchServe/TF Serving x REST/gRPC, in-process) is chosen by the client the
  ``LoadContext`` makes; closed_loop_user_for() names a subclass so Locust's UI / stats show it.
- :class:`OpenLoopUser` — ONE scheduler per process that sends on a fixed-rate schedule
  (uniform or Poisson arrivals) whatever the server does: latency is measured from each
  request's scheduled time, in-flight requests are bounded by ``max_in_flight`` (a send that
  waits for a slot is late, and that wait is in its latency: no coordinated omission).

Both read a :class:`~servecmp.load.engine.context.LoadContext` from
``environment.servecmp`` (the engine or a locustfile puts it there) and stop by themselves when
its :class:`Budget` (deadline AND request count) runs out.
"""

from __future__ import annotations

import random
import time

import gevent
import locust  # noqa: F401  - first: gevent monkey-patching before anything opens sockets/ssl
from gevent.pool import Pool
from locust import User, constant, task
from locust.exception import StopUser

from servecmp.load.clients.base import TargetClient, call, execute, fire_result
from servecmp.load.engine.context import LoadContext, context_of


def prepare_protocol(ctx: LoadContext) -> None:
    """Protocol set-up needed in this process before the first client exists (gRPC+gevent)."""
    if ctx.protocol == "grpc":
        from servecmp.load.clients._grpc import init_gevent_grpc

        init_gevent_grpc()  # before the first channel exists


class ClosedLoopUser(User):
    """Closed loop: send, wait for the answer, send again (no think time)."""

    abstract = False
    wait_time = constant(0)

    def on_start(self) -> None:
        self.ctx = context_of(self.environment)
        prepare_protocol(self.ctx)
        self.client = self.ctx.new_client()
        self.fire = self.environment.events.request.fire
        self.i = random.Random(self.ctx.seed + id(self)).randrange(max(1, self.ctx.n_inputs))
        self.answered_at: float | None = None

    @task
    def send(self) -> None:
        if not self.ctx.budget.take():
            raise StopUser()
        start = time.perf_counter()
        if self.answered_at is not None:  # the part of the cycle outside the measured latency
            counters = self.ctx.counters
            counters.gap_ms_sum += (start - self.answered_at) * 1000.0
            counters.gaps += 1
        result = execute(self.client, self.i)
        self.answered_at = start + result.response_time_ms / 1000.0
        fire_result(self.client, result, self.fire)
        self.i += 1

    def on_stop(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()


class OpenLoopUser(User):
    """Open loop: one scheduler greenlet; run exactly ONE of these per process."""

    abstract = False
    wait_time = constant(0)
    fixed_count = 1  # Locust: never more than one instance

    def on_start(self) -> None:
        self.ctx = context_of(self.environment)
        prepare_protocol(self.ctx)
        self.fire = self.environment.events.request.fire
        self.free_clients: list[TargetClient] = []
        self.all_clients: list[TargetClient] = []

    def _client(self) -> TargetClient:
        if self.free_clients:
            return self.free_clients.pop()
        c = self.ctx.new_client()
        self.all_clients.append(c)
        return c

    def _send(self, scheduled_at: float, slot_free_at: float | None, index: int) -> None:
        ctx = self.ctx
        start = time.perf_counter()
        counters = ctx.counters
        counters.sent += 1
        if start - scheduled_at > ctx.late_threshold_s:
            counters.late += 1
            ready = scheduled_at if slot_free_at is None else max(scheduled_at, slot_free_at)
            if start - ready > ctx.late_threshold_s:
                counters.late_generator += 1
            else:
                counters.late_backpressure += 1
        client = self._client()
        counters.in_flight += 1
        counters.in_flight_peak = max(counters.in_flight_peak, counters.in_flight)
        try:
            call(client, index, scheduled_at=scheduled_at, fire=self.fire)
        finally:
            counters.in_flight -= 1
            self.free_clients.append(client)

    @task
    def schedule(self) -> None:
        ctx = self.ctx
        rng = random.Random(ctx.seed)
        pool = Pool(ctx.max_in_flight)
        index = 0
        next_at = time.perf_counter()
        try:
            while True:
                rate = ctx.rate.rate
                if rate <= 0:  # paused (e.g. between sweep stages)
                    if ctx.budget.exhausted:
                        break
                    gevent.sleep(0.05)
                    next_at = time.perf_counter()
                    continue
                next_at += rng.expovariate(rate) if ctx.arrival == "poisson" else 1.0 / rate
                delay = next_at - time.perf_counter()
                if delay > 0:
                    gevent.sleep(delay)
                if not ctx.budget.take():
                    # sends the schedule owed but the scheduler never reached (backlog)
                    behind = time.perf_counter() - next_at
                    if behind > 0:
                        ctx.counters.owed_at_end += int(behind * rate) + 1
                    break
                ctx.counters.scheduled += 1
                slot_free_at = None
                if pool.full():
                    pool.wait_available(timeout=ctx.budget.remaining_s())
                    if pool.full():  # budget ran out while waiting for a slot
                        ctx.counters.scheduled -= 1
                        break
                    slot_free_at = time.perf_counter()
                pool.spawn(self._send, next_at, slot_free_at, index)
                index += 1
        finally:
            pool.join(timeout=max(0.0, ctx.budget.remaining_s()) + 0.1)
            pool.kill(block=False)
        raise StopUser()

    def on_stop(self) -> None:
        for c in getattr(self, "all_clients", []):
            c.close()


class InProcessUser(ClosedLoopUser):
    abstract = True


def closed_loop_user_for(server: str, protocol: str) -> type[ClosedLoopUser]:
    """A concrete closed-loop user class for a target kind, named for it (Locust shows the class
    name, e.g. ``TorchserveRestClosedLoop``). Behaviour is identical: the kind lives in the client
    that make_client() picks for the target through the server's adapter."""
    if protocol == "inprocess":
        return type("InProcessClosedLoop", (InProcessUser,), {"abstract": False})
    name = "".join(
        part.capitalize() for part in f"{server}-{protocol}".replace("_", "-").split("-")
    )
    return type(f"{name}ClosedLoop", (ClosedLoopUser,), {"abstract": False})
