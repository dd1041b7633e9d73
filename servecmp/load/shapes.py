"""Load profiles as Locust ``LoadTestShape`` classes (for the Locust CLI / web UI locustfiles).

Each stage lasts ``load.warmup_s + stability.max_windows * stability.window_s`` — the same time
bound a programmatic engine step has — and the stage sequence comes from
:func:`servecmp.load.engine.spec.plan_steps`, so the UI and the engine run the same profile.
(The engine itself controls users directly and can end a stage early once it is stable.)

- :class:`OpenLoopShape`: one :class:`OpenLoopUser` at ``load.rate`` for one stage.
- :class:`ConcurrencySweepShape`: ``load.concurrency`` closed-loop users, one stage per level.
- :class:`RateSweepShape`: the open-loop scheduler at each of ``load.rates``; after each
  stage's warm-up it records an HDR histogram; the first stage whose p99 breaks
  ``load.slo_p99_ms`` (or that had no ok answers) stops the test; ``outcome`` then holds the
  last passing rate.

``tick()`` returns ``(users, spawn_rate, [user_class])`` or ``None`` (stop). Open-loop shapes
set the scheduler's rate through the ``LoadContext`` on the environment. Shapes accept
``load=`` and ``clock=`` for use without a runner (tests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from locust import LoadTestShape

from servecmp.experiment import Load, LoadProfile
from servecmp.load.engine.context import context_of
from servecmp.load.engine.recorder import new_hist, record_ms, summarize
from servecmp.load.engine.spec import plan_steps
from servecmp.load.users import ClosedLoopUser, OpenLoopUser

log = logging.getLogger(__name__)


def stage_seconds(load: Load) -> float:
    return load.warmup_s + load.stability.max_windows * load.stability.window_s


class _Shape(LoadTestShape):
    abstract = True

    def __init__(self, load: Load | None = None, clock: Callable[[], float] | None = None) -> None:
        self._load = load
        self._clock = clock or time.perf_counter
        self.current_rate: float = 0.0
        super().__init__()
        self.reset_time()  # on our clock (Locust calls reset_time() again at start_shape)

    def reset_time(self) -> None:
        self.start_time = self._clock()

    def get_run_time(self) -> float:
        return self._clock() - self.start_time

    @property
    def load(self) -> Load:
        if self._load is None:
            self._load = context_of(self.runner.environment).load  # type: ignore[union-attr]
        return self._load

    def _set_rate(self, rate: float) -> None:
        self.current_rate = rate
        if self.runner is not None:
            context_of(self.runner.environment).rate.rate = rate


class OpenLoopShape(_Shape):
    abstract = False

    def tick(self) -> tuple[int, float, list[type]] | None:
        if self.get_run_time() >= stage_seconds(self.load):
            self._set_rate(0.0)
            return None
        self._set_rate(float(self.load.rate))
        return (1, 1.0, [OpenLoopUser])


class ConcurrencySweepShape(_Shape):
    abstract = False

    def tick(self) -> tuple[int, float, list[type]] | None:
        levels = [
            int(v)
            for _, v in plan_steps(
                self.load.model_copy(update={"profile": LoadProfile.closed_loop})
            )
        ]
        i = int(self.get_run_time() // stage_seconds(self.load))
        if i >= len(levels):
            return None
        c = levels[i]
        return (c, float(c), [ClosedLoopUser])  # all users within a second: the level is the load


class StageProbe:
    """HDR of ok latencies for the current stage (a ``events.request`` listener)."""

    def __init__(self) -> None:
        self.active = False
        self.reset()

    def reset(self) -> None:
        self.hist = new_hist()
        self.ok = 0
        self.errors = 0
        self.active = False

    def on_request(
        self,
        response_time: float = 0.0,
        exception: Any = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if not self.active:
            return
        outcome = (context or {}).get("outcome") or (
            "ok" if exception is None else "transport_error"
        )
        if outcome == "ok":
            self.ok += 1
            record_ms(self.hist, response_time)
        else:
            self.errors += 1

    def p99_ms(self) -> float | None:
        return summarize(self.hist).p99


@dataclass
class SweepOutcome:
    max_sustained_rps: float | None
    broke_at_rps: float | None
    reason: str


class RateSweepShape(_Shape):
    abstract = False

    def __init__(self, load: Load | None = None, clock: Callable[[], float] | None = None) -> None:
        super().__init__(load, clock)
        self.probe = StageProbe()
        self._listening = False
        self._stage = -1
        self.last_pass: float | None = None
        self.outcome: SweepOutcome | None = None
        self.stage_p99: list[tuple[float, float | None]] = []

    def _listen(self) -> None:
        if not self._listening and self.runner is not None:
            self.runner.environment.events.request.add_listener(self.probe.on_request)
            self._listening = True

    def _judge(self, rate: float) -> bool:
        p99 = self.probe.p99_ms()
        self.stage_p99.append((rate, p99))
        slo = self.load.slo_p99_ms
        total = self.probe.ok + self.probe.errors
        if p99 is None or p99 > slo or (total and self.probe.errors / total > 0.01):
            why = "no ok responses" if p99 is None else f"p99 {p99:.1f} ms vs SLO {slo:g} ms"
            self.outcome = SweepOutcome(self.last_pass, rate, f"{why} at {rate:g} req/s")
            log.info(
                "rate sweep stopped: %s; last passing rate %s", self.outcome.reason, self.last_pass
            )
            return False
        self.last_pass = rate
        return True

    def tick(self) -> tuple[int, float, list[type]] | None:
        if self.outcome is not None:
            return None
        self._listen()
        rates = [
            v
            for _, v in plan_steps(self.load.model_copy(update={"profile": LoadProfile.rate_sweep}))
        ]
        d = stage_seconds(self.load)
        t = self.get_run_time()
        i = int(t // d)
        if i != self._stage:
            if self._stage >= 0 and not self._judge(rates[self._stage]):
                self._set_rate(0.0)
                return None
            self._stage = i
            self.probe.reset()
        if i >= len(rates):
            self.outcome = SweepOutcome(self.last_pass, None, "every rate passed the SLO")
            self._set_rate(0.0)
            return None
        self.probe.active = (t - i * d) >= self.load.warmup_s
        self._set_rate(rates[i])
        return (1, 1.0, [OpenLoopUser])
