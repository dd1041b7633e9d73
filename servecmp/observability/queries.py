"""The PromQL a run stores in ``prometheus/series.json`` so the report never needs Prometheus.

``report_queries()`` = every recorded series (by record name) + every dashboard panel query
(variables substituted for one namespace / run). ``fetch_series`` runs them as range queries
over the run window and returns a JSON-ready document::

    {"prometheus_url": ..., "start": 1700000000.0, "end": ..., "step": "1s",
     "queries": {"servecmp:requests:rate1m": {"expr": ..., "status": "success",
                                               "result": [{"metric": {...}, "values": [[t, "v"], ...]}]},
                 "servecmp-comparison#2A": {...}, ...}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from servecmp.observability import check, dashboards, rules
from servecmp.servers.base import ServerAdapter

SCHEMA_VERSION = 1


def report_queries(
    namespace: str = ".*", run: str = ".*", adapters: Sequence[ServerAdapter] | None = None
) -> dict[str, str]:
    """``adapters``: the servers whose series to store (default: ``registry.servers()``)."""
    q: dict[str, str] = {}
    sel = f'{{namespace=~"{namespace}"}}'
    for record in sorted(rules.recorded_names(adapters)):
        q[record] = record + sel
    for fn in dashboards.DASHBOARDS.values():
        d = fn(adapters)
        for pq in check.panel_queries(d):
            q[f"{pq.dashboard_uid}#{pq.panel_id}{pq.ref_id}"] = check.substitute(
                pq.expr, {"namespace": namespace, "run": run}
            )
    return q


def fetch_series(
    prometheus_url: str,
    start: float,
    end: float,
    *,
    step: str = "1s",
    queries: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "prometheus_url": prometheus_url,
        "start": start,
        "end": end,
        "step": step,
        "queries": {},
    }
    for key, expr in (queries if queries is not None else report_queries()).items():
        try:
            r = requests.get(
                f"{prometheus_url.rstrip('/')}/api/v1/query_range",
                params={"query": expr, "start": str(start), "end": str(end), "step": step},
                timeout=timeout,
            )
            body: dict[str, Any] = r.json()
        except (requests.RequestException, ValueError) as err:
            body = {"status": "error", "error": str(err)}
        entry: dict[str, Any] = {"expr": expr, "status": body.get("status", "error")}
        if body.get("status") == "success":
            entry["result"] = body["data"]["result"]
        else:
            entry["error"] = body.get("error", "unknown error")
            entry["result"] = []
        out["queries"][key] = entry
    return out


def write_series(path: Path, doc: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def load_series(path: Path) -> dict[str, Any]:
    """For the report: the stored document (raises FileNotFoundError when the run has none)."""
    return json.loads(Path(path).read_text())
