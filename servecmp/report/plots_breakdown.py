"""The latency breakdown as stacked bars: per load level, one bar per target (in-process
baselines beside the servers: compute only), one segment per reported part. A part that is not
reported has no segment (its absence is named in the hover and in the table); a target whose
self-check failed is drawn without "outside" and marked in its label."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from servecmp.report.cells import param_label, params
from servecmp.report.data import RunData
from servecmp.report.plots import Plot, _color, _layout
from servecmp.report.tables.breakdown import PART_LABEL, PARTS, breakdown_cells, version_of

PART_COLOR = {p: _color(i + 6) for i, p in enumerate(PARTS)}


def breakdown_bars(run: RunData) -> Plot:
    cs = breakdown_cells(run)
    levels = [p for p in params(run) if any(c.param == p for c in cs)]
    if not levels:
        return Plot(
            "plot-breakdown",
            "Where the time goes",
            "No step recorded a breakdown (the server's metrics page was not read).",
            None,
        )
    fig = make_subplots(
        rows=len(levels),
        cols=1,
        subplot_titles=[param_label(p) for p in levels],
        vertical_spacing=0.12 if len(levels) > 1 else 0.2,
    )
    for r, p in enumerate(levels, start=1):
        here = [c for c in cs if c.param == p]
        xs = [c.target + (" ⚠ self-check" if c.flagged else "") for c in here]
        for part in PARTS:
            ys = [c.parts[part].ms for c in here]
            text = [
                f"{c.parts[part].source or '—'}<br>{version_of(run, c.server)}"
                if c.parts[part].ms is not None
                else f"{c.parts[part].why}"
                for c in here
            ]
            fig.add_trace(
                go.Bar(
                    x=xs,
                    y=ys,
                    name=PART_LABEL[part],
                    legendgroup=part,
                    showlegend=r == 1,
                    marker_color=PART_COLOR[part],
                    customdata=text,
                    hovertemplate="%{y:.3f} ms<br>%{customdata}<extra>"
                    + PART_LABEL[part]
                    + "</extra>",
                ),
                row=r,
                col=1,
            )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="mean latency (ms)")
    note = (
        "Each bar is the client's mean latency (median over comparable repeats) split by the "
        "server's own counters read at the step's window edges; hover a segment for its source "
        "metric and server version. Means add up, quantiles do not: these are means. A missing "
        "segment is a part the server does not report (see the table), not zero."
    )
    return Plot(
        "plot-breakdown",
        "Where the time goes",
        note,
        _layout(fig, 340 * len(levels) + 80),
    )
