"""Per-server CPU and memory over time, read from ``prometheus/series.json``."""

from __future__ import annotations

from dataclasses import dataclass

from servecmp.observability import names as obs_names
from servecmp.report.data import RunData


@dataclass
class ServerSeries:
    server: str
    cpu: list[tuple[float, float]]  # (t, cores)
    mem: list[tuple[float, float]]  # (t, bytes)


def resource_series(run: RunData) -> tuple[dict[str, ServerSeries], str]:
    """Per server CPU/memory over time from prometheus/series.json; ``({}, why)`` when absent."""
    if run.series is None:
        return {}, f"not recorded ({run.dir / 'prometheus' / 'series.json'} absent)"
    q = run.series.get("queries", {})
    out: dict[str, ServerSeries] = {}
    missing = []
    for key, attr in ((obs_names.R_SERVER_CPU, "cpu"), (obs_names.R_SERVER_MEM, "mem")):
        entry = q.get(key)
        if not entry or entry.get("status") != "success" or not entry.get("result"):
            why = (entry or {}).get("error") or "no samples"
            missing.append(f"{key}: {why}")
            continue
        for res in entry["result"]:
            server = res.get("metric", {}).get("server", "?")
            ss = out.setdefault(server, ServerSeries(server, [], []))
            pts = [(float(t), float(v)) for t, v in res.get("values", [])]
            getattr(ss, attr).extend(pts)
    for ss in out.values():
        ss.cpu.sort()
        ss.mem.sort()
    note = "; ".join(missing)
    if not out:
        return {}, f"not recorded ({note})" if note else "not recorded"
    return out, (f"partly recorded: {note}" if note else "")
