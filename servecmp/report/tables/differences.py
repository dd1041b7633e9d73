"""Differences between targets: every compared pair at every load, b vs a with its interval."""

from __future__ import annotations

from servecmp.report.cells import TargetInfo, cells, param_label, params, targets
from servecmp.report.data import RunData
from servecmp.report.format import METRIC_LABEL, describe, fmt, verdict_outcome
from servecmp.report.servers import baseline_of
from servecmp.report.stats import difference
from servecmp.report.table import Table
from servecmp.results.metrics import METRICS

DIFF_METRICS = ("throughput_rps", "latency_p50_ms", "latency_p99_ms")


def compared_pairs(run: RunData) -> list[tuple[TargetInfo, TargetInfo]]:
    """The pairs a reader decides between: same protocol across servers, protocols and encodings
    within a server, each server target against its framework's in-process baseline."""
    infos = [t for t in targets(run) if not t.unavailable]
    by_name = {t.name: t for t in infos}
    pairs: list[tuple[TargetInfo, TargetInfo]] = []
    servers = [t for t in infos if not t.baseline]
    for i, a in enumerate(servers):
        for b in servers[i + 1 :]:
            if a.server == b.server or (
                a.protocol == b.protocol and not a.native_extra and not b.native_extra
            ):
                pairs.append((a, b))
    for a in servers:
        base = by_name.get(baseline_of(a.server) or "")
        if base is not None:
            pairs.append((base, a))
    return pairs


def differences(run: RunData) -> Table:
    """Every compared pair at every load: b vs a with its interval (paired over rounds)."""
    cs = cells(run)
    t = Table(["load", "a", "b", "metric", "unit", "a", "b", "b vs a", "verdict"], [])
    for p in params(run):
        for a, b in compared_pairs(run):
            ca, cb = cs.get((a.name, p)), cs.get((b.name, p))
            for metric in DIFF_METRICS:
                m = METRICS[metric]
                va = (
                    fmt(ca.value(metric), m.unit)
                    if ca and ca.rep
                    else (ca.invalid_reason if ca else "not measured")
                )
                vb = (
                    fmt(cb.value(metric), m.unit)
                    if cb and cb.rep
                    else (cb.invalid_reason if cb else "not measured")
                )
                v = difference(metric, ca, cb) if ca and cb and ca.rep and cb.rep else None
                dtxt = describe(v) if v is not None else "—"
                verdict, cls = verdict_outcome(v, a.name, b.name)
                t.add(
                    [
                        param_label(p),
                        a.label,
                        b.label,
                        METRIC_LABEL[metric],
                        m.unit,
                        va or "",
                        vb or "",
                        dtxt,
                        verdict,
                    ],
                    ["", "", "", "", "", "", "", "", cls],
                )
    return t
