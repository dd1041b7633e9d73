"""Report sections that stand on their own (title, note, sentences, plots, tables and folded
tables), rendered by one generic block of the templates: where the time goes, CPU per request,
disruption timelines, cost, and each step's per-window timeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from servecmp.report.data import RunData
from servecmp.report.plots import Plot
from servecmp.report.table import Table


@dataclass
class Folded:
    summary: str
    table: Table
    open: bool = False  # shown unfolded by default (HTML) and in the Markdown report


@dataclass
class Section:
    id: str
    title: str
    note: str = ""
    sentences: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)
    folded: list[Folded] = field(default_factory=list)


def _uncaptioned(t: Table) -> Table:
    """The caption becomes the section's heading: not twice."""
    return Table(t.headers, t.rows, t.classes)


def _breakdown(run: RunData) -> Section:
    from servecmp.report.plots_breakdown import breakdown_bars
    from servecmp.report.tables.breakdown import breakdown_table, largest_part_sentences

    return Section(
        id="breakdown",
        title="Where the time goes",
        note="The client's mean latency split into: outside the server (client, network, "
        "(de)serialization: the client's mean minus the server's own total), queue, "
        "pre/post-processing and model compute, each from the server's own counters read at "
        "the edges of the step's reported windows (README: 'Where the time goes'). Self-check: "
        "the server's own time may not exceed the client's mean beyond the noise of that mean; "
        "a server that does is flagged and its 'outside' left out.",
        sentences=largest_part_sentences(run),
        plots=[breakdown_bars(run)],
        tables=[("Breakdown per target and load level", breakdown_table(run))],
    )


def _cpu(run: RunData) -> Section:
    from servecmp.report.tables.cpu_per_request import cpu_per_request_table

    t = cpu_per_request_table(run)
    return Section(
        id="cpu-per-request",
        title="CPU per request",
        note="Server CPU-seconds per 1,000 successful requests at each load level: 'faster' and "
        "'cheaper' are separate questions." + ("" if t.rows else " Not recorded in this run."),
        tables=[(t.caption, _uncaptioned(t))] if t.rows else [],
    )


def _timelines(run: RunData) -> Section:
    from servecmp.report.plots_timelines import timeline_plot
    from servecmp.report.tables.timelines import (
        EVENTS,
        added_seconds,
        event_timelines,
        timeline_table,
    )

    found = event_timelines(run)
    sec = Section(
        id="event-timelines",
        title="The tail during a model update and a recovery",
        note="Each probe keeps a steady load on (the same for every server: the experiment's "
        "friction.event_load) from before the event to after it, in one-second windows. "
        "'During ÷ steady': p99 of the requests sent from the event until the new state "
        "answered, over the p99 before the event, given only when the windows before the event "
        "pass the steps' steadiness rule (no tolerance beyond sampling noise); otherwise the cell "
        "says 'baseline not steady' and why."
        + (
            f" The timelines added {added_seconds(run):.0f} s of probe time to this run."
            if found
            else " Not recorded in this run (no update or kill probe ran under load)."
        ),
    )
    for event, items in found.items():
        sec.plots.append(timeline_plot(run, event, items))
        sec.tables.append((EVENTS[event], timeline_table(items)))
    return sec


def _cost(run: RunData) -> Section:
    from servecmp.report.tables.cost import cost_table

    t = cost_table(run)
    return Section(
        id="cost",
        title="Cost per million requests under the SLO",
        note=(
            "Each server's best comparable configuration whose p99 meets the experiment's SLO, "
            "priced per core-hour (and per GiB-hour): provisioned = the cores the server was "
            "given; used CPU = what it burnt in that step; memory = the most its process tree "
            "held in that step."
            if t is not None
            else "Off: the experiment gives no price (cost.per_core_hour)."
        ),
        tables=[(t.caption, _uncaptioned(t))] if t is not None else [],
    )


def _windows(run: RunData) -> Section:
    from servecmp.report.tables.step_windows import LONG_STEP_WINDOWS, step_windows

    folded = [Folded(line, t, shown) for line, t, shown in step_windows(run)]
    return Section(
        id="step-timelines",
        title="Step timelines (per window)",
        note=f"Every step's windows: throughput, p50, p99, errors, server CPU and RSS. Open-loop "
        f"and rate-sweep steps of {LONG_STEP_WINDOWS} windows or more are shown; the others "
        "are folded (HTML report: click to open).",
        folded=folded,
    )


BUILDERS: tuple[Callable[[RunData], Section], ...] = (
    _breakdown,
    _cpu,
    _timelines,
    _cost,
    _windows,
)


def sections(run: RunData) -> list[Section]:
    return [b(run) for b in BUILDERS]
