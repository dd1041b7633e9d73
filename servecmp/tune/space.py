"""Search spaces: where each server's comes from, validation, and the candidate configurations.

A server's space is declared next to its fairness mapping and reached through its adapter
(``ServerAdapter.search_space``: ``servecmp/servers/<name>/search.py``; the in-process baselines' in
``servecmp/servers/inprocess.py``). A candidate is one value per knob; the
batching sub-knobs collapse when batching is off (they change nothing then), so no configuration
is measured twice under two names.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from servecmp.experiment import Experiment, LoadProfile, ServerTuning, parse_experiment
from servecmp.servers.base import SearchSpace

BATCHING_SUB = (
    "tuning.batching.max_batch_size",
    "tuning.batching.batch_timeout_ms",
    "tuning.batching.max_enqueued_batches",
)
# Rough cost of bringing a server up and down around one measurement (TorchServe ≈3-8 s here,
# JVM included; the tune run replaces this with the measured figure once it has one).
STARTUP_ALLOWANCE_S = 10.0


class TuneError(ValueError):
    """Bad tune input (unknown knob, empty space, budget too small): the message says what."""


def space_for(server: str) -> SearchSpace:
    """The search space ``server``'s adapter declares (``ServerAdapter.search_space``, next to its
    fairness mapping)."""
    from servecmp.servers import registry

    try:
        adapter = registry.get(server)
    except KeyError:
        raise TuneError(
            f"unknown server {server!r}; known servers: {', '.join(registry.names())}"
        ) from None
    if adapter.search_space is None:
        raise TuneError(
            f"{server}: its adapter declares no search space (ServerAdapter.search_space)"
        )
    return adapter.search_space


def known_fields(server: str) -> tuple[str, ...]:
    return space_for(server).known_fields()


def validate_space(server: str, space: SearchSpace) -> None:
    """Unknown knob -> error naming it and the server's known knobs; empty space (or a knob with no
    values) -> error; a knob listed twice -> error."""
    where = f"{server} search space"
    if not space.knobs:
        raise TuneError(
            f"{where} is empty: declare at least one Knob with values (known knobs: "
            f"{', '.join(known_fields(server))})"
        )
    known = known_fields(server)
    seen: set[str] = set()
    for k in space.knobs:
        if k.field not in known:
            raise TuneError(
                f"{where}: unknown knob {k.field!r}; {server}'s known knobs: {', '.join(known)}"
            )
        if k.field in seen:
            raise TuneError(f"{where}: knob {k.field!r} listed twice")
        seen.add(k.field)
        if not k.values:
            raise TuneError(f"{where}: knob {k.field!r} has no values (the space would be empty)")
        if not k.source.strip():
            raise TuneError(
                f"{where}: knob {k.field!r} cites no source naming it performance-relevant"
            )


def for_experiment(
    server: str, space: SearchSpace, exp: Experiment
) -> tuple[SearchSpace, list[str]]:
    """``space`` without the knobs that would reach a protocol the search does not measure
    (``Knob.protocols``): the search measures one target, and a knob declared for some protocols
    only is held at the experiment's value when ``server`` also has targets on another. Returns
    the space searched and one note per knob held."""
    protocols = sorted({t.protocol.value for t in exp.targets if t.server == server})
    kept, notes = [], []
    for k in space.knobs:
        outside = [p for p in protocols if k.protocols and p not in k.protocols]
        if outside:
            notes.append(
                f"{server}: {k.field} held at the experiment's value: it changes "
                f"{'/'.join(k.protocols)} serving only and the experiment also measures "
                f"{server} over {', '.join(outside)}"
            )
            continue
        kept.append(k)
    return SearchSpace(knobs=tuple(kept), known=space.known_fields()), notes


@dataclass(frozen=True)
class Candidate:
    """One configuration of one server: experiment field -> value."""

    server: str
    values: tuple[tuple[str, Any], ...]  # sorted by field

    @property
    def id(self) -> str:
        blob = json.dumps([self.server, list(self.values)], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def label(self) -> str:
        d = self.as_dict()
        parts = []
        for f, v in d.items():
            short = f.removeprefix("tuning.").removeprefix("batching.")
            if f.startswith("tuning.batching.") and f != "tuning.batching.enabled":
                short = "batch." + short
            parts.append(f"{short}={v}")
        return ", ".join(parts)

    def server_tuning(self, exp: Experiment) -> ServerTuning:
        """This candidate as a ``tuning.per_server`` entry over ``exp``'s shared tuning."""
        d = self.as_dict()
        base = exp.for_server(self.server).tuning
        batching = base.batching.model_dump()
        changed_batching = False
        for f, v in d.items():
            if f.startswith("tuning.batching."):
                batching[f.removeprefix("tuning.batching.")] = v
                changed_batching = True
        fields: dict[str, Any] = {}
        for name in ("workers", "intra_op_threads", "io_threads", "logging"):
            if f"tuning.{name}" in d:
                fields[name] = d[f"tuning.{name}"]
        if changed_batching:
            fields["batching"] = batching
        return ServerTuning.model_validate(fields)


def candidate(server: str, values: dict[str, Any]) -> Candidate:
    v = dict(values)
    if v.get("tuning.batching.enabled") is False:
        for f in BATCHING_SUB:
            v.pop(f, None)
    return Candidate(server, tuple(sorted(v.items())))


def grid(server: str, space: SearchSpace) -> list[Candidate]:
    """Every distinct configuration of the space (batching sub-knobs collapsed when off)."""
    out: dict[str, Candidate] = {}
    fields = [k.field for k in space.knobs]
    for combo in itertools.product(*(k.values for k in space.knobs)):
        c = candidate(server, dict(zip(fields, combo, strict=True)))
        out.setdefault(c.id, c)
    return list(out.values())


def defaults_candidate(server: str, exp: Experiment, space: SearchSpace) -> Candidate:
    """The experiment's own settings for the space's knobs (what ``configuration: defaults`` runs)."""
    own = exp.for_server(server)
    values: dict[str, Any] = {}
    for k in space.knobs:
        values[k.field] = field_value(own, k.field)
    return candidate(server, values)


def field_value(exp: Experiment, field: str) -> Any:
    if field == "tuning.intra_op_threads":
        return exp.intra_op_threads  # derived from the budget when unset
    if field == "tuning.io_threads":
        return exp.io_threads
    obj: Any = exp
    for part in field.split("."):
        obj = getattr(obj, part)
    return obj


def variant(exp: Experiment, cand: Candidate) -> Experiment:
    """``exp`` with ``cand`` as its server's ``tuning.per_server`` entry (validated again)."""
    data = exp.model_dump(mode="json")
    per = dict(data["tuning"].get("per_server") or {})
    per[cand.server] = cand.server_tuning(exp).model_dump(mode="json", exclude_none=True)
    data["tuning"]["per_server"] = per
    data["configuration"] = "tuned"
    return parse_experiment(data, f"{exp.name} with {cand.server} at {cand.label()}")


def measurement_seconds(exp: Experiment, startup_s: float = STARTUP_ALLOWANCE_S) -> float:
    """The shortest one measurement can take: start-up + per load level warm-up and the minimum
    number of windows (an upper bound per level would use ``max_windows``)."""
    load = exp.load
    levels = {
        LoadProfile.closed_loop: len(load.concurrency),
        LoadProfile.open_loop: 1,
        LoadProfile.rate_sweep: 1,  # a sweep stops at its first failing rate: at least one
    }[load.profile]
    per_level = load.warmup_s + load.stability.windows * load.stability.window_s
    return startup_s + levels * per_level


def check_budget(exp: Experiment, budget_s: float, startup_s: float = STARTUP_ALLOWANCE_S) -> float:
    """The minimum for one measurement; raises when ``budget_s`` does not cover it."""
    need = measurement_seconds(exp, startup_s)
    if budget_s < need:
        raise TuneError(
            f"budget {budget_s / 60:.2f} min is too small for one measurement of {exp.name!r}: one "
            f"needs at least {need:.0f} s ({need / 60:.2f} min: start-up ≈{startup_s:.0f} s + "
            f"per load level warm-up {exp.load.warmup_s:g} s + {exp.load.stability.windows} x "
            f"{exp.load.stability.window_s:g} s windows); raise --budget-minutes to at least "
            f"{need / 60:.2f}"
        )
    return need
