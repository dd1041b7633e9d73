"""Operational friction tables: one per group of friction measurements."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from servecmp.report.data import RunData
from servecmp.report.format import FRICTION_LABEL, friction_brief, friction_unit
from servecmp.report.notes import note_ref
from servecmp.report.servers import server_label, servers, short_label
from servecmp.report.stats import compare_friction
from servecmp.report.table import Table
from servecmp.results.friction import FRICTION_METRICS, FrictionMetric, FrictionRecord, measurements
from servecmp.results.metrics import Better


@dataclass(frozen=True)
class FrictionSeries:
    """One server's measurements of one metric at one placement."""

    values: dict[int, float]  # measurement round -> value (available records only)
    last: FrictionRecord  # the last record: its reason when none is available

    @property
    def median(self) -> float | None:
        return float(statistics.median(self.values.values())) if self.values else None


def friction_series(
    run: RunData, metric: str, placement: str = "local"
) -> dict[str, FrictionSeries]:
    """Per server, every stored measurement of ``metric``, keyed by its start-up round
    (``FrictionRecord.index``; the interleaved start-ups of one run share round numbers across
    servers). Records without distinct indexes (runs stored before repeats) count in file order."""
    out: dict[str, FrictionSeries] = {}
    for (server, m, pl), rs in measurements(run.friction).items():
        if m != metric or pl != placement:
            continue
        distinct = len({r.index for r in rs}) == len(rs)
        values = {
            (r.index if distinct else k): r.value
            for k, r in enumerate(rs)
            if r.available and r.value is not None
        }
        out[server] = FrictionSeries(values, rs[-1])
    return out


def friction_value(rec: FrictionRecord, run: RunData | None = None) -> str:
    if not rec.available:
        return (
            note_ref(run, rec.reason)
            if run is not None
            else f"unavailable: {rec.reason or 'no reason recorded'}"
        )
    if rec.value is None:
        return "—"
    return _value_text(rec.definition, rec.value)


def _value_text(d: FrictionMetric, value: float) -> str:
    if d.unit == "bytes":
        return f"{value / 2**20:.1f}"
    if d.unit == "yes/no":
        return "yes" if value else "no"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}"


def series_text(run: RunData, d: FrictionMetric, s: FrictionSeries | None) -> str:
    """The median of a server's measurements ("(median of n)" when several), or why none."""
    if s is None:
        return "not measured"
    if s.median is None:
        return friction_value(s.last, run)
    text = _value_text(d, s.median)
    return text if len(s.values) == 1 else f"{text} (median of {len(s.values)})"


def _friction_winner(
    d: FrictionMetric, found: dict[str, FrictionSeries], names: list[str]
) -> tuple[str, str]:
    """The best server when it beats the runner-up under the friction rule
    (:func:`~servecmp.report.stats.compare_friction`), else why not; with its CSS class."""
    if d.better is Better.neither:
        return "(no direction)", ""
    have = [(n, found[n]) for n in names if n in found and found[n].values]
    if len(have) < 2:
        return "—", ""
    have.sort(key=lambda x: x[1].median or 0.0, reverse=d.better is Better.higher)
    (best, sb), (runner, sr) = have[0], have[1]
    v = compare_friction(d, sr.values, sb.values)  # the best (b) vs the runner-up (a)
    assert v is not None
    if v.significant:
        return short_label(best), "win"
    text, _ = friction_brief(v, d.better.value, short_label(runner), short_label(best))
    return text, ""


def friction_tables(run: RunData) -> dict[str, Table]:
    keys = {(r.metric, r.placement) for r in run.friction if r.metric in FRICTION_METRICS}
    rows = sorted(keys, key=lambda k: (list(FRICTION_METRICS).index(k[0]), k[1]))
    names = servers(run)
    groups: dict[str, Table] = {}
    for metric, placement in rows:
        d = FRICTION_METRICS[metric]
        t = groups.setdefault(
            d.group,
            Table(
                ["measurement", "unit", "better", *(server_label(x) for x in names), "winner"], []
            ),
        )
        label = FRICTION_LABEL.get(metric, metric) + (
            "" if placement == "local" else f" ({placement})"
        )
        found = friction_series(run, metric, placement)
        vals = [series_text(run, d, found.get(x)) for x in names]
        cls = ["" if x in found and found[x].values else "unavail" for x in names]
        winner, wcls = _friction_winner(d, found, names)
        t.add(
            [label, friction_unit(metric), d.better.value, *vals, winner], ["", "", "", *cls, wcls]
        )
    return groups


def friction_value_of(run: RunData, server: str, metric: str) -> float | None:
    """The median of a server's available measurements of ``metric``, local ones first (None: none)."""
    for placement in ("local", "kubernetes"):
        s = friction_series(run, metric, placement).get(server)
        if s is not None and s.median is not None:
            return s.median
    return None
