"""Check dashboard panel queries against a live Prometheus: which parse, which return data.

    from servecmp.observability import check, dashboards
    empty = check.queries_without_data(dashboards.comparison_dashboard(), "http://127.0.0.1:9090",
                                       sources={"torchserve"})
    assert not empty, check.describe(empty)

Dashboard variables are substituted before querying (``$namespace``/``$run`` -> ``.*`` unless
given, ``$__rate_interval`` -> ``1m``). A panel query's *sources* (generator, torchserve, tfserving,
resources) are found mechanically: metric names are read from ``name{`` selectors, recorded
series are expanded through the recording rules down to raw metric names, and raw names map
to sources by prefix.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from servecmp.observability import names as n
from servecmp.observability import rules

_METRIC_RE = re.compile(r"(?<![\w:\"])(:?[A-Za-z_][A-Za-z0-9_:]*)\s*\{")

SOURCES = ("generator", "torchserve", "tfserving", "resources")


@dataclass(frozen=True)
class PanelQuery:
    dashboard_uid: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard_uid}#{self.panel_id} {self.panel_title!r} {self.ref_id}: {self.expr}"


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every Prometheus query of every panel (including panels nested in collapsed rows)."""
    out: list[PanelQuery] = []

    def walk(panels: Iterable[Mapping[str, Any]]) -> None:
        for p in panels:
            for t in p.get("targets") or []:
                if "expr" in t:
                    out.append(
                        PanelQuery(dashboard.get("uid", ""), p["id"], p.get("title", ""), t["refId"], t["expr"])
                    )
            walk(p.get("panels") or [])

    walk(dashboard.get("panels") or [])
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names selected in ``expr`` (every selector must carry braces: ``name{...}``)."""
    return set(_METRIC_RE.findall(expr))


def _rule_index() -> dict[str, list[str]]:
    idx: dict[str, list[str]] = {}
    for r in rules.all_rules():
        idx.setdefault(r["record"], []).append(r["expr"])
    return idx


def raw_metric_names(expr: str) -> set[str]:
    """Metric names after expanding recorded series through the recording rules."""
    idx = _rule_index()
    seen: set[str] = set()
    raw: set[str] = set()
    todo = list(metric_names(expr))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in idx:
            for e in idx[name]:
                todo.extend(metric_names(e))
        else:
            raw.add(name)
    return raw


def source_of(metric: str) -> str:
    if metric.startswith("ts_"):
        return "torchserve"
    if metric.startswith(":tensorflow:serving:"):
        return "tfserving"
    if metric.startswith(("servecmp_process_", "container_")):
        return "resources"
    if metric.startswith(n.PREFIX):
        return "generator"
    return "unknown"


def query_sources(expr: str) -> set[str]:
    """generator | torchserve | tfserving | resources (| unknown) behind a query."""
    return {source_of(m) for m in raw_metric_names(expr)}


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    v = {"namespace": ".*", "run": ".*", "__rate_interval": "1m", "__interval": "15s", **(variables or {})}
    for k in sorted(v, key=len, reverse=True):
        expr = expr.replace("${" + k + "}", v[k]).replace("$" + k, v[k])
    return expr


def query(prometheus_url: str, expr: str, at: float | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Instant query; returns Prometheus' JSON (``status`` error with ``error`` on a parse error)."""
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = at
    r = requests.get(f"{prometheus_url.rstrip('/')}/api/v1/query", params=params, timeout=timeout)
    return r.json()


def parse_errors(dashboard: Mapping[str, Any], prometheus_url: str) -> list[tuple[PanelQuery, str]]:
    """Panel queries Prometheus rejects (bad PromQL), with its error message."""
    bad = []
    for pq in panel_queries(dashboard):
        res = query(prometheus_url, substitute(pq.expr))
        if res.get("status") != "success":
            bad.append((pq, str(res.get("error"))))
    return bad


def queries_without_data(
    dashboard: Mapping[str, Any],
    prometheus_url: str,
    *,
    sources: Iterable[str] | None = None,
    variables: Mapping[str, str] | None = None,
    at: float | None = None,
) -> list[PanelQuery]:
    """Panel queries (restricted to those touching any of ``sources``) that return no series now
    (or at unix time ``at``). A query that fails to parse counts as returning no data."""
    wanted = set(sources) if sources is not None else None
    empty = []
    for pq in panel_queries(dashboard):
        if wanted is not None and not (query_sources(pq.expr) & wanted):
            continue
        res = query(prometheus_url, substitute(pq.expr, variables), at)
        if res.get("status") != "success" or not res["data"]["result"]:
            empty.append(pq)
    return empty


def wait_for_data(
    dashboard: Mapping[str, Any],
    prometheus_url: str,
    *,
    sources: Iterable[str] | None = None,
    variables: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    poll_s: float = 1.0,
) -> list[PanelQuery]:
    """Poll ``queries_without_data`` until it is empty or ``timeout_s``; returns the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        empty = queries_without_data(dashboard, prometheus_url, sources=sources, variables=variables)
        if not empty or time.monotonic() > deadline:
            return empty
        time.sleep(poll_s)


def describe(queries: Iterable[PanelQuery]) -> str:
    return "\n".join(f"  - {q}" for q in queries)
