"""The tail during a model update and a recovery: per server, the summary of the probe's
per-second timeline (friction records ``update_s`` / ``recovery_s``, ``details.event_timeline``;
servecmp/run/timeline.py): event p99 / steady p99, the longest gap without an ok answer, the
errors, and the steady load it ran under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servecmp.report.data import RunData
from servecmp.report.servers import server_label
from servecmp.report.table import Table

EVENTS = {"update_s": "model update v1 → v2", "recovery_s": "kill and restart"}


@dataclass(frozen=True)
class EventTimeline:
    server: str
    event: str  # friction metric: "update_s" | "recovery_s"
    timeline: dict[str, Any]

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.timeline.get("summary") or {})


def event_timelines(run: RunData) -> dict[str, list[EventTimeline]]:
    """Event kind -> the servers' timelines (the last record per server)."""
    out: dict[str, dict[str, EventTimeline]] = {e: {} for e in EVENTS}
    for r in run.friction:
        tl = r.details.get("event_timeline") if r.metric in EVENTS else None
        if isinstance(tl, dict) and tl.get("windows"):
            out[r.metric][r.server] = EventTimeline(r.server, r.metric, tl)
    return {e: list(v.values()) for e, v in out.items() if v}


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g} ms"


def _no_ratio(summary: dict[str, Any]) -> str:
    """The ratio's cell when there is none: "baseline not steady" (and why) rather than a
    division by a drifting baseline (servecmp/run/timeline.py); else a dash."""
    why = summary.get("p99_ratio_why")
    return str(why) if why else "—"


def timeline_table(items: list[EventTimeline]) -> Table:
    t = Table(
        [
            "server",
            "steady p99",
            "p99 during the event",
            "during ÷ steady",
            "longest gap without an ok answer",
            "errors",
            "event lasted",
            "steady load",
            "span",
        ],
        [],
    )
    for it in items:
        s, tl = it.summary, it.timeline
        load = tl.get("load") or {}
        ratio = s.get("p99_ratio")
        end = s.get("event_end_s")
        t.add(
            [
                server_label(it.server),
                _ms(s.get("steady_p99_ms")),
                _ms(s.get("event_p99_ms")),
                f"{ratio:.3g} x" if ratio is not None else _no_ratio(s),
                f"{s.get('longest_gap_s', 0.0):.3g} s",
                str(s.get("errors", 0)),
                f"{end:.3g} s" if end is not None else f"not over within {tl.get('after_s')} s",
                f"{load.get('rate', '?')} req/s, {load.get('concurrency', 1)} sender(s)",
                f"{-float(tl.get('before_s', 0)):g} s to +{float(tl.get('after_s', 0)):g} s",
            ]
        )
    return t


def added_seconds(run: RunData) -> float:
    """Probe seconds the timelines added to the run (steady time before, and after the event)."""
    return sum(
        float((r.details.get("phases_s") or {}).get("timeline_added", 0.0))
        for r in run.friction
        if r.metric in EVENTS
    )
