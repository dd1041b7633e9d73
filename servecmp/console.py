"""The side-by-side console table printed at the end of a run (targets as columns)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from servecmp.results.schema import StepResult
from servecmp.results.store import RunStore


def _param(s: StepResult) -> str:
    return f"c={s.concurrency}" if s.mode == "closed_loop" else f"{s.rate:g}/s"


def _fmt(v: float | None, nd: int = 1) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def summary_table(run_dir: Path) -> Table:
    store = RunStore(run_dir)
    steps = store.read_steps().steps
    targets = store.read_targets()
    names: list[str] = []
    for t in targets:
        if t.target not in names:
            names.append(t.target)
    for s in steps:
        if s.target not in names:
            names.append(s.target)
    unavailable = {t.target: t.reason for t in targets if not t.available}
    table = Table(title=f"servecmp — {run_dir.name}", show_lines=False)
    table.add_column("step", style="bold")
    for n in names:
        table.add_column(n, justify="right")
    params: list[str] = []
    for s in steps:
        if _param(s) not in params:
            params.append(_param(s))
    for p in params:
        for label, fn in (
            ("req/s", lambda s: _fmt(s.throughput_rps)),
            ("p50 ms", lambda s: _fmt(s.latency_ms.p50, 2)),
            ("p99 ms", lambda s: _fmt(s.latency_ms.p99, 2)),
            ("errors", lambda s: f"{s.transport_error_count}/{s.wrong_answers}w"),
        ):
            row = [f"{p} {label}"]
            for n in names:
                if n in unavailable:
                    row.append("unavailable" if label == "req/s" else "")
                    continue
                match = [s for s in steps if s.target == n and _param(s) == p]
                if not match:
                    row.append("")
                    continue
                s = match[-1]
                row.append(fn(s) if s.valid else ("INVALID" if label == "req/s" else ""))
            table.add_row(*row)
        table.add_section()
    return table


def print_summary(run_dir: Path) -> None:
    console = Console()
    console.print(summary_table(run_dir))
    store = RunStore(run_dir)
    for t in store.read_targets():
        if not t.available:
            console.print(f"[yellow]{t.target}: unavailable — {t.reason}[/yellow]")
    for s in store.read_steps().steps:
        if not s.valid:
            console.print(f"[red]{s.step_id}: invalid — {s.invalid_reason}[/red]")
    console.print(f"results: {run_dir}  (errors column: transport/wrong answers)")
