"""Where the tuned configuration's time goes: the latency breakdown (results/breakdown.py) of
the winner's measurements at the load level where it met the SLO best, the median of each part
over its confirmation rounds (its screening measurement when it had none), for the tune report.

A part no round reports says why, never 0; a round whose self-check failed is named, not used.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from servecmp.results.schema import Breakdown
from servecmp.tune.store import Measurement

PARTS = ("outside", "queue", "pre_post", "compute")
LABEL = {
    "outside": "outside the server",
    "queue": "queue",
    "pre_post": "pre/post-processing",
    "compute": "model compute",
}


@dataclass
class TunedBreakdown:
    server: str
    label: str  # the configuration
    param: str  # the load level
    stage: str  # "confirm" (rounds) or the screening stage
    client_mean_ms: float | None
    parts: dict[str, float | None]  # median over the rounds that report it
    why: dict[str, str] = field(default_factory=dict)  # a part no round reports: why
    rounds: int = 0  # rounds whose breakdown was used
    flagged: list[str] = field(default_factory=list)  # the self-check's failures, per round
    not_reported: str | None = None  # no round had a breakdown: why


def _level_breakdown(m: Measurement) -> tuple[str, Breakdown | None] | None:
    """(load level, its breakdown) where ``m`` met the SLO best; None when no level met it."""
    ok = [lv for lv in m.levels if lv.slo_ok]
    if not ok:
        return None
    best = max(ok, key=lambda lv: lv.throughput_rps)
    return best.param, best.breakdown


def tuned_breakdown(
    ms: Sequence[Measurement], server: str, config_id: str, label: str
) -> TunedBreakdown | None:
    """The winner's breakdown; None when it has no measurement meeting the SLO."""
    mine = [m for m in ms if m.server == server and m.config_id == config_id]
    confirm = [m for m in mine if m.stage == "confirm"]
    use = confirm or mine
    found = [x for x in (_level_breakdown(m) for m in use) if x is not None]
    if not found:
        return None
    param = statistics.mode(p for p, _ in found)  # confirmation rounds share one level
    bds = [b for p, b in found if p == param and b is not None]
    out = TunedBreakdown(
        server=server,
        label=label,
        param=param,
        stage="confirm" if confirm else use[0].stage,
        client_mean_ms=None,
        parts=dict.fromkeys(PARTS),
    )
    if not bds:
        out.not_reported = "its steps carried no breakdown (no metrics page was read)"
        return out
    out.flagged = [b.flagged for b in bds if b.flagged]
    good = [b for b in bds if not b.flagged and not b.not_reported]
    if not good:
        out.not_reported = next((b.not_reported for b in bds if b.not_reported), None) or (
            "the self-check failed in every round"
        )
        return out
    out.rounds = len(good)
    means = [b.client_mean_ms for b in good if b.client_mean_ms is not None]
    out.client_mean_ms = statistics.median(means) if means else None
    for name in PARTS:
        got = [q for b in good for q in b.parts if q.part == name]
        vals = [q.ms for q in got if q.ms is not None]
        out.parts[name] = statistics.median(vals) if vals else None
        if not vals:
            out.why[name] = next((q.why for q in got if q.why), "not reported")
    return out


def lines(items: Sequence[TunedBreakdown]) -> list[str]:
    """Markdown for the tune report's section."""
    out = ["## Where the tuned configuration's time goes", ""]
    if not items:
        return [*out, "No tuned configuration met the SLO: nothing to break down.", ""]
    out += [
        "| server | configuration | load level | client mean | "
        + " | ".join(LABEL[p] for p in PARTS)
        + " | rounds |",
        "|---|---|---|---|" + "---|" * len(PARTS) + "---|",
    ]
    notes: list[str] = []
    for t in items:
        cells = []
        for p in PARTS:
            ms = t.parts[p]
            share = f" ({ms / t.client_mean_ms:.0%})" if ms is not None and t.client_mean_ms else ""
            cells.append(f"{ms:.3g} ms{share}" if ms is not None else t.why.get(p, "—"))
        mean = "—" if t.client_mean_ms is None else f"{t.client_mean_ms:.3g} ms"
        rounds = f"{t.rounds} ({t.stage})" if t.rounds else t.not_reported or "—"
        out.append(
            f"| {t.server} | {t.label} | {t.param} | {mean} | "
            + " | ".join(cells)
            + f" | {rounds} |"
        )
        notes += [f"- {t.server}: self-check failed in a round, not used: {f}" for f in t.flagged]
    out += [
        "",
        "Means from each server's own counters read at the edges of every measured window "
        "(parts add up to the client's mean; quantiles would not), median over the winner's "
        "confirmation rounds at the load level where it met the SLO best.",
        *(["", *notes] if notes else []),
        "",
    ]
    return out
