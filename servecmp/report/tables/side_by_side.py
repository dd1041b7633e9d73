"""Side by side: every target's numbers at one load parameter."""

from __future__ import annotations

import functools
from collections.abc import Callable

from servecmp.report.cells import Cell, Param, TargetInfo, cells, targets
from servecmp.report.data import RunData
from servecmp.report.format import METRIC_LABEL, NOT_SIGNIFICANT, describe, fmt
from servecmp.report.notes import note_ref
from servecmp.report.stats import WINDOW_STAT, difference
from servecmp.report.table import Table
from servecmp.results.metrics import METRICS, Better

ROW_METRICS = [
    "throughput_rps",
    "achieved_rps",
    "offered_rps",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_p999_ms",
    "latency_max_ms",
    "latency_mean_ms",
    "error_fraction",
    "wrong_answers",
    "transport_errors",
    "late_send_fraction",
    "generator_cpu",
]


def best_label(metric: str, cands: list[tuple[TargetInfo, Cell]]) -> tuple[str, str]:
    """Best non-baseline target by ``metric`` and whether it beats the runner-up beyond noise."""
    m = METRICS[metric]
    if m.better is Better.neither or metric not in WINDOW_STAT:
        return "", ""
    vals: list[tuple[TargetInfo, Cell, float]] = []
    for t, c in cands:
        v_ = c.value(metric)
        if not t.baseline and v_ is not None:
            vals.append((t, c, v_))
    if len(vals) < 2:
        return "", ""
    vals.sort(key=lambda x: x[2], reverse=m.better is Better.higher)
    (t1, c1, _), (t2, c2, _) = vals[0], vals[1]
    v = difference(metric, c2, c1)  # the best (b) vs the runner-up (a)
    assert v is not None
    if not v.significant:
        return f"{t1.name} ≈ {t2.name}: {NOT_SIGNIFICANT} ({describe(v)})", "ns"
    return f"{t1.name} (vs {t2.name}: {describe(v)})", "win"


def side_by_side(run: RunData, param: Param) -> Table:
    infos = targets(run)
    cs = cells(run)
    headers = ["metric", "unit", "better", *(t.label for t in infos), "best (non-baseline)"]
    table = Table(headers, [])
    cand = [(t, cs[(t.name, param)]) for t in infos if (t.name, param) in cs and not t.unavailable]

    def cell_text(t: TargetInfo, fn: Callable[[Cell], str]) -> tuple[str, str]:
        if t.unavailable:
            return "unavailable", "unavail"
        c = cs.get((t.name, param))
        if c is None:
            return "not measured", "na"
        if c.rep is None:
            return (c.invalid_reason or "not comparable").split(":")[0], "invalid"
        return fn(c), ""

    # status first: the reader sees at once which columns hold numbers
    row, cls = ["step status", "", ""], ["", "", ""]
    for t in infos:
        c = cs.get((t.name, param))
        if t.unavailable:
            row.append(note_ref(run, t.unavailable))
            cls.append("unavail")
        elif c is None:
            row.append("not measured")
            cls.append("na")
        elif c.rep is None:
            row.append(c.invalid_reason or "not comparable")
            cls.append("invalid")
        else:
            n_out = len(c.steps) - len(c.valid_steps)
            extra = f" ({len(c.steps)} steps, {n_out} not comparable)" if n_out else ""
            row.append(f"comparable{extra}")
            cls.append("")
    table.add([*row, ""], [*cls, ""])

    def add_row(
        label: str,
        unit: str,
        better: str,
        fn: Callable[[Cell], str],
        best: tuple[str, str] = ("", ""),
    ) -> None:
        """One metric row: a cell per target (or why it has no number), then the best column."""
        texts, classes = zip(*(cell_text(t, fn) for t in infos), strict=True) if infos else ((), ())
        table.add([label, unit, better, *texts, best[0]], ["", "", "", *classes, best[1]])

    add_row("comparable repeats", "steps", "", lambda c: str(len(c.valid_steps)))
    for name in ROW_METRICS:
        m = METRICS[name]
        if name in ("offered_rps", "late_send_fraction") and param[0] == "concurrency":
            continue
        add_row(
            METRIC_LABEL[name],
            m.unit,
            m.better.value,
            functools.partial(_metric_text, name),
            best_label(name, cand),
        )
    for kind in sorted({k for s in run.steps for k in s.transport_errors}):
        add_row(
            f"transport errors: {kind}", "count", "lower", functools.partial(_errors_of_kind, kind)
        )
    if param[0] == "rate":
        add_row("late sends (count)", "count", "lower", _late_total)
    add_row("server CPU (during step)", "cores", "neither", _server_cpu)
    add_row("stop reason", "", "", _stop_reason)
    return table


def _metric_text(name: str, c: Cell) -> str:
    return fmt(c.value(name), METRICS[name].unit)


def _errors_of_kind(kind: str, c: Cell) -> str:
    return str(c.rep.transport_errors.get(kind, 0)) if c.rep else ""


def _late_total(c: Cell) -> str:
    return str(c.rep.late.total) if c.rep and c.rep.late else "—"


def _server_cpu(c: Cell) -> str:
    gw = c.rep.generator if c.rep else None
    return fmt(gw.server_cpu_fraction if gw else None, "cores")


def _stop_reason(c: Cell) -> str:
    return c.rep.stop_reason if c.rep else ""
