"""Serving overhead: each server target against its framework's in-process baseline."""

from __future__ import annotations

from servecmp.report.cells import cells, param_label, params, targets
from servecmp.report.data import RunData
from servecmp.report.format import fmt
from servecmp.report.servers import baseline_of
from servecmp.report.table import Table


def overhead(run: RunData) -> Table:
    infos = targets(run)
    cs = cells(run)
    table = Table(
        [
            "load",
            "target",
            "baseline",
            "p50 overhead (ms)",
            "p99 overhead (ms)",
            "throughput ratio (server / baseline)",
        ],
        [],
    )
    by_name = {t.name: t for t in infos}
    for p in params(run):
        for t in infos:
            base = baseline_of(t.server)
            if t.baseline or base is None:
                continue
            row = [param_label(p), t.label, base]
            c, cb = cs.get((t.name, p)), cs.get((base, p))
            bi = by_name.get(base)
            why = None
            if t.unavailable:
                why = "no data (target unavailable)"
            elif bi is None:
                why = "no baseline in this run"
            elif bi.unavailable:
                why = f"baseline unavailable: {bi.unavailable}"
            elif c is None or cb is None:
                why = "not measured"
            elif c.rep is None:
                why = c.invalid_reason or "not comparable"
            elif cb.rep is None:
                why = f"baseline {cb.invalid_reason or 'not comparable'}"
            if why is not None:
                table.add([*row, why, why, why], ["", "", "", "na", "na", "na"])
                continue
            assert c is not None and cb is not None
            d50 = _sub(c.value("latency_p50_ms"), cb.value("latency_p50_ms"))
            d99 = _sub(c.value("latency_p99_ms"), cb.value("latency_p99_ms"))
            ta, tb = c.value("throughput_rps") or 0.0, cb.value("throughput_rps") or 0.0
            ratio = f"{ta / tb:.3f}" if tb > 0 else "—"
            table.add([*row, fmt(d50, "ms"), fmt(d99, "ms"), ratio])
    return table


def _sub(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None
