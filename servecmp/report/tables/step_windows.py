"""Each step's per-window series (throughput, p50, p99, server CPU, server RSS), as stored in
``StepResult.windows``: unfolded by default for long open-loop and rate-sweep steps (where a
trend inside the step matters most), folded for the others (shown on request)."""

from __future__ import annotations

from servecmp.report.cells import param_label, param_of
from servecmp.report.data import RunData
from servecmp.report.table import Table
from servecmp.results.schema import StepResult

LONG_STEP_WINDOWS = 5  # a step with at least this many windows is "long"


def shown_by_default(s: StepResult) -> bool:
    return s.mode == "open_loop" and len(s.windows) >= LONG_STEP_WINDOWS


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def window_table(s: StepResult) -> Table:
    t = Table(
        ["window", "s", "ok/s", "p50 ms", "p99 ms", "errors", "server CPU (cores)", "server RSS"],
        [],
    )
    first = len(s.windows) - s.reported_windows if s.reported_windows else len(s.windows)
    for w in s.windows:
        rss = f"{w.server_rss_bytes / 2**20:.0f} MiB" if w.server_rss_bytes else "—"
        t.add(
            [
                f"{w.index}{' (reported)' if w.index >= first else ''}",
                f"{w.duration_s:.2f}",
                f"{w.throughput_rps:.4g}",
                _num(w.p50_ms, ".3g"),
                _num(w.p99_ms, ".3g"),
                str(w.wrong_answers + w.transport_errors),
                _num(w.server_cpu, ".3g"),
                rss,
            ]
        )
    return t


def step_windows(run: RunData) -> list[tuple[str, Table, bool]]:
    """(summary line, table, shown by default) per step that has windows."""
    return [
        (
            f"{s.step_id}: {s.target} at {param_label(param_of(s))}, round {s.repeat + 1}, "
            f"{len(s.windows)} window(s)",
            window_table(s),
            shown_by_default(s),
        )
        for s in run.steps
        if s.windows
    ]
