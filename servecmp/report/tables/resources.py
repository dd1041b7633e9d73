"""Server resources from the Prometheus series."""

from __future__ import annotations

from servecmp.report.data import RunData
from servecmp.report.format import fmt, fmt_bytes
from servecmp.report.series import resource_series
from servecmp.report.table import Table


def resource_table(run: RunData) -> tuple[Table, str]:
    series, note = resource_series(run)
    t = Table(["server", "CPU mean (cores)", "CPU max (cores)", "memory max"], [])
    for server in sorted(series):
        ss = series[server]
        cpu = [v for _, v in ss.cpu]
        mem = [v for _, v in ss.mem]
        t.add(
            [
                server,
                fmt(sum(cpu) / len(cpu), "cores") if cpu else "not recorded",
                fmt(max(cpu), "cores") if cpu else "not recorded",
                fmt_bytes(max(mem)) if mem else "not recorded",
            ]
        )
    return t, note
