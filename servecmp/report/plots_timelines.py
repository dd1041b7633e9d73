"""One chart per event kind (model update, kill and restart): every server's per-second p99
and throughput around the event, aligned at t = 0; seconds with errors are marked."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from servecmp.report.data import RunData
from servecmp.report.plots import Plot, _color, _layout
from servecmp.report.servers import server_label
from servecmp.report.tables.timelines import EVENTS, EventTimeline


def timeline_plot(run: RunData, event: str, items: list[EventTimeline]) -> Plot:
    pid = f"plot-timeline-{event.removesuffix('_s')}"
    title = f"Timeline around the {EVENTS[event]}"
    if not items:
        return Plot(pid, title, "not recorded", None)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        subplot_titles=("p99 latency per second (ok answers)", "ok answers per second"),
    )
    for i, it in enumerate(items):
        ws = it.timeline["windows"]
        xs = [w["t"] for w in ws]
        name = server_label(it.server)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[w["p99_ms"] for w in ws],
                mode="lines+markers",
                name=name,
                legendgroup=it.server,
                line={"color": _color(i)},
                customdata=[w["errors"] for w in ws],
                hovertemplate="t=%{x}s p99 %{y:.3f} ms, errors %{customdata}<extra>"
                + name
                + "</extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[w["throughput_rps"] for w in ws],
                mode="lines",
                name=name,
                legendgroup=it.server,
                showlegend=False,
                line={"color": _color(i), "dash": "dot"},
            ),
            row=2,
            col=1,
        )
        err = [w for w in ws if w["errors"]]
        if err:
            fig.add_trace(
                go.Scatter(
                    x=[w["t"] for w in err],
                    y=[0] * len(err),
                    mode="markers",
                    name=f"{name}: seconds with errors",
                    legendgroup=it.server,
                    marker={"color": _color(i), "symbol": "x", "size": 10},
                    text=[f"{w['errors']} error(s)" for w in err],
                    hovertemplate="t=%{x}s %{text}<extra>" + name + "</extra>",
                ),
                row=2,
                col=1,
            )
    fig.add_vline(x=0, line_dash="dash", line_color="#888")
    fig.update_yaxes(title_text="ms", type="log", row=1, col=1)
    fig.update_yaxes(title_text="req/s", row=2, col=1)
    fig.update_xaxes(title_text="seconds from the event (t = 0)", row=2, col=1)
    note = (
        "Per-second windows of the probe's steady load (answers bucketed by when they came "
        "back), every server under the same load, aligned at the event (t = 0). A second with "
        "no ok answer has no p99 point; ✕ marks seconds with errors."
    )
    return Plot(pid, title, note, _layout(fig, 520))
