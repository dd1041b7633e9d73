"""Plotly figures for the HTML report (plotly.js embedded once, inline: the file opens offline).

Only comparable steps give the plotted numbers (an invalid step is not a server number; a valid
step that is not steady or was disrupted appears as a marked point with its reason, outside the
lines); unavailable targets have no trace and are named in each figure's note.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go
from hdrh.histogram import HdrHistogram
from plotly.subplots import make_subplots

from servecmp.report.cells import (
    Cell,
    cells,
    not_comparable_reason,
    param_label,
    param_of,
    params,
    targets,
)
from servecmp.report.data import RunData
from servecmp.report.notes import note_ref
from servecmp.report.series import resource_series
from servecmp.report.servers import baseline_of, server_label, servers

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
CURVE_PERCENTILES = (0, 10, 25, 50, 75, 90, 95, 98, 99, 99.5, 99.9, 99.95, 99.99, 99.999)


@dataclass
class Plot:
    id: str
    title: str
    note: str
    figure: go.Figure | None  # None: nothing to plot (note says why)


def _layout(fig: go.Figure, height: int = 420) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 40, "b": 50},
        legend={"orientation": "v"},
    )
    return fig


def _unavail_note(run: RunData) -> str:
    un = [f"{t.name} ({note_ref(run, t.unavailable)})" for t in targets(run) if t.unavailable]
    return ("Not plotted: " + "; ".join(un) + ". ") if un else ""


def latency_vs_throughput(run: RunData) -> Plot:
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("p50 latency vs throughput", "p99 latency vs throughput")
    )
    any_pt = False
    for i, t in enumerate(targets(run)):
        mine = sorted(
            (s for s in run.steps if s.target == t.name and s.valid),
            key=lambda s: (param_of(s), s.index),
        )
        steps = [s for s in mine if s.comparable]
        others = [
            s for s in mine if not s.comparable
        ]  # valid but unsteady / disrupted: shown as such
        color = _color(i)
        if others:
            any_pt = True
            for col, attr in ((1, "p50"), (2, "p99")):
                fig.add_trace(
                    go.Scatter(
                        x=[s.throughput_rps for s in others],
                        y=[getattr(s.latency_ms, attr) for s in others],
                        text=[f"{s.step_id}: {not_comparable_reason(s)}" for s in others],
                        mode="markers",
                        name=f"{t.name} (not comparable)",
                        legendgroup=t.name + "-nc",
                        showlegend=col == 1,
                        marker={"color": color, "symbol": "x-open", "size": 10},
                        hovertemplate="%{text}<br>%{x:.2f} req/s<br>%{y:.3f} ms<extra>not comparable</extra>",
                    ),
                    row=1,
                    col=col,
                )
        if not steps:
            continue
        any_pt = True
        dash = "dot" if t.baseline else ("dash" if t.native_extra else "solid")
        for col, attr in ((1, "p50"), (2, "p99")):
            fig.add_trace(
                go.Scatter(
                    x=[s.throughput_rps for s in steps],
                    y=[getattr(s.latency_ms, attr) for s in steps],
                    text=[f"{s.step_id}: {param_label(param_of(s))}" for s in steps],
                    mode="lines+markers",
                    name=t.label,
                    legendgroup=t.name,
                    showlegend=col == 1,
                    line={"color": color, "dash": dash},
                    hovertemplate="%{text}<br>%{x:.2f} req/s<br>%{y:.3f} ms<extra>"
                    + t.name
                    + "</extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="throughput (req/s)")
    fig.update_yaxes(title_text="latency (ms)")
    note = _unavail_note(run) + (
        "One point per comparable step (repeats included); dotted = in-process baseline, "
        "dashed = native-encoding extra; ✕ = a valid step that is not comparable (not steady "
        "or disrupted: hover for the reason), kept out of every verdict."
    )
    return Plot(
        "plot-latency-throughput", "Latency vs throughput", note, _layout(fig) if any_pt else None
    )


def percentile_bars(run: RunData) -> Plot:
    ps = params(run)
    cs = cells(run)
    if not ps:
        return Plot("plot-percentiles", "Latency percentiles", "no steps", None)
    fig = make_subplots(
        rows=len(ps),
        cols=1,
        subplot_titles=[param_label(p) for p in ps],
        vertical_spacing=0.12 if len(ps) > 1 else 0.2,
    )
    names = [t for t in targets(run) if not t.unavailable]
    attrs = (("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9"))
    for j, (attr, label) in enumerate(attrs):
        for r, p in enumerate(ps, start=1):
            xs, ys = [], []
            for t in names:
                c = cs.get((t.name, p))
                if c is None or c.rep is None:
                    continue
                xs.append(t.name)
                ys.append(getattr(c.rep.latency_ms, attr))
            fig.add_trace(
                go.Bar(
                    x=xs,
                    y=ys,
                    name=label,
                    legendgroup=label,
                    showlegend=r == 1,
                    marker_color=_color(j),
                ),
                row=r,
                col=1,
            )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="ms")
    note = (
        _unavail_note(run)
        + "Last comparable step per target and load; steps that are not comparable are not drawn."
    )
    return Plot("plot-percentiles", "Latency percentiles", note, _layout(fig, 320 * len(ps) + 60))


def _percentile_curve(b64: str) -> tuple[list[float], list[float]]:
    h = HdrHistogram.decode(b64.encode("ascii"))
    xs, ys = [], []
    for q in CURVE_PERCENTILES:
        xs.append(1.0 / (1.0 - q / 100.0))
        ys.append(h.get_value_at_percentile(q) / 1000.0)
    xs.append(1.0 / (1.0 - 99.9999 / 100.0))
    ys.append(h.get_max_value() / 1000.0)
    return xs, ys


def latency_distribution(run: RunData) -> Plot:
    fig = go.Figure()
    n = 0
    cs = cells(run)
    order = {t.name: i for i, t in enumerate(targets(run))}
    for (name, p), c in sorted(cs.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        if c.rep is None or not c.rep.hdr_latency_us:
            continue
        xs, ys = _percentile_curve(c.rep.hdr_latency_us)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=f"{name} @ {param_label(p)}",
                line={"color": _color(order.get(name, 0))},
                hovertemplate="%{y:.3f} ms<extra>%{fullData.name}</extra>",
            )
        )
        n += 1
    ticks = [1 / (1 - q / 100) for q in (0, 50, 90, 99, 99.9, 99.99, 99.999)]
    fig.update_xaxes(
        type="log",
        title_text="percentile",
        tickvals=ticks,
        ticktext=["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"],
    )
    fig.update_yaxes(title_text="latency (ms)")
    note = (
        _unavail_note(run)
        + "Percentile curve decoded from each step's HDR histogram (hdr_latency_us); last valid step per target and load."
    )
    return Plot(
        "plot-distribution",
        "Latency distribution (HDR)",
        note if n else note + " No histogram stored.",
        _layout(fig, 460) if n else None,
    )


def resources(run: RunData) -> Plot:
    series, why = resource_series(run)
    if not series:
        return Plot(
            "plot-resources", "Server CPU and memory over time", why or "not recorded", None
        )
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, subplot_titles=("CPU (cores)", "resident memory (MiB)")
    )
    t0 = float(run.series.get("start", 0.0)) if run.series else 0.0
    for i, server in enumerate(sorted(series)):
        ss = series[server]
        if ss.cpu:
            fig.add_trace(
                go.Scatter(
                    x=[t - t0 for t, _ in ss.cpu],
                    y=[v for _, v in ss.cpu],
                    name=f"{server} CPU",
                    line={"color": _color(i)},
                ),
                row=1,
                col=1,
            )
        if ss.mem:
            fig.add_trace(
                go.Scatter(
                    x=[t - t0 for t, _ in ss.mem],
                    y=[v / 2**20 for _, v in ss.mem],
                    name=f"{server} memory",
                    line={"color": _color(i), "dash": "dot"},
                ),
                row=2,
                col=1,
            )
    fig.update_xaxes(title_text="seconds since the run's series start", row=2, col=1)
    return Plot(
        "plot-resources",
        "Server CPU and memory over time",
        why
        or "From prometheus/series.json (recorded series servecmp:server_cpu_cores:rate1m, servecmp:server_memory_bytes).",
        _layout(fig, 520),
    )


def overhead_bars(run: RunData) -> Plot:
    cs = cells(run)
    fig = go.Figure()
    n = 0
    for i, t in enumerate(targets(run)):
        base = baseline_of(t.server)
        if t.baseline or t.unavailable or base is None:
            continue
        xs, ys = [], []
        for p in params(run):
            c: Cell | None = cs.get((t.name, p))
            b: Cell | None = cs.get((base, p))
            if c is None or b is None or c.rep is None or b.rep is None:
                continue
            a50, b50 = c.value("latency_p50_ms"), b.value("latency_p50_ms")
            if a50 is None or b50 is None:
                continue
            xs.append(param_label(p))
            ys.append(a50 - b50)
        if xs:
            n += 1
            fig.add_trace(go.Bar(x=xs, y=ys, name=t.label, marker_color=_color(i)))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="p50 - baseline p50 (ms)")
    pairs = ", ".join(
        f"{server_label(x)} - {baseline_of(x)}" for x in servers(run) if baseline_of(x)
    )
    note = "Server p50 minus the in-process p50 of the framework it serves" + (
        f" ({pairs})." if pairs else "."
    )
    return Plot(
        "plot-overhead",
        "Serving overhead vs in-process baseline",
        note if n else note + " No pair with valid steps on both sides.",
        _layout(fig, 380) if n else None,
    )


_PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def all_plots(run: RunData) -> list[Plot]:
    return [
        latency_vs_throughput(run),
        percentile_bars(run),
        latency_distribution(run),
        overhead_bars(run),
        resources(run),
    ]


def plot_html(plots: list[Plot]) -> dict[str, str]:
    """div HTML per plot id; plotly.js is embedded inline exactly once (in the first figure)."""
    out: dict[str, str] = {}
    first = True
    for p in plots:
        if p.figure is None:
            continue
        out[p.id] = p.figure.to_html(
            full_html=False,
            include_plotlyjs=first,
            div_id=p.id,
            config={"displaylogo": False, "responsive": True},
        )
        first = False
    return out
