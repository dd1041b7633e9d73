"""Grafana dashboards as code (grafana-foundation-sdk 11.6): source of helm/servecmp/dashboards/*.json.

    servecmp gen dashboards           # regenerate the committed JSON
    servecmp gen dashboards --check   # exit 1 when the committed JSON drifts

Two dashboards, fixed uids:
- ``servecmp-comparison`` "Serving comparison": side-by-side panels (client p50/p95/p99,
  throughput, error and wrong-answer ratio, server-side latency, queue time, CPU, memory), then one
  row per registered server (its targets over every protocol, its own metrics from its adapter).
- ``servecmp-generator`` "Load generator health": its CPU per process, late sends, in-flight,
  request rate and outcomes per target, memory.

The server list is injected (``adapters=``; default: ``registry.servers()``).
Conventions: panels read recorded series (servecmp/observability/rules.py) where one exists;
every selector carries braces (``metric{...}``) so tools find metric names mechanically; panel ids
and refIds are explicit; every panel has a description; shared defaults live in ``_panel``.
Variables: ``datasource``, ``namespace`` (``local`` for local runs) and ``run`` (generator series
only: server metrics carry no run label).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.builders import timeseries as tb
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from servecmp.observability import names as n
from servecmp.servers import registry
from servecmp.servers.base import ServerAdapter

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "helm" / "servecmp" / "dashboards"

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
GEN = 'namespace=~"$namespace", run=~"$run"'  # generator series
SRV = 'namespace=~"$namespace"'  # server / resource series (no run label)
GENERATOR_CPU_LIMIT = 0.9  # experiment load.generator_cpu_limit default


@dataclass(frozen=True)
class Query:
    ref_id: str
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    id: int
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    width: int = 8
    height: int = 8
    stack: bool = False
    max_value: float | None = None
    threshold: float | None = None  # a red line (e.g. the generator CPU limit)


@dataclass
class RowSpec:
    id: int
    title: str
    panels: list[PanelSpec] = field(default_factory=list)


def _q(*queries: tuple[str, str]) -> tuple[Query, ...]:
    return tuple(Query(chr(ord("A") + i), expr, legend) for i, (expr, legend) in enumerate(queries))


# ---- shared panel defaults ------------------------------------------------------------------
def _panel(spec: PanelSpec) -> tb.Panel:
    p = (
        tb.Panel()
        .id(spec.id)
        .title(spec.title)
        .description(spec.description)
        .datasource(DS)
        .unit(spec.unit)
        .min(0)
        .height(spec.height)
        .span(spec.width)
        .line_width(1)
        .fill_opacity(10 if not spec.stack else 40)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
        )
    )
    if spec.max_value is not None:
        p = p.max(spec.max_value)
    if spec.stack:
        p = p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    steps = [dm.Threshold(value=None, color="green")]
    if spec.threshold is not None:
        steps.append(dm.Threshold(value=spec.threshold, color="red"))
        p = p.thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE)
        )
    p = p.thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
    for q in spec.queries:
        p = p.with_target(
            pb.Dataquery()
            .ref_id(q.ref_id)
            .expr(q.expr)
            .legend_format(q.legend)
            .range()
            .datasource(DS)
        )
    return p


def _variables() -> list[Any]:
    ds = db.DatasourceVariable("datasource").label("Data source").type("prometheus")
    ns = (
        db.QueryVariable("namespace")
        .label("Namespace")
        .description("Kubernetes namespace of the run; `local` for local runs.")
        .datasource(DS)
        .query({"query": f"label_values({n.R_REQUESTS}, namespace)", "refId": "namespace"})
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(".*")
        .multi(True)
    )
    run = (
        db.QueryVariable("run")
        .label("Run")
        .description("Run id (load generator series only; server metrics carry no run label).")
        .datasource(DS)
        .query(
            {
                "query": f'label_values({n.R_REQUESTS}{{namespace=~"$namespace"}}, run)',
                "refId": "run",
            }
        )
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_DESC)
        .include_all(True)
        .all_value(".*")
        .multi(True)
    )
    return [ds, ns, run]


def _dashboard(
    uid: str, title: str, description: str, rows: list[RowSpec], tags: list[str]
) -> dict[str, Any]:
    d = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(tags)
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
        .variables(_variables())
    )
    for row in rows:
        r = db.Row(row.title).id(row.id)
        d = d.with_row(r)
        for spec in row.panels:
            d = d.with_panel(_panel(spec))
    return json.loads(json.dumps(d.build(), cls=JSONEncoder))


# ---- Serving comparison -----------------------------------------------------------------------
def _notes(srv: Sequence[ServerAdapter]) -> str:
    return "; ".join(
        f"{a.label}: {a.metrics.note}" for a in srv if a.metrics is not None and a.metrics.note
    )


def _side_by_side(srv: Sequence[ServerAdapter]) -> RowSpec:
    row = RowSpec(1, "Side by side (every target)")
    for i, (q, rec) in enumerate(sorted(n.R_CLIENT_P.items())):
        row.panels.append(
            PanelSpec(
                2 + i,
                f"Client p{q} latency",
                f"p{q} of successful (outcome=ok) request latency seen by the load generator, per "
                "target, from its histogram over 1m (`servecmp_request_duration_seconds`). "
                "Transport errors and wrong answers are excluded; see the ratio panels.",
                "s",
                _q((f"{rec}{{{GEN}}}", "{{target}}")),
            )
        )
    row.panels += [
        PanelSpec(
            5,
            "Throughput",
            "Completed requests per second per target (all outcomes), as counted by the load generator.",
            "reqps",
            _q((f"{n.R_REQUESTS}{{{GEN}}}", "{{target}}")),
        ),
        PanelSpec(
            6,
            "Error ratio",
            "Share of requests that failed in transport (connection error, timeout, non-2xx / "
            "non-OK status) per target, over 1m.",
            "percentunit",
            _q((f"{n.R_ERROR_RATIO}{{{GEN}}}", "{{target}}")),
        ),
        PanelSpec(
            7,
            "Wrong-answer ratio",
            "Share of responses whose logits did not match the expected ones within payload.atol, "
            "per target, over 1m. Should be 0: anything else invalidates the comparison.",
            "percentunit",
            _q((f"{n.R_WRONG_RATIO}{{{GEN}}}", "{{target}}")),
        ),
        PanelSpec(
            8,
            "Server-side latency",
            "Latency each server reports itself (its adapter's metrics: servecmp/servers/<name>/metrics.py): "
            "the mean for every server, p50/p99 where the server has a histogram. What each "
            "includes: " + _notes(srv) + ".",
            "s",
            _q(
                (f"{n.R_SERVER_LATENCY_MEAN}{{{SRV}}}", "{{server}} {{protocol}} mean"),
                (f"{n.R_SERVER_LATENCY_P[50]}{{{SRV}}}", "{{server}} {{protocol}} p50"),
                (f"{n.R_SERVER_LATENCY_P[99]}{{{SRV}}}", "{{server}} {{protocol}} p99"),
            ),
            width=12,
        ),
        PanelSpec(
            9,
            "Queue time",
            "Mean time requests wait before the model runs, as each server reports it (absent for "
            "a server without a queue metric; what each measures is in its row's server-side "
            "latency panel).",
            "s",
            _q((f"{n.R_SERVER_QUEUE_MEAN}{{{SRV}}}", "{{server}} {{model_name}} mean")),
            width=12,
        ),
        PanelSpec(
            10,
            "CPU per server",
            "CPU cores used by each server: psutil over its whole process tree locally (every "
            "worker included), cAdvisor container usage on Kubernetes. Compare with resources.cpus.",
            "none",
            _q((f"sum by (server) ({n.R_SERVER_CPU}{{{SRV}}})", "{{server}}")),
            width=12,
        ),
        PanelSpec(
            11,
            "Memory per server",
            "Memory per server: resident set size of the process tree locally, container working "
            "set on Kubernetes (not the same measure: compare servers within one environment).",
            "bytes",
            _q((f"sum by (server) ({n.R_SERVER_MEM}{{{SRV}}})", "{{server}}")),
            width=12,
        ),
    ]
    return row


def _server_row(k: int, a: ServerAdapter) -> RowSpec:
    """Row ``k`` (ids 100*k ...): one server, every protocol it speaks."""
    base = 100 * k
    f = f'{GEN}, server="{a.name}"'
    fs = f'{SRV}, server="{a.name}"'
    row = RowSpec(base, f"{a.label} ({a.name})")
    row.panels.append(
        PanelSpec(
            base + 1,
            f"{a.name}: client latency",
            f"Client-side p50/p95/p99 of successful requests to {a.label}, per target (protocol "
            "and encoding).",
            "s",
            _q(*((f"{n.R_CLIENT_P[q]}{{{f}}}", f"{{{{target}}}} p{q}") for q in (50, 95, 99))),
        )
    )
    row.panels.append(
        PanelSpec(
            base + 2,
            f"{a.name}: throughput and failures",
            f"Requests per second to {a.label} by target and outcome (ok, transport_error, "
            "wrong_answer), stacked.",
            "reqps",
            _q((f"{n.R_OUTCOMES}{{{f}}}", "{{target}} {{outcome}}")),
            stack=True,
        )
    )
    m = a.metrics
    if m is not None:
        queries = [(f"{n.R_SERVER_REQUESTS}{{{fs}}}", "{{model_name}} answered req/s")]
        latency = []
        if m.latency_mean_s:
            latency.append(
                (f"{n.R_SERVER_LATENCY_MEAN}{{{fs}}}", "{{model_name}} {{protocol}} mean")
            )
        if m.latency_quantile_s:
            latency += [
                (f"{n.R_SERVER_LATENCY_P[q]}{{{fs}}}", f"{{{{model_name}}}} {{{{protocol}}}} p{q}")
                for q in (50, 95, 99)
            ]
        if m.queue_mean_s:
            latency.append((f"{n.R_SERVER_QUEUE_MEAN}{{{fs}}}", "{{model_name}} queue mean"))
        latency += [
            (f"{n.r_server_extra(key)}{{{fs}}}", "{{model_name}} " + key.replace("_seconds:", " "))
            for key in sorted(m.extra)
            if "seconds" in key
        ]
        if latency:
            row.panels.append(
                PanelSpec(
                    base + 3,
                    f"{a.name}: server-side latency",
                    f"{a.label}'s own latency ({m.note or 'as it reports it'}).",
                    "s",
                    _q(*latency),
                )
            )
        row.panels.append(
            PanelSpec(
                base + 4,
                f"{a.name}: requests the server counted",
                f"Requests per second {a.label} counted itself, to set beside the load generator's "
                "count (a large gap means requests were lost or counted elsewhere).",
                "reqps",
                _q(*queries),
            )
        )
    return row


def _server_rows(srv: Sequence[ServerAdapter]) -> list[RowSpec]:
    """One row per server, in registry order (ids 100, 200, ...: stable while servers are added
    at the end of the registry)."""
    return [_server_row(k, a) for k, a in enumerate(srv, start=1)]


def _servers(adapters: Sequence[ServerAdapter] | None) -> tuple[ServerAdapter, ...]:
    """The servers to draw: the registry's unless a list is injected (tests, tools)."""
    return tuple(registry.servers() if adapters is None else adapters)


def comparison_dashboard(adapters: Sequence[ServerAdapter] | None = None) -> dict[str, Any]:
    srv = _servers(adapters)
    return _dashboard(
        "servecmp-comparison",
        "Serving comparison",
        " vs ".join(a.label for a in srv) + " serving the same model with the same budget: "
        "client-side latency, throughput and correctness from the load generator, server-side "
        "latency and resources from each server. One row per server.",
        [_side_by_side(srv), *_server_rows(srv)],
        ["servecmp"],
    )


# ---- Load generator health --------------------------------------------------------------------
def generator_dashboard(adapters: Sequence[ServerAdapter] | None = None) -> dict[str, Any]:
    row = RowSpec(1, "Load generator")
    row.panels = [
        PanelSpec(
            2,
            "Generator CPU per process",
            "CPU cores used by each load generator process. A process near 1 core (red line: "
            "load.generator_cpu_limit) means the generator, not the server, limits the step.",
            "none",
            _q((f"{n.R_GEN_CPU}{{{GEN}}}", "{{instance}} pid {{pid}}")),
            threshold=GENERATOR_CPU_LIMIT,
        ),
        PanelSpec(
            3,
            "Late sends",
            "Share of requests sent later than planned by more than load.late_threshold_ms, per "
            "target (open loop). Above load.late_send_tolerance the step is invalid.",
            "percentunit",
            _q((f"{n.R_LATE_RATIO}{{{GEN}}}", "{{target}}")),
        ),
        PanelSpec(
            4,
            "In-flight requests",
            "Requests sent and not yet answered, per target, summed over generator processes.",
            "none",
            _q((f"sum by (target) ({n.GEN_IN_FLIGHT}{{{GEN}}})", "{{target}}")),
        ),
        PanelSpec(
            5,
            "Request rate per target",
            "Completed requests per second per target, all outcomes.",
            "reqps",
            _q((f"{n.R_REQUESTS}{{{GEN}}}", "{{target}}")),
        ),
        PanelSpec(
            6,
            "Outcomes per target",
            "Requests per second per target by outcome (ok, transport_error, wrong_answer), stacked.",
            "reqps",
            _q((f"{n.R_OUTCOMES}{{{GEN}}}", "{{target}} {{outcome}}")),
            stack=True,
        ),
        PanelSpec(
            7,
            "Generator memory per process",
            "Resident memory of each live load generator process.",
            "bytes",
            _q((f"sum by (instance, pid) ({n.GEN_RSS}{{{GEN}}})", "{{instance}} pid {{pid}}")),
        ),
    ]
    return _dashboard(
        "servecmp-generator",
        "Load generator health",
        "Is the load generator itself a bottleneck? Its CPU per process, late sends, in-flight "
        "requests and request rate per target.",
        [row],
        ["servecmp"],
    )


DASHBOARDS: dict[str, Callable[..., dict[str, Any]]] = {
    "servecmp-comparison.json": comparison_dashboard,
    "servecmp-generator.json": generator_dashboard,
}


def render(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, sort_keys=True) + "\n"


def rendered(adapters: Sequence[ServerAdapter] | None = None) -> dict[str, str]:
    return {name: render(fn(adapters)) for name, fn in DASHBOARDS.items()}


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def generate(check: bool, adapters: Sequence[ServerAdapter] | None = None) -> int:
    """Write the dashboards (``servecmp gen dashboards``) or, with ``check``, exit status 1 when
    the committed JSON drifts (``--check``)."""
    drift = []
    for name, text in rendered(adapters).items():
        path = OUT_DIR / name
        if not check:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {_rel(path)}")
        elif not path.exists() or path.read_text() != text:
            drift.append(_rel(path))
    if drift:
        print(
            f"{', '.join(drift)} drift(s) from servecmp/observability/dashboards.py; run `servecmp gen dashboards`",
            file=sys.stderr,
        )
        return 1
    if check:
        print("dashboards are up to date")
    return 0
