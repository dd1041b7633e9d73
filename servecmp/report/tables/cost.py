"""Cost per million requests under the SLO: for each server and protocol, its best comparable
configuration (target and load level) whose p99 meets the experiment's SLO (report/slo.py
``best_under_slo``), priced from the experiment's ``cost`` (per core-hour, optionally per
GiB-hour), with the arithmetic shown. Off when no price is given.

Provisioned: the cores the server was given (resources.cpus) and the most memory its process
tree held in that step. Used: the CPU the server actually burnt in that step (the same memory).
"""

from __future__ import annotations

from servecmp.report.cells import cells, param_label, protocols, targets
from servecmp.report.data import RunData
from servecmp.report.servers import server_label, servers
from servecmp.report.slo import best_under_slo, summary_slo
from servecmp.report.table import Table
from servecmp.results.schema import StepResult

GIB = 2**30
MILLION = 1_000_000


def step_rss_bytes(run: RunData, s: StepResult) -> float | None:
    """The most memory the server held in the step's windows, else its friction peak RSS."""
    seen = [w.server_rss_bytes for w in s.windows if w.server_rss_bytes]
    if seen:
        return float(max(seen))
    peaks = [
        r.value
        for r in run.friction
        if r.server == s.server and r.metric == "peak_rss_bytes" and r.value
    ]
    return max(peaks) if peaks else None


def _price(cores: float, gib: float | None, per_core: float, per_gib: float | None) -> float:
    return cores * per_core + (gib or 0.0) * (per_gib or 0.0)


def _arith(cores: float, gib: float | None, per_core: float, per_gib: float | None, thr: float, cur: str) -> tuple[str, float]:  # fmt: skip
    hourly = _price(cores, gib, per_core, per_gib)
    per_m = hourly / (thr * 3600.0) * MILLION
    mem = f" + {gib:.3g} GiB * {per_gib:g}" if per_gib and gib is not None else ""
    text = (
        f"({cores:.3g} cores * {per_core:g}{mem}) {cur}/h ÷ ({thr:.4g} req/s * 3600 s/h) "
        f"* 10^6 = {per_m:.4g} {cur}"
    )
    return text, per_m


def cost_table(run: RunData) -> Table | None:
    """None when the experiment gives no price."""
    exp = run.experiment
    if exp is None or exp.cost.per_core_hour is None:
        return None
    price, cur = exp.cost, exp.cost.currency
    assert price.per_core_hour is not None
    slo = summary_slo(run)
    cs, infos = cells(run), targets(run)
    t = Table(
        [
            "server",
            "protocol",
            "best under the SLO",
            "provisioned: cost per million requests",
            "used CPU: cost per million requests",
        ],
        [],
        caption=f"p99 ≤ {slo:g} ms; prices {price.per_core_hour:g} {cur} per core-hour"
        + (f", {price.per_gib_hour:g} {cur} per GiB-hour" if price.per_gib_hour else ""),
    )
    for proto in protocols(run):
        for server in servers(run):
            best, why = best_under_slo(run, cs, infos, server, proto, slo)
            if why == "no target":
                continue
            if best is None or best.rep is None:
                t.add([server_label(server), proto, why, "—", "—"])
                continue
            s = best.rep
            thr = best.value("throughput_rps") or 0.0
            rss = step_rss_bytes(run, s)
            gib = rss / GIB if rss else None
            g = s.generator
            budget = g.server_cpu_budget if g and g.server_cpu_budget else exp.resources.cpus
            used = g.server_cpu_fraction if g else None
            prov, _ = _arith(budget, gib, price.per_core_hour, price.per_gib_hour, thr, cur)
            used_text = (
                _arith(used, gib, price.per_core_hour, price.per_gib_hour, thr, cur)[0]
                if used is not None
                else "server CPU not recorded"
            )
            t.add(
                [
                    server_label(server),
                    proto,
                    f"{best.target} at {param_label(best.param)} ({thr:.4g} req/s)",
                    prov,
                    used_text,
                ]
            )
    return t
