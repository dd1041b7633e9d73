"""Servers head to head: every pair of servers, per load and protocol."""

from __future__ import annotations

from servecmp.report.cells import (
    Cell,
    Param,
    TargetInfo,
    cells,
    main_target,
    param_label,
    params,
    protocols,
    targets,
)
from servecmp.report.data import RunData
from servecmp.report.format import METRIC_LABEL, describe, fmt, verdict_outcome
from servecmp.report.servers import server_label, server_pairs, servers
from servecmp.report.stats import difference
from servecmp.report.table import Table
from servecmp.results.metrics import METRICS

HEAD_METRICS = ("throughput_rps", "latency_p50_ms", "latency_p99_ms")


def head_to_head(run: RunData) -> Table:
    """Every pair of servers, per load and protocol, on their common-encoding targets: b vs a
    with the noise rule (paired interval over interleaved repeats, else the fallback)."""
    infos = targets(run)
    cs = cells(run)
    names = servers(run)
    table = Table(
        [
            "load",
            "protocol",
            "metric",
            "unit",
            "a",
            "b",
            "a value",
            "b value",
            "difference",
            "verdict",
        ],
        [],
    )

    def side(t: TargetInfo | None, p: Param, metric: str) -> tuple[str, Cell | None]:
        if t is None:
            return "no target", None
        if t.unavailable:
            return f"no data ({t.name} unavailable)", None
        c = cs.get((t.name, p))
        if c is None:
            return "not measured", None
        if c.rep is None:
            return c.invalid_reason or "not comparable", None
        return fmt(c.value(metric), METRICS[metric].unit), c

    for p in params(run):
        for proto in protocols(run):
            mains = {x: main_target(infos, x, proto) for x in names}
            for a, b in server_pairs(names):
                ta, tb = mains[a], mains[b]
                if ta is None and tb is None:
                    continue
                la, lb = server_label(a), server_label(b)
                for name in HEAD_METRICS:
                    m = METRICS[name]
                    row = [param_label(p), proto, METRIC_LABEL[name], m.unit, la, lb]
                    (va, ca), (vb, cb) = side(ta, p, name), side(tb, p, name)
                    if ca is None or cb is None:
                        table.add([*row, va, vb, "—", "no data"], [*([""] * 8), "", "na"])
                        continue
                    v = difference(name, ca, cb)
                    assert v is not None
                    diff = f"{lb} vs {la}: {describe(v)}" if v.paired else describe(v)
                    verdict, vc = verdict_outcome(v, la, lb)
                    table.add([*row, va, vb, diff, verdict], [*([""] * 8), "", vc])
    return table
