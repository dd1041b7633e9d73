"""SLO levels and each server's best step under an SLO (recommendations and summary)."""

from __future__ import annotations

from servecmp.report.cells import Cell, Param, TargetInfo
from servecmp.report.data import RunData

STANDARD_SLOS_MS = (25.0, 50.0, 100.0, 250.0)
MAX_ERROR_FRACTION_FOR_SLO = 0.001  # a step "meets" an SLO only with ≤ 0.1 % failed requests


def slo_levels(run: RunData) -> list[float]:
    levels = set(STANDARD_SLOS_MS)
    exp_slo = run.meta.load.get("slo_p99_ms")
    if isinstance(exp_slo, int | float):
        levels.add(float(exp_slo))
    levels.update(float(s.slo_p99_ms) for s in run.steps if s.slo_p99_ms)
    return sorted(levels)


def best_under_slo(
    run: RunData,
    cs: dict[tuple[str, Param], Cell],
    infos: list[TargetInfo],
    server: str,
    proto: str,
    slo: float,
) -> tuple[Cell | None, str]:
    ts = [t for t in infos if t.server == server and t.protocol == proto and not t.native_extra]
    if not ts:
        return None, "no target"
    avail = [t for t in ts if not t.unavailable]
    if not avail:
        return None, "no data (" + ", ".join(t.name for t in ts) + " unavailable)"
    best: Cell | None = None
    any_valid = False
    for t in avail:
        for (name, _), c in cs.items():
            if name != t.name or c.rep is None:
                continue
            any_valid = True
            p99, thr = c.value("latency_p99_ms"), c.value("throughput_rps") or 0.0
            if p99 is None or p99 > slo or c.rep.error_fraction > MAX_ERROR_FRACTION_FOR_SLO:
                continue
            if best is None or thr > (best.value("throughput_rps") or 0.0):
                best = c
    if best is None:
        return None, "no comparable step meets it" if any_valid else "no data (no comparable step)"
    return best, ""


def summary_slo(run: RunData) -> float:
    slo = run.meta.load.get("slo_p99_ms")
    return float(slo) if isinstance(slo, int | float) else 100.0
