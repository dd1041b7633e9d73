"""Throughput vs p99 per server over every measured (configuration, load level): the Pareto front
(no other point has both more throughput and a lower p99) and its plotly figure, drawn like the
run report's (servecmp/report/plots.py: same layout and palette)."""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from servecmp.report.plots import Plot, _color, _layout
from servecmp.tune.store import Measurement


@dataclass(frozen=True)
class Point:
    server: str
    label: str  # configuration
    param: str  # load level
    throughput_rps: float
    p99_ms: float
    stage: str
    slo_ok: bool


def points(measurements: list[Measurement]) -> list[Point]:
    out = []
    for m in measurements:
        for lv in m.levels:
            if (
                lv.valid
                and lv.disrupted is None
                and lv.p99_ms is not None
                and lv.throughput_rps > 0
            ):
                out.append(
                    Point(
                        m.server,
                        m.label,
                        lv.param,
                        lv.throughput_rps,
                        lv.p99_ms,
                        m.stage,
                        lv.slo_ok,
                    )
                )
    return out


def front(pts: list[Point]) -> list[Point]:
    """Non-dominated points (higher throughput and lower p99 are better), by throughput."""
    out = [
        p
        for p in pts
        if not any(
            (q.throughput_rps >= p.throughput_rps and q.p99_ms <= p.p99_ms)
            and (q.throughput_rps > p.throughput_rps or q.p99_ms < p.p99_ms)
            for q in pts
        )
    ]
    return sorted(out, key=lambda p: p.throughput_rps)


def pareto_plot(measurements: list[Measurement], slo_ms: float) -> Plot:
    pts = points(measurements)
    if not pts:
        return Plot(
            "pareto",
            "Throughput vs p99 per server (Pareto front)",
            "No valid measurement to plot.",
            None,
        )
    fig = go.Figure()
    for i, server in enumerate(sorted({p.server for p in pts})):
        mine = [p for p in pts if p.server == server]
        color = _color(i)
        fig.add_trace(
            go.Scatter(
                x=[p.throughput_rps for p in mine],
                y=[p.p99_ms for p in mine],
                mode="markers",
                name=f"{server}: all",
                marker={"color": color, "opacity": 0.35, "size": 7},
                text=[f"{p.label}<br>{p.param} ({p.stage})" for p in mine],
                hoverinfo="text+x+y",
            )
        )
        f = front(mine)
        fig.add_trace(
            go.Scatter(
                x=[p.throughput_rps for p in f],
                y=[p.p99_ms for p in f],
                mode="lines+markers",
                name=f"{server}: front",
                line={"color": color},
                marker={"color": color, "size": 9},
                text=[f"{p.label}<br>{p.param}" for p in f],
                hoverinfo="text+x+y",
            )
        )
    fig.add_hline(y=slo_ms, line_dash="dot", annotation_text=f"p99 SLO {slo_ms:g} ms")
    fig.update_xaxes(title_text="throughput (req/s)")
    fig.update_yaxes(title_text="p99 latency (ms)", type="log")
    note = (
        "Every valid, undisturbed load level of every measured configuration (screening, "
        "confirmation and grid); the line joins each server's non-dominated points."
    )
    return Plot("pareto", "Throughput vs p99 per server (Pareto front)", note, _layout(fig))
