"""CPU per request: the server's CPU-seconds per 1,000 successful requests at each load level,
from the process tree each step watched (``generator.server_cpu_fraction`` x measured seconds /
ok answers). It makes "faster" and "cheaper" separate questions. An in-process baseline has no
server: its figure is the step process's own CPU (load generation included), labelled so."""

from __future__ import annotations

import statistics

from servecmp.report.cells import Param, cells, param_label, params, targets
from servecmp.report.data import RunData
from servecmp.report.table import Table
from servecmp.results.schema import StepResult

PER = 1000


def server_cpu_s_per_k(s: StepResult) -> float | None:
    """Server CPU-seconds per 1,000 ok answers of one step (None: no tree watched, no answer)."""
    g = s.generator
    if g is None or g.server_cpu_fraction is None or not s.ok:
        return None
    return g.server_cpu_fraction * s.measured_s / s.ok * PER


def inprocess_cpu_s_per_k(s: StepResult) -> float | None:
    g = s.generator
    if g is None or not s.ok:
        return None
    return g.cpu_fraction * s.measured_s / s.ok * PER


def cpu_per_request(run: RunData) -> dict[tuple[str, Param], float]:
    """(target, load level) -> median over comparable repeats of CPU-s per 1,000 ok answers."""
    out: dict[tuple[str, Param], float] = {}
    infos = {t.name: t for t in targets(run)}
    for key, c in cells(run).items():
        t = infos.get(key[0])
        per = inprocess_cpu_s_per_k if t is not None and t.baseline else server_cpu_s_per_k
        vals = [v for s in c.valid_steps if (v := per(s)) is not None]
        if vals:
            out[key] = float(statistics.median(vals))
    return out


def cpu_per_request_table(run: RunData) -> Table:
    ps = params(run)
    got = cpu_per_request(run)
    t = Table(["target", *(param_label(p) for p in ps), "measured as"], [])
    for ti in targets(run):
        if ti.unavailable:
            continue
        row = [f"{got[(ti.name, p)]:.3g}" if (ti.name, p) in got else "—" for p in ps]
        if all(v == "—" for v in row):
            continue
        how = (
            "in-process: the step process's CPU (the model and the load generation)"
            if ti.baseline
            else "the server's process tree (psutil, every process of it)"
        )
        t.add([ti.label, *row, how])
    t.caption = f"CPU-seconds per {PER:,} successful requests (median over comparable repeats)"
    return t
