"""Operational friction tables: one per group of friction measurements."""

from __future__ import annotations

from servecmp.report.data import RunData
from servecmp.report.format import FRICTION_LABEL, friction_unit
from servecmp.report.notes import note_ref
from servecmp.report.servers import server_label, servers
from servecmp.report.table import Table
from servecmp.results.friction import FRICTION_METRICS, FrictionMetric, FrictionRecord
from servecmp.results.metrics import Better


def friction_value(rec: FrictionRecord, run: RunData | None = None) -> str:
    if not rec.available:
        return note_ref(run, rec.reason) if run is not None else f"unavailable: {rec.reason or 'no reason recorded'}"
    if rec.value is None:
        return "—"
    unit = rec.definition.unit
    if unit == "bytes":
        return f"{rec.value / 2**20:.1f}"
    if unit == "yes/no":
        return "yes" if rec.value else "no"
    if float(rec.value).is_integer():
        return str(int(rec.value))
    return f"{rec.value:.3f}"


def _friction_winner(d: FrictionMetric, recs: list[FrictionRecord | None], names: list[str]) -> str:
    """The best of N one-off measurements ("tie" when several share the best value)."""
    if d.better is Better.neither:
        return "(no direction)"
    have = [(n, r.value) for n, r in zip(names, recs, strict=True)
            if r is not None and r.available and r.value is not None]
    if len(have) < 2:
        return "—"
    pick = min if d.better is Better.lower else max
    best = pick(v for _, v in have)
    winners = [n for n, v in have if v == best]
    return "tie" if len(winners) > 1 else server_label(winners[0])


def friction_tables(run: RunData) -> dict[str, Table]:
    latest: dict[tuple[str, str, str], FrictionRecord] = {}
    for r in run.friction:
        if r.metric in FRICTION_METRICS:
            latest[(r.metric, r.placement, r.server)] = r
    rows = sorted({(m, pl) for m, pl, _ in latest}, key=lambda k: (list(FRICTION_METRICS).index(k[0]), k[1]))
    names = servers(run)
    groups: dict[str, Table] = {}
    for metric, placement in rows:
        d = FRICTION_METRICS[metric]
        t = groups.setdefault(
            d.group,
            Table(["measurement", "unit", "better", *(server_label(x) for x in names), "winner"], []),
        )
        label = FRICTION_LABEL.get(metric, metric) + ("" if placement == "local" else f" ({placement})")
        recs = [latest.get((metric, placement, x)) for x in names]
        vals = [friction_value(r, run) if r is not None else "not measured" for r in recs]
        cls = ["unavail" if (r is None or not r.available) else "" for r in recs]
        winner = _friction_winner(d, recs, names)
        t.add([label, friction_unit(metric), d.better.value, *vals, winner], ["", "", "", *cls, "win" if winner not in ("", "—", "tie", "(no direction)") else ""])
    return groups


def friction_value_of(run: RunData, server: str, metric: str) -> float | None:
    v = None
    for r in run.friction:
        if r.server == server and r.metric == metric and r.available and r.value is not None:
            v = r.value
    return v
