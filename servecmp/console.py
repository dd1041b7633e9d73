"""The table printed at the end of a run: one row per target and load, so it fits an 80-column
terminal whatever the target names (no column per target, nothing truncated).

Numbers are the median over the comparable repeats (valid, steady, undisturbed), like the
report; a row without one says why in the status column, with the reason printed once below.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from servecmp.results.schema import StepResult
from servecmp.results.store import RunStore

WIDTH = 80


def _param(s: StepResult) -> str:
    return f"c={s.concurrency}" if s.mode == "closed_loop" else f"{s.rate:g}/s"


def _med(vals: list[float | None], nd: int) -> str:
    vs = [v for v in vals if v is not None]
    return "—" if not vs else f"{statistics.median(vs):.{nd}f}"


def _status(s: StepResult) -> str:
    if not s.valid:
        return "invalid"
    if s.disrupted is not None:
        return "disrupted"
    if not s.steady:
        return "unsteady"
    return "ok"


def _reason(s: StepResult) -> str:
    if not s.valid:
        return s.invalid_reason or s.error or "no reason recorded"
    if s.disrupted is not None:
        return s.disrupted
    return s.unsteady_reason or "its windows did not agree"


def summary_table(run_dir: Path) -> tuple[Table, list[str]]:
    """The table and the notes (reasons, each once) to print under it."""
    store = RunStore(run_dir)
    steps = store.read_steps().steps
    availability = store.read_targets()
    names: list[str] = []
    for name in [t.target for t in availability] + [s.target for s in steps]:
        if name not in names:
            names.append(name)
    unavailable = {t.target: t.reason for t in availability if not t.available}
    notes: list[str] = []

    def note(text: str) -> str:
        if text not in notes:
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    for reason in dict.fromkeys(unavailable.values()):  # each reason once, naming its targets
        note(
            ", ".join(n for n in names if unavailable.get(n) == reason)
            + f": unavailable — {reason}"
        )

    table = Table(
        title=f"servecmp — {run_dir.name}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
        caption="median over comparable repeats (n = comparable/all); err = transport errors/wrong",
    )
    table.add_column("target", no_wrap=True)
    table.add_column("load", no_wrap=True)
    for col in ("req/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("err", justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=7)
    for name in names:
        if name in unavailable:
            ref = next(
                i
                for i, t in enumerate(notes, start=1)
                if t.endswith(f": unavailable — {unavailable[name]}")
            )
            table.add_row(name, "—", "", "", "", "", "", f"n/a [{ref}]")
            continue
        params: list[str] = []
        for s in steps:
            if s.target == name and _param(s) not in params:
                params.append(_param(s))
        for p in params:
            mine = [s for s in steps if s.target == name and _param(s) == p]
            good = [s for s in mine if s.comparable]
            errs = (
                f"{sum(s.transport_error_count for s in mine)}/{sum(s.wrong_answers for s in mine)}"
            )
            n = f"{len(good)}/{len(mine)}"
            out = [s for s in mine if not s.comparable]
            mark = (
                f" {note(f'{out[-1].step_id}: {_status(out[-1])} — {_reason(out[-1])}')}"
                if out
                else ""
            )
            if good:
                table.add_row(
                    name,
                    p,
                    _med([s.throughput_rps for s in good], 1),
                    _med([s.latency_ms.p50 for s in good], 2),
                    _med([s.latency_ms.p99 for s in good], 2),
                    errs,
                    n,
                    "ok" + mark,
                )
            else:
                table.add_row(name, p, "—", "—", "—", errs, n, _status(out[-1]) + mark)
        table.add_section()
    return table, notes


def print_summary(run_dir: Path, console: Console | None = None) -> None:
    console = console or Console()
    table, notes = summary_table(run_dir)
    console.print(table)
    for i, text in enumerate(notes, start=1):
        console.print(f"[{i}] {text}", markup=False, highlight=False)
