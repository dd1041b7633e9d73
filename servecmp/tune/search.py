"""The search, per server, bounded by its share of the time budget.

``coordinate`` (default): start at the experiment's own settings (the defaults); for one knob at
a time try each value with the others fixed at the current best, move when a value beats the
current best by more than ``MIN_GAIN``; repeat passes until one changes nothing. A candidate that
falls clearly behind the incumbent at a load level stops early (measure.py). Then the top
candidates and the defaults are re-measured in interleaved, counterbalanced rounds (A B C, C B A;
an even number of rounds when more than one, so A B B A ...), each with the server started as
``servecmp run`` starts it and burned in with a short bounded warm load before the measured level
(measure.py), and the winner is the best mean over those rounds only (the screening number of the
winner is biased upwards: it was picked for being high). The winner's per-round throughput gives
the rerun interval the report states (report.py ``rerun_interval``).

``grid``: every configuration once, no early stop (the reference the search is checked against).

Every measurement goes through :meth:`Search.measure`, which returns the stored record when the
same (server, configuration, stage, round) was already measured: after a crash the search replays
its decisions from the store (they depend only on the stored results and durations) and measures
only what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from servecmp.experiment import Experiment
from servecmp.servers.base import SearchSpace
from servecmp.tune.space import (
    BATCHING_SUB,
    Candidate,
    candidate,
    defaults_candidate,
    field_value,
    grid,
)
from servecmp.tune.store import Measurement, Stage, TuneStore

MIN_GAIN = 0.03  # a move needs > 3 % more throughput under the SLO (screening noise is larger)
TIE = 0.03  # within 3 %: the one using less CPU, then less memory, wins (issue 13's tie rule)
MAX_PASSES = 3
TOP_K = 3


class Measurer(Protocol):
    def measure(
        self,
        cand: Candidate,
        stage: Stage,
        rnd: int,
        incumbent: Measurement | None = None,
        level: str | None = None,
    ) -> Measurement: ...


def planned_measurements(space: SearchSpace) -> int:
    """One coordinate-descent pass plus a confirmation of 2 configurations x 2 rounds, all at
    one load level each."""
    return 1 + sum(len(k.values) - 1 for k in space.knobs) + 2 * 2


class OutOfBudget(Exception):
    pass


@dataclass
class Budget:
    """Seconds of measurement, counted from the stored durations (so a replay counts the same)."""

    total_s: float
    spent_s: float = 0.0

    @property
    def left_s(self) -> float:
        return self.total_s - self.spent_s


@dataclass
class ServerOutcome:
    server: str
    defaults: Candidate
    best: Candidate | None
    screened: list[Measurement] = field(default_factory=list)
    confirmed: dict[str, list[Measurement]] = field(default_factory=dict)  # config id -> rounds
    stopped: str = ""  # why the search ended
    unavailable: str | None = None
    measured: int = 0  # new measurements this invocation
    reused: int = 0  # measurements taken from the store (resume)


def better(a: Measurement, b: Measurement | None) -> bool:
    """Is ``a`` a better configuration than ``b`` (throughput under SLO; ties: CPU, then memory)?"""
    if b is None:
        return True
    if a.score_rps > b.score_rps * (1 + TIE) or (a.feasible and not b.feasible):
        return True
    if b.score_rps > a.score_rps * (1 + TIE) or not a.feasible:
        return False
    if (
        a.server_cpu is not None
        and b.server_cpu is not None
        and abs(a.server_cpu - b.server_cpu) > 0.05
    ):
        return a.server_cpu < b.server_cpu
    if a.peak_rss_bytes and b.peak_rss_bytes and a.peak_rss_bytes != b.peak_rss_bytes:
        return a.peak_rss_bytes < b.peak_rss_bytes
    return a.score_rps > b.score_rps


def mean_score(ms: list[Measurement]) -> float:
    return sum(m.score_rps for m in ms) / len(ms) if ms else 0.0


class Search:
    def __init__(
        self,
        exp: Experiment,
        store: TuneStore,
        measurer: Measurer,
        budget: Budget,
        min_measure_s: float,
        log: Callable[[str], None] = print,
    ) -> None:
        self.exp = exp
        self.store = store
        self.measurer = measurer
        self.budget = budget
        self.min_measure_s = min_measure_s
        self.log = log
        records, warnings = store.read()
        for w in warnings:
            log(f"note: {w}")
        self.done: dict[tuple[str, str, str, int], Measurement] = {m.key: m for m in records}
        # (server, screening?) -> durations: a screening measurement runs fewer load levels
        self.durations: dict[tuple[str, bool], list[float]] = {}

    def estimate(self, server: str, screen: bool = False, worst: bool = False) -> float:
        """Expected seconds of the next measurement (mean so far; ``worst``: the longest)."""
        seen = self.durations.get((server, screen)) or self.durations.get((server, not screen))
        if not seen:
            return self.min_measure_s
        return max(seen) if worst else sum(seen) / len(seen)

    def measure(
        self,
        out: ServerOutcome,
        cand: Candidate,
        stage: Stage,
        rnd: int = 0,
        incumbent: Measurement | None = None,
        share_end: float | None = None,
        level: str | None = None,
    ) -> Measurement:
        key = (cand.server, cand.id, stage, rnd)
        if key in self.done:
            m = self.done[key]
            out.reused += 1
            self.log(
                f"  reused {stage} r{rnd} {cand.label()}: {m.score_rps:.1f} req/s under SLO (stored)"
            )
        else:
            end = self.budget.total_s if share_end is None else share_end
            screen = stage == "screen" or level is not None  # fewer load levels than the profile
            # the server's share by the mean; the whole budget even in the worst case seen so far
            if (
                self.budget.spent_s + self.estimate(cand.server, screen) > end
                or self.budget.spent_s + self.estimate(cand.server, screen, worst=True)
                > self.budget.total_s
            ):
                raise OutOfBudget
            m = self.measurer.measure(cand, stage, rnd, incumbent, level)
            self.store.append(m)
            self.done[key] = m
            out.measured += 1
            extra = f" ({m.early_stop})" if m.early_stop else ""
            self.log(
                f"  {stage} r{rnd} {cand.label()}: {m.score_rps:.1f} req/s under SLO, "
                f"p99 {m.score_p99_ms if m.score_p99_ms is None else round(m.score_p99_ms, 1)} ms, "
                f"{m.duration_s:.0f} s{extra}"
            )
        self.budget.spent_s += m.duration_s
        self.durations.setdefault((cand.server, stage == "screen" or level is not None), []).append(
            m.duration_s
        )
        return m

    # ---- strategies -------------------------------------------------------------------------
    def run_grid(self, server: str, space: SearchSpace, share_end: float) -> ServerOutcome:
        defaults = defaults_candidate(server, self.exp, space)
        out = ServerOutcome(server, defaults, None)
        cands = grid(server, space)
        if defaults.id not in {c.id for c in cands}:
            cands.insert(0, defaults)
        best: Measurement | None = None
        try:
            for c in cands:
                m = self.measure(out, c, "grid", share_end=share_end)
                if m.unavailable:
                    out.unavailable = m.unavailable
                    return out
                out.screened.append(m)
                if better(m, best):
                    best = m
            out.stopped = f"grid complete: {len(cands)} configurations"
        except OutOfBudget:
            out.stopped = f"budget spent after {len(out.screened)} of {len(cands)} configurations"
        out.best = _cand(server, best) if best else None
        return out

    def run_coordinate(
        self, server: str, space: SearchSpace, share_end: float, rounds: int = 3
    ) -> ServerOutcome:
        defaults = defaults_candidate(server, self.exp, space)
        out = ServerOutcome(server, defaults, None)
        # keep enough for the confirmation: at least 2 configurations x 2 rounds at one load level
        # (re-estimated as durations come in; before any, the minimum one measurement takes)

        def screen_end_now() -> float:
            return share_end - 4 * self.estimate(
                server, screen=True
            )  # confirmation: one level each

        tried: dict[str, Measurement] = {}

        def screen(c: Candidate, inc: Measurement | None) -> Measurement:
            if c.id in tried:
                return tried[c.id]
            # the defaults are always measured (the budget check guaranteed one measurement)
            end = share_end if not tried else screen_end_now()
            m = self.measure(out, c, "screen", incumbent=inc, share_end=end)
            tried[c.id] = m
            out.screened.append(m)
            return m

        try:
            best = screen(defaults, None)
            if best.unavailable:
                out.unavailable = best.unavailable
                return out
            current = defaults.as_dict()
            for p in range(MAX_PASSES):
                moved = False
                for knob in space.knobs:
                    if knob.field in BATCHING_SUB and not current.get(
                        "tuning.batching.enabled", False
                    ):
                        continue
                    for v in knob.values:
                        values = self._filled(server, space, {**current, knob.field: v})
                        c = candidate(server, values)
                        m = screen(c, best)
                        if m.feasible and (
                            not best.feasible or m.score_rps > best.score_rps * (1 + MIN_GAIN)
                        ):
                            best, current, moved = m, values, True
                            self.log(f"  -> {server}: now at {c.label()} ({m.score_rps:.1f} req/s)")
                if not moved:
                    out.stopped = f"coordinate descent converged after {p + 1} pass(es), {len(tried)} configurations"
                    break
            else:
                out.stopped = f"coordinate descent stopped after {MAX_PASSES} passes"
        except OutOfBudget:
            out.stopped = f"screening budget spent after {len(tried)} configurations"
        self._confirm(out, tried, share_end, rounds)
        return out

    def _filled(self, server: str, space: SearchSpace, values: dict[str, Any]) -> dict[str, Any]:
        """Batching switched on: its sub-knobs start at the experiment's shared values."""
        if values.get("tuning.batching.enabled"):
            own = self.exp.for_server(server)
            for k in space.knobs:
                if k.field in BATCHING_SUB and k.field not in values:
                    values = {**values, k.field: field_value(own, k.field)}
        return values

    def _confirm(
        self, out: ServerOutcome, tried: dict[str, Measurement], share_end: float, rounds: int
    ) -> None:
        ranked = sorted(
            (m for m in tried.values() if not m.unavailable), key=lambda m: -m.score_rps
        )
        # Re-measure at the load level where the leader reached its score, the same level for every
        # configuration (paired, and as cheap as a screening look); the whole profile when no
        # configuration met the SLO anywhere.
        level = score_level(ranked[0]) if ranked else None
        est = self.estimate(out.server, screen=level is not None)
        if (
            level is None
            and (out.server, False) not in self.durations
            and (out.server, True) in self.durations
        ):
            est = 2 * self.estimate(out.server, screen=True)
        left = share_end - self.budget.spent_s
        # as many configurations (<= TOP_K, defaults always among them) and rounds (2..rounds) as fit
        k, r = TOP_K, rounds
        while k * r * est > left and r > 2:
            r -= 1
        while k * r * est > left and k > 2:
            k -= 1
        while k * r * est > left and r > 1:
            r -= 1
        if r % 2 and r > 1:  # whole A B / B A pairs, so each position in the order is taken equally
            r = r + 1 if k * (r + 1) * est <= left else r - 1
        top = [m for m in ranked if m.config_id != out.defaults.id][: k - 1]
        chosen = [out.defaults] + [_cand(out.server, m) for m in top]
        if len(chosen) == 1:
            out.best = out.defaults
            out.stopped += "; only the defaults were measured"
            return
        for rnd in range(r):
            order = chosen if rnd % 2 == 0 else chosen[::-1]  # counterbalanced
            for c in order:
                try:
                    m = self.measure(out, c, "confirm", rnd + 1, share_end=share_end, level=level)
                except OutOfBudget:
                    out.stopped += f"; confirmation cut by the budget in round {rnd + 1}"
                    break
                out.confirmed.setdefault(c.id, []).append(m)
        # complete rounds only, so every candidate's mean covers the same rounds (pairs)
        n = min((len(v) for v in out.confirmed.values()), default=0)
        if n == 0 or len(out.confirmed) < len(chosen):
            best = max(ranked, key=lambda m: m.score_rps, default=None)
            out.best = _cand(out.server, best) if best else out.defaults
            out.stopped += "; not confirmed (budget): the best screening result is reported"
            return
        for cid in out.confirmed:
            out.confirmed[cid] = out.confirmed[cid][:n]
        win = max(chosen, key=lambda c: (mean_score(out.confirmed[c.id]),))
        # the tie rule over the confirmation means
        for c in chosen:
            a, b = out.confirmed[c.id], out.confirmed[win.id]
            if c.id != win.id and mean_score(a) >= mean_score(b) * (1 - TIE) and _cheaper(a, b):
                win = c
        out.best = win
        out.stopped += f"; {len(chosen)} configurations re-measured in {n} interleaved round(s)"


def score_level(m: Measurement) -> str | None:
    """The load level (e.g. ``concurrency=4``) where ``m`` reached its score."""
    ok = [lv for lv in m.levels if lv.slo_ok]
    return max(ok, key=lambda lv: lv.throughput_rps).param if ok else None


def _cheaper(a: list[Measurement], b: list[Measurement]) -> bool:
    ca = [m.server_cpu for m in a if m.server_cpu is not None]
    cb = [m.server_cpu for m in b if m.server_cpu is not None]
    if ca and cb and abs(sum(ca) / len(ca) - sum(cb) / len(cb)) > 0.05:
        return sum(ca) / len(ca) < sum(cb) / len(cb)
    ra = [m.peak_rss_bytes for m in a if m.peak_rss_bytes]
    rb = [m.peak_rss_bytes for m in b if m.peak_rss_bytes]
    return bool(ra and rb and sum(ra) / len(ra) < 0.9 * sum(rb) / len(rb))


def _cand(server: str, m: Measurement) -> Candidate:
    return Candidate(server, tuple(sorted(m.config.items())))


def geometric_ratio(pairs: list[tuple[float, float]]) -> float:
    logs = [math.log(b / a) for a, b in pairs if a > 0 and b > 0]
    return math.exp(sum(logs) / len(logs)) if logs else float("nan")


def describe(out: ServerOutcome) -> dict[str, Any]:
    return {
        "server": out.server,
        "best": out.best.as_dict() if out.best else None,
        "best_label": out.best.label() if out.best else None,
        "defaults": out.defaults.as_dict(),
        "stopped": out.stopped,
        "unavailable": out.unavailable,
        "measured": out.measured,
        "reused": out.reused,
    }
