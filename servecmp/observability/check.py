"""Check dashboard panel queries against a live Prometheus: which parse, which return data.

    from servecmp.observability import check, dashboards
    empty = check.queries_without_data(dashboards.comparison_dashboard(), "http://127.0.0.1:9090",
                                       sources={"torchserve"})
    assert not empty, check.describe(empty)

Dashboard variables are substituted before querying (``$namespace``/``$run`` -> ``.*`` unless
given, ``$__rate_interval`` -> ``1m``). A panel query's *sources* (generator, each server's name,
resources) are found mechanically: metric names are read from ``name{`` selectors, recorded
series are expanded through the recording rules down to raw metric names, and a raw name maps to
the server whose adapter lists it (``ServerMetrics.names``), else to generator / resources by
prefix. The server list is injected (``adapters=``; default: ``registry.servers()``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from servecmp.observability import names as n
from servecmp.observability import rules
from servecmp.servers import registry
from servecmp.servers.base import ServerAdapter

_METRIC_RE = re.compile(r"(?<![\w:\"])(:?[A-Za-z_][A-Za-z0-9_:]*)\s*\{")

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def sources(adapters: Sequence[ServerAdapter] | None = None) -> tuple[str, ...]:
    """generator, every server's name, resources."""
    return ("generator", *(a.name for a in _servers(adapters)), "resources")


def _servers(adapters: Sequence[ServerAdapter] | None) -> tuple[ServerAdapter, ...]:
    return tuple(registry.servers() if adapters is None else adapters)


@dataclass(frozen=True)
class PanelQuery:
    dashboard_uid: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return (
            f"{self.dashboard_uid}#{self.panel_id} {self.panel_title!r} {self.ref_id}: {self.expr}"
        )


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every Prometheus query of every panel (including panels nested in collapsed rows)."""
    out: list[PanelQuery] = []

    def walk(panels: Iterable[Mapping[str, Any]]) -> None:
        for p in panels:
            for t in p.get("targets") or []:
                if "expr" in t:
                    out.append(
                        PanelQuery(
                            dashboard.get("uid", ""),
                            p["id"],
                            p.get("title", ""),
                            t["refId"],
                            t["expr"],
                        )
                    )
            walk(p.get("panels") or [])

    walk(dashboard.get("panels") or [])
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names selected in ``expr`` (every selector must carry braces: ``name{...}``)."""
    return set(_METRIC_RE.findall(expr))


_SELECTOR_RE = re.compile(r"(?<![\w:\"])(:?[A-Za-z_][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_SERVER_EQ_RE = re.compile(r'(?:^|,)\s*server\s*=\s*"([^"]*)"')


def _rule_index(
    adapters: Sequence[ServerAdapter] | None = None,
) -> dict[str, list[tuple[str | None, str]]]:
    """record -> [(server the rule is about, or None for server-neutral rules, expr)]."""
    srv = {f"servecmp.{a.name}": a.name for a in _servers(adapters)}
    idx: dict[str, list[tuple[str | None, str]]] = {}
    for g in rules.rule_groups(adapters)["groups"]:
        for r in g["rules"]:
            idx.setdefault(r["record"], []).append((srv.get(g["name"]), r["expr"]))
    return idx


def raw_metric_names(expr: str, adapters: Sequence[ServerAdapter] | None = None) -> set[str]:
    """Metric names after expanding recorded series through the recording rules. A selector with
    ``server="x"`` on a server-neutral record expands only server x's rule."""
    idx = _rule_index(adapters)
    seen: set[tuple[str, str | None]] = set()
    raw: set[str] = set()
    todo: list[tuple[str, str | None]] = []

    def push(e: str) -> None:
        for name, body in _SELECTOR_RE.findall(e):
            m = _SERVER_EQ_RE.search(body)
            todo.append((name, m.group(1) if m else None))

    push(expr)
    while todo:
        name, server = todo.pop()
        if (name, server) in seen:
            continue
        seen.add((name, server))
        if name in idx:
            for rule_server, e in idx[name]:
                if server is None or rule_server is None or rule_server == server:
                    push(e)
        else:
            raw.add(name)
    return raw


def source_of(metric: str, adapters: Sequence[ServerAdapter] | None = None) -> str:
    """generator | <server name> (a name its adapter's ServerMetrics lists) | resources | unknown."""
    base = metric
    for suffix in _HISTOGRAM_SUFFIXES:
        base = base.removesuffix(suffix)
    for a in _servers(adapters):
        if a.metrics is not None and (
            metric in a.metrics.names.values() or base in a.metrics.names.values()
        ):
            return a.name
    if metric.startswith(("servecmp_process_", "container_")):
        return "resources"
    if metric.startswith(n.PREFIX):
        return "generator"
    return "unknown"


def query_sources(expr: str, adapters: Sequence[ServerAdapter] | None = None) -> set[str]:
    """generator | <server name> | resources (| unknown) behind a query."""
    return {source_of(m, adapters) for m in raw_metric_names(expr, adapters)}


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    v = {
        "namespace": ".*",
        "run": ".*",
        "__rate_interval": "1m",
        "__interval": "15s",
        **(variables or {}),
    }
    for k in sorted(v, key=len, reverse=True):
        expr = expr.replace("${" + k + "}", v[k]).replace("$" + k, v[k])
    return expr


def query(
    prometheus_url: str, expr: str, at: float | None = None, timeout: float = 10.0
) -> dict[str, Any]:
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
    adapters: Sequence[ServerAdapter] | None = None,
) -> list[PanelQuery]:
    """Panel queries (restricted to those touching any of ``sources``) that return no series now
    (or at unix time ``at``). A query that fails to parse counts as returning no data."""
    wanted = set(sources) if sources is not None else None
    empty = []
    for pq in panel_queries(dashboard):
        if wanted is not None and not (query_sources(pq.expr, adapters) & wanted):
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
    adapters: Sequence[ServerAdapter] | None = None,
) -> list[PanelQuery]:
    """Poll ``queries_without_data`` until it is empty or ``timeout_s``; returns the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        empty = queries_without_data(
            dashboard, prometheus_url, sources=sources, variables=variables, adapters=adapters
        )
        if not empty or time.monotonic() > deadline:
            return empty
        time.sleep(poll_s)


def describe(queries: Iterable[PanelQuery]) -> str:
    return "\n".join(f"  - {q}" for q in queries)
