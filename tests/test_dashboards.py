"""Dashboards as code: committed JSON matches the code; ids, refIds, descriptions, queries are sound."""

from __future__ import annotations

import json

import adapters_for_tests as ta
import pytest

from servecmp.observability import check, dashboards
from servecmp.servers import registry

# Default = the registry's servers: the committed JSON must be what `servecmp gen dashboards`
# writes from them. Label-dependent tests name their adapters (tests/adapters_for_tests.py).
TWO = [ta.TORCHSERVE, ta.TFSERVING]


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
        if not (dashboards.OUT_DIR / name).exists()
        or (dashboards.OUT_DIR / name).read_text() != text
    ]
    assert not drift, f"{drift} drift: run `servecmp gen dashboards`"


def test_check_command_reports_drift(tmp_path, monkeypatch):
    monkeypatch.setattr(dashboards, "OUT_DIR", tmp_path)
    assert dashboards.generate(check=True) == 1
    assert dashboards.generate(check=False) == 0
    assert dashboards.generate(check=True) == 0
    (tmp_path / "servecmp-generator.json").write_text("{}")
    assert dashboards.generate(check=True) == 1


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
    d = dashboards.comparison_dashboard(TWO)
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == [
        "Side by side (every target)",
        "TorchServe (torchserve)",
        "TF Serving (tfserving)",
    ]
    titles = {p["title"] for p in _panels(d)}
    for t in (
        "Client p50 latency",
        "Client p95 latency",
        "Client p99 latency",
        "Throughput",
        "Error ratio",
        "Wrong-answer ratio",
        "Server-side latency",
        "Queue time",
        "CPU per server",
        "Memory per server",
    ):
        assert t in titles


def test_one_row_per_server_from_the_injected_adapters():
    """Three servers in -> three server rows (ids 100, 200, 300), each filtering its own series;
    the rows of the first two do not move when a server is added at the end."""
    three = dashboards.comparison_dashboard([ta.TORCHSERVE, ta.TFSERVING, ta.KSERVE])
    two = dashboards.comparison_dashboard([ta.TORCHSERVE, ta.TFSERVING])
    rows = {p["id"]: p["title"] for p in three["panels"] if p["type"] == "row"}
    assert rows == {
        1: "Side by side (every target)",
        100: "TorchServe (torchserve)",
        200: "TF Serving (tfserving)",
        300: "KServe (kserve)",
    }
    assert three["uid"] == two["uid"] == "servecmp-comparison"
    kserve = [p for p in three["panels"] if 300 < p["id"] < 400]
    assert kserve and all('server="kserve"' in t["expr"] for p in kserve for t in p["targets"])
    # KServe's test metrics have no latency: its row has no server-side latency panel
    assert {p["title"] for p in kserve} == {
        "kserve: client latency",
        "kserve: throughput and failures",
        "kserve: requests the server counted",
    }
    by_id = {p["id"]: p for p in two["panels"]}
    for p in three["panels"]:
        if p["id"] < 300 and p["id"] not in (1, 8):  # 8's description lists every server's note
            assert by_id[p["id"]] == p, p["id"]


def test_default_is_the_registry(monkeypatch):
    assert dashboards.rendered() == dashboards.rendered(registry.servers())
    ta.use(monkeypatch, ta.WITH_KSERVE)
    try:
        rows = [
            p["title"] for p in dashboards.comparison_dashboard()["panels"] if p["type"] == "row"
        ]
    finally:
        registry.get.cache_clear()
    assert rows[-1] == "KServe (kserve)"


def test_check_command_uses_injected_adapters(tmp_path, monkeypatch):
    monkeypatch.setattr(dashboards, "OUT_DIR", tmp_path)
    assert dashboards.generate(check=False, adapters=[ta.TORCHSERVE, ta.TFSERVING, ta.KSERVE]) == 0
    assert dashboards.generate(check=True, adapters=[ta.TORCHSERVE, ta.TFSERVING, ta.KSERVE]) == 0
    assert dashboards.generate(check=True, adapters=TWO) == 1  # two servers: a row less


def test_server_panels_trace_to_their_own_server():
    """A server row's queries expand (through the rules) to that server's metrics only."""
    d = dashboards.comparison_dashboard(TWO)
    for p in _panels(d):
        for t in p.get("targets") or []:
            src = check.query_sources(t["expr"], TWO)
            if 100 < p["id"] < 200:
                assert src <= {"generator", "torchserve"}, (p["title"], src)
            elif 200 < p["id"] < 300:
                assert src <= {"generator", "tfserving"}, (p["title"], src)


def test_generator_dashboard_is_generator_only():
    for q in check.panel_queries(dashboards.generator_dashboard()):
        assert check.query_sources(q.expr) == {"generator"}, q
