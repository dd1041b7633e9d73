"""Recommendations: per SLO and protocol, the best server under it (or why none)."""

from __future__ import annotations

from servecmp.report.cells import Cell, cells, param_label, protocols, targets
from servecmp.report.data import RunData
from servecmp.report.format import NOT_SIGNIFICANT, describe, fmt, fmt_bytes
from servecmp.report.series import resource_series
from servecmp.report.servers import server_label, servers
from servecmp.report.slo import best_under_slo, slo_levels
from servecmp.report.stats import Verdict, difference
from servecmp.report.table import Table
from servecmp.report.tables.friction import friction_value_of
from servecmp.results.metrics import METRICS, Better


def _cost(run: RunData, c: Cell) -> str:
    parts = []
    gw = c.rep.generator if c.rep else None
    if gw is not None and gw.server_cpu_fraction is not None:
        budget = f" of {gw.server_cpu_budget:g}" if gw.server_cpu_budget else ""
        parts.append(f"server CPU {gw.server_cpu_fraction:.2f}{budget} cores")
    server = c.rep.server if c.rep else ""
    rss = friction_value_of(run, server, "peak_rss_bytes")
    if rss is None:
        series, _ = resource_series(run)
        mem = [v for _, v in series[server].mem] if server in series else []
        rss = max(mem) if mem else None
        if rss is not None:
            parts.append(f"memory max {fmt_bytes(rss)} (series)")
    else:
        parts.append(f"peak RSS {fmt_bytes(rss)}")
    return ", ".join(parts) if parts else "resource cost not recorded"


def _ranked_verdict(metric: str, found: list[tuple[str, Cell]]) -> tuple[str, str, str, Verdict]:
    """The best server by ``metric`` and whether it beats the runner-up beyond noise:
    (best, runner-up, css class, verdict of best (b) vs runner-up (a))."""
    m = METRICS[metric]
    ranked = sorted(
        found, key=lambda x: x[1].value(metric) or 0.0, reverse=m.better is not Better.lower
    )
    (s1, c1), (s2, c2) = ranked[0], ranked[1]
    v = difference(metric, c2, c1)
    assert v is not None
    return s1, s2, ("win" if v.significant else "ns"), v


def recommendations(run: RunData) -> Table:
    """Per SLO and protocol: each server's best throughput under it, then the recommendation over
    all N servers: the best one when it beats the runner-up beyond noise (the pairwise rule of
    :func:`difference`), else "not significant"."""
    infos = targets(run)
    cs = cells(run)
    names = servers(run)
    protos = protocols(run)
    table = Table(["p99 SLO", "protocol", *(server_label(x) for x in names), "recommendation"], [])
    for slo in slo_levels(run):
        for proto in protos:
            found = [best_under_slo(run, cs, infos, x, proto, slo) for x in names]
            texts = []
            for c, why in found:
                if c is None:
                    texts.append(why)
                else:
                    texts.append(
                        f"{fmt(c.value('throughput_rps'), 'req/s')} req/s at p99 {fmt(c.value('latency_p99_ms'), 'ms')} ms "
                        f"({c.target}, {param_label(c.param)}; {_cost(run, c)})"
                    )
            meets = [(x, c) for x, (c, _) in zip(names, found, strict=True) if c is not None]
            whys = [why for c, why in found if c is None]
            if not meets:
                missing = [
                    server_label(x)
                    for x, (_, w) in zip(names, found, strict=True)
                    if w.startswith("no data")
                ]
                if not names or len(missing) == len(names) or (missing and len(names) == 2):
                    rec = "no data"
                elif missing:
                    rec = f"none of the measured servers meets this SLO (no data for {', '.join(missing)})"
                else:
                    rec = "neither meets this SLO" if len(names) == 2 else "none meets this SLO"
                cls = "na"
            elif len(meets) == 1:
                winner = server_label(meets[0][0])
                if all(w.startswith("no data") for w in whys):
                    rec, cls = f"no data for comparison: only {winner} measured", "na"
                else:
                    rec, cls = f"{winner} (only one meets it)", "win"
            else:
                best, runner, cls, v = _ranked_verdict("throughput_rps", meets)
                pair = f"{server_label(best)} vs {server_label(runner)} throughput {describe(v)}"
                if not v.significant:
                    rec = f"{NOT_SIGNIFICANT} ({pair}): choose on friction/cost"
                else:
                    rec = f"{server_label(best)} ({pair})"
            table.add([f"≤ {slo:g} ms", proto, *texts, rec], ["", "", *([""] * len(names)), cls])
    return table
