"""Dashboards as code: committed JSON matches the code; ids, refIds, descriptions, queries are sound."""

from __future__ import annotations

import json

import pytest

from servecmp.observability import check, dashboards, rules
from servecmp.observability import names as n


def _all():
    return {name: fn() for name, fn in dashboards.DASHBOARDS.items()}


def _panels(d):
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def test_committed_json_matches_code():
    drift = [
        name
        for name, text in dashboards.rendered().items()
        if not (dashboards.OUT_DIR / name).exists() or (dashboards.OUT_DIR / name).read_text() != text
    ]
    assert not drift, f"{drift} drift: run `python -m servecmp.observability.dashboards --write`"


def test_check_command_reports_drift(tmp_path, monkeypatch):
    monkeypatch.setattr(dashboards, "OUT_DIR", tmp_path)
    assert dashboards.main(["--check"]) == 1
    assert dashboards.main(["--write"]) == 0
    assert dashboards.main(["--check"]) == 0
    (tmp_path / "servecmp-generator.json").write_text("{}")
    assert dashboards.main(["--check"]) == 1


def test_output_is_sorted_and_stable():
    for name, text in dashboards.rendered().items():
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", name
        assert text == dashboards.rendered()[name]


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_ids_refids_descriptions(name):
    d = _all()[name]
    assert d["uid"] in ("servecmp-comparison", "servecmp-generator")
    ids = [p["id"] for p in _panels(d)]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in _panels(d):
        if p["type"] == "row":
            continue
        assert p.get("description", "").strip(), f"panel {p['id']} {p['title']} has no description"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), f"panel {p['id']}: refIds {refs}"
        assert all(t.get("refId") for t in p["targets"])
    names = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "namespace", "run"} <= names


def test_comparison_layout():
    d = dashboards.comparison_dashboard()
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    for pair in ("torchserve / rest", "torchserve / grpc", "tfserving / rest", "tfserving / grpc"):
        assert pair in rows
    titles = {p["title"] for p in _panels(d)}
    for t in ("Client p50 latency", "Client p95 latency", "Client p99 latency", "Throughput",
              "Error ratio", "Wrong-answer ratio", "Server-side latency", "Queue time",
              "CPU per server", "Memory per server"):
        assert t in titles


def test_every_query_names_known_series():
    known_raw = {
        v for k, v in vars(n).items() if isinstance(v, str) and (k.startswith(("GEN_", "PROC_", "TS_", "TFS_", "CADVISOR_")))
    }
    recorded = rules.recorded_names()
    for d in _all().values():
        for q in check.panel_queries(d):
            names = check.metric_names(q.expr)
            assert names, f"no `name{{` selector found in {q}"
            for m in names:
                assert m in recorded or m in known_raw, f"{q}: unknown series {m}"
            assert "unknown" not in check.query_sources(q.expr), q
            assert 'namespace=~"$namespace"' in q.expr, q


def test_generator_dashboard_is_generator_only():
    for q in check.panel_queries(dashboards.generator_dashboard()):
        assert check.query_sources(q.expr) == {"generator"}, q
