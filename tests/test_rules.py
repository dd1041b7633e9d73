"""Recording rules: committed file matches the code, promtool accepts it, promtool unit tests on
realistic series in both servers' real formats pass, and every TF Serving panel is covered."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import adapters_for_tests as ta
import pytest
import yaml

from servecmp.observability import check, dashboards, rules
from servecmp.observability import names as n
from servecmp.servers.base import Wire

# Default = the registry's servers: the committed file must be what `servecmp gen rules` writes
# from them, and the promtool tests cover those rules. Adapter-specific tests name their adapters
# (tests/adapters_for_tests.py).

REPO = Path(__file__).resolve().parents[1]
PROMTOOL_DIR = REPO / "tests" / "promtool"
RULES_TEST = PROMTOOL_DIR / "rules_test.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="promtool not installed (apt-get install prometheus)"
)


def _fixture_module():
    spec = importlib.util.spec_from_file_location(
        "make_rules_test", PROMTOOL_DIR / "make_rules_test.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_rules_match_code():
    assert rules.RULES_PATH.read_text() == rules.render(), (
        "helm/servecmp/files/recording-rules.yaml drifts: run `servecmp gen rules`"
    )


def test_committed_promtool_tests_match_generator():
    assert RULES_TEST.read_text() == _fixture_module().render(), (
        "tests/promtool/rules_test.yaml drifts: run `python tests/promtool/make_rules_test.py`"
    )


def test_rule_file_is_plain_prometheus_format():
    doc = yaml.safe_load(rules.RULES_PATH.read_text())
    assert set(doc) == {"groups"}
    for g in doc["groups"]:
        for r in g["rules"]:
            assert set(r) <= {"record", "expr", "labels"}
            assert re.fullmatch(r"[a-z_]+(:[a-z0-9_]+)+", r["record"]), r["record"]


@pytest.mark.prometheus
@needs_promtool
def test_promtool_check_rules():
    res = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules.RULES_PATH)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # promtool 2.42 exits 0 on lint findings; a duplicate rule (same record, same static labels)
    # would record one server's series over another's
    assert "FAILED" not in res.stdout + res.stderr, res.stdout + res.stderr


@pytest.mark.prometheus
@needs_promtool
def test_promtool_unit_tests_pass():
    res = subprocess.run(
        [PROMTOOL, "test", "rules", RULES_TEST.name],
        cwd=PROMTOOL_DIR,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _promtool_doc() -> dict:
    return yaml.safe_load(RULES_TEST.read_text())


def _input_metric_names() -> set[str]:
    names = set()
    for t in _promtool_doc()["tests"]:
        for s in t["input_series"]:
            names.add(s["series"].split("{")[0])
    return names


def _tested_records() -> set[str]:
    out = set()
    for t in _promtool_doc()["tests"]:
        for e in t.get("promql_expr_test", []):
            out |= check.metric_names(e["expr"]) | set(
                re.findall(r"servecmp:[a-z0-9_:]+", e["expr"])
            )
    return out


def _all_panel_queries():
    for fn in dashboards.DASHBOARDS.values():
        yield from check.panel_queries(fn())


def test_every_tfserving_panel_metric_is_in_promtool_input():
    """No TF Serving binary here: each metric behind a TF Serving panel must be exercised by the
    promtool unit tests instead (raw names after expanding recording rules)."""
    tf_queries = [q for q in _all_panel_queries() if "tfserving" in check.query_sources(q.expr)]
    assert tf_queries, "the comparison dashboard has TF Serving panels"
    inputs = _input_metric_names()
    missing = {
        (str(q), m)
        for q in tf_queries
        for m in check.raw_metric_names(q.expr)
        if check.source_of(m) == "tfserving" and m not in inputs
    }
    assert not missing, missing


def test_every_recorded_series_used_by_a_panel_is_unit_tested():
    tested = _tested_records()
    used = {
        m
        for q in _all_panel_queries()
        for m in check.metric_names(q.expr)
        if m in rules.recorded_names()
    }
    assert used
    assert not (used - tested), sorted(used - tested)
    # and every record at all has an expectation
    assert not (rules.recorded_names() - tested), sorted(rules.recorded_names() - tested)


def test_promtool_input_uses_real_torchserve_names():
    """The TorchServe input series use the names and label keys of the captured 0.12.0 exposition."""
    captured = (PROMTOOL_DIR / "torchserve-0.12.0-metrics.txt").read_text()
    real = {}
    for line in captured.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            real[name] = set(re.findall(r"(\w+)=", rest.split("}")[0]))
    for t in _promtool_doc()["tests"]:
        for s in t["input_series"]:
            name = s["series"].split("{")[0]
            if name.startswith("ts_"):
                assert name in real, name
                keys = set(re.findall(r"(\w+)=", s["series"].split("{", 1)[1]))
                assert real[name] <= keys, (name, real[name] - keys)


def test_one_group_per_injected_server_under_server_neutral_names():
    doc = rules.rule_groups([ta.TORCHSERVE, ta.TFSERVING, ta.KSERVE])
    names = [g["name"] for g in doc["groups"]]
    assert names == [
        "servecmp.generator",
        "servecmp.torchserve",
        "servecmp.tfserving",
        "servecmp.kserve",
        "servecmp.resources",
    ]
    kserve = next(g for g in doc["groups"] if g["name"] == "servecmp.kserve")["rules"]
    # only what its metrics declare: requests, no latency
    assert [r["record"] for r in kserve] == [n.R_SERVER_REQUESTS]
    assert (
        kserve[0]["expr"]
        == "sum by (namespace, model_name) (rate(request_predict_seconds_count{}[1m]))"
    )
    assert kserve[0]["labels"] == {"server": "kserve"}
    cadvisor = [
        r
        for r in next(g for g in doc["groups"] if g["name"] == "servecmp.resources")["rules"]
        if r["labels"]["source"] == "cadvisor"
    ]
    assert all('container=~"torchserve|tfserving|kserve"' in r["expr"] for r in cadvisor)


def test_container_named_unlike_the_server_is_mapped_back(monkeypatch):
    class Renamed(ta.KServeForTests):
        wire = Wire(
            service="kserve-predictor",
            ports=ta.KSERVE.wire.ports,
            metrics_path="/metrics",
            ready_path="/v1/models/{model}",
        )

    cpu = next(
        r
        for r in rules.resource_rules([ta.TORCHSERVE, Renamed()])
        if r["record"] == n.R_SERVER_CPU and r["labels"]["source"] == "cadvisor"
    )
    assert 'container=~"torchserve|kserve-predictor"' in cpu["expr"]
    assert (
        "label_replace(" in cpu["expr"]
        and '"server", "kserve", "container", "kserve-predictor")' in cpu["expr"]
    )


def test_server_query_fills_selector_and_quantile():
    q = ta.TFSERVING.metrics.latency_quantile_s
    filled = rules.server_query(q, sel='namespace="x"', q=0.99)
    assert "histogram_quantile(0.99," in filled and '{API=~"(?i)predict",namespace="x"}' in filled
    assert '{API=~"(?i)predict"}' in rules.server_query(q, q=0.5)  # no stray comma when empty
    assert "{sel}" not in filled and "{q}" not in filled


def test_default_is_the_registry_and_check_uses_injected_adapters(tmp_path, monkeypatch):
    monkeypatch.setattr(rules, "RULES_PATH", tmp_path / "recording-rules.yaml")
    monkeypatch.setattr(rules, "REPO", tmp_path)
    three = [ta.TORCHSERVE, ta.TFSERVING, ta.KSERVE]
    assert rules.generate(check=False, adapters=three) == 0
    assert rules.generate(check=True, adapters=three) == 0
    assert rules.generate(check=True, adapters=three[:2]) == 1  # a server less: drift
    ta.use(monkeypatch, ta.WITH_KSERVE)  # the default follows the registry
    try:
        assert rules.render() == rules.render(three)
    finally:
        from servecmp.servers import registry

        registry.get.cache_clear()


def test_generated_header_names_the_cli_command_that_writes_it():
    from servecmp.cli import build_parser

    first = rules.RULES_PATH.read_text().splitlines()[0]
    command = first.split("`")[1].split()
    assert command[0] == "servecmp", first
    args = build_parser().parse_args(command[1:])  # SystemExit on a command the CLI does not have
    assert (args.command, args.gen_command, args.check) == ("gen", "rules", False)
