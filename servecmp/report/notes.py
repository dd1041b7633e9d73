"""Notes: each reason for missing data is written once; cells point at it."""

from __future__ import annotations

from servecmp.report.cells import targets
from servecmp.report.data import RunData


def unavailable_reasons(run: RunData) -> list[str]:
    """Distinct reasons why a target or a friction measurement is unavailable, in report order."""
    out: list[str] = []
    for t in targets(run):
        if t.unavailable and t.unavailable not in out:
            out.append(t.unavailable)
    for r in run.friction:
        if not r.available:
            why = r.reason or "no reason recorded"
            if why not in out:
                out.append(why)
    return out


def note_ref(run: RunData, reason: str | None) -> str:
    """``unavailable (note N)``: the cell points at the note that gives the reason once."""
    reasons = unavailable_reasons(run)
    why = reason or "no reason recorded"
    return f"unavailable (note {reasons.index(why) + 1})" if why in reasons else "unavailable"
