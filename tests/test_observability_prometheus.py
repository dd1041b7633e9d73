"""A REAL Prometheus: generated scrape configs pass promtool, every panel query parses, and every
generator / resource panel returns data when Prometheus scrapes the real prometheus-client
exposition of the generator metrics (fed with Locust request events in two processes sharing a
multiprocess directory) and the psutil process exporter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from servecmp.observability import check, dashboards, rules
from servecmp.observability import names as n
from servecmp.observability import scrape_config as sc
from servecmp.run.ports import free_ports

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

needs_prometheus = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(),
    reason="/usr/bin/prometheus not installed (apt-get install prometheus)",
)
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="promtool not installed (apt-get install prometheus)"
)

RUN_ID = "test-run"
TARGETS = [  # quick.yaml's targets
    "torchserve-rest-json",
    "torchserve-grpc-bytes",
    "tfserving-rest-json",
    "tfserving-grpc-tensorproto",
    "kserve-rest-json",
    "kserve-grpc-oip",
    "pytorch-inprocess",
    "tensorflow-inprocess",
]


def _config(**kw) -> dict:
    return sc.local_scrape_config(run_id=RUN_ID, rule_files=["recording-rules.yaml"], **kw)


URLS = {
    "torchserve": "http://127.0.0.1:8082/metrics",
    "tfserving": "http://127.0.0.1:8501/monitoring/prometheus/metrics",
}


def test_local_scrape_config_shape():
    """One job per server: job = its adapter's Wire.service, path = its Wire.metrics_path."""
    cfg = _config(metrics_urls=URLS, generator_port=9646, process_exporter_port=9647)
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert set(jobs) == {"torchserve", "tfserving", n.JOB_GENERATOR, n.JOB_PROCESSES}
    assert jobs["tfserving"]["metrics_path"] == "/monitoring/prometheus/metrics"
    assert jobs["torchserve"]["metrics_path"] == "/metrics"
    assert jobs["torchserve"]["static_configs"][0]["targets"] == ["127.0.0.1:8082"]
    assert jobs["torchserve"]["static_configs"][0]["labels"] == {
        "namespace": "local",
        "run": RUN_ID,
        "server": "torchserve",
    }
    assert jobs[n.JOB_GENERATOR]["static_configs"][0]["labels"] == {
        "namespace": "local",
        "run": RUN_ID,
    }
    # parts that do not run are left out
    only_gen = _config(generator_port=9646)
    assert [j["job_name"] for j in only_gen["scrape_configs"]] == [n.JOB_GENERATOR]


def test_local_scrape_config_takes_any_registered_server():
    import adapters_for_tests as ta

    from servecmp.servers.base import Wire

    class Renamed(ta.KServeForTests):
        wire = Wire(
            service="kserve-predictor",
            ports=ta.KSERVE.wire.ports,
            metrics_path="/metrics",
            ready_path="/v1/models/{model}",
        )

    cfg = _config(
        metrics_urls={"kserve": "http://127.0.0.1:9000/metrics"},
        adapters=[ta.TORCHSERVE, Renamed()],
    )
    (job,) = cfg["scrape_configs"]
    assert (job["job_name"], job["metrics_path"], job["static_configs"][0]["labels"]["server"]) == (
        "kserve-predictor",
        "/metrics",
        "kserve",
    )
    with pytest.raises(ValueError, match="unknown server 'tfserving'; known: torchserve, kserve"):
        _config(metrics_urls={"tfserving": URLS["tfserving"]}, adapters=[ta.TORCHSERVE, ta.KSERVE])
    with pytest.raises(ValueError, match="unknown server 'nope'"):
        _config(metrics_urls={"nope": "http://127.0.0.1:1/metrics"})
    # a path that is not the adapter's: the wire facts and the runtime disagree
    with pytest.raises(ValueError, match="'/monitoring/prometheus/metrics'"):
        _config(metrics_urls={"tfserving": "http://127.0.0.1:8501/metrics"})


@pytest.mark.prometheus
@needs_promtool
def test_promtool_check_config(tmp_path):
    cfg = _config(
        metrics_urls=URLS,
        generator_port=9646,
        process_exporter_port=9647,
    )
    shutil.copyfile(rules.RULES_PATH, tmp_path / "recording-rules.yaml")
    path = sc.write_scrape_config(tmp_path / "prometheus.yml", cfg)
    res = subprocess.run([PROMTOOL, "check", "config", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


_FEED = textwrap.dedent(
    """
    import random, sys, time
    import locust  # first: gevent patching
    from locust.env import Environment
    from servecmp.observability import generator_metrics as gm

    role, port, mpdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    targets = sys.argv[4].split(",")
    gm.enable_multiprocess(mpdir, clean=False)
    env = Environment(events=locust.events)
    m = gm.subscribe(env, late_threshold_ms=10.0, targets=targets, sample_interval_s=0.5)
    if role == "master":
        gm.start_exposition(port)
    print("ready", flush=True)
    rng = random.Random(role)
    while True:
        for t in targets:
            server, protocol = t.split("-")[:2]
            with m.in_flight(t):
                outcome = rng.choices(["ok", "transport_error", "wrong_answer"], [90, 5, 5])[0]
                env.events.request.fire(
                    request_type=protocol, name=t, response_time=rng.uniform(1.0, 60.0),
                    response_length=40, response=None, url=None, start_time=time.time(),
                    exception=RuntimeError("boom") if outcome == "transport_error" else None,
                    context={"outcome": outcome, "late_ms": rng.uniform(0.0, 20.0),
                             "server": server, "protocol": protocol})
        time.sleep(0.02)
    """
)


@pytest.mark.prometheus
@needs_prometheus
def test_real_prometheus_scrapes_generator_and_panels_have_data(tmp_path):
    from servecmp.observability.process_exporter import ProcessExporter
    from servecmp.run.prometheus import LocalPrometheus

    mp = tmp_path / "prom-multiproc"
    mp.mkdir()
    (gen_port,) = free_ports(1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = tmp_path / "feed.py"
    script.write_text(_FEED)
    procs: list[subprocess.Popen] = []
    exporter_server = None
    try:
        for role in ("master", "worker"):
            p = subprocess.Popen(
                [sys.executable, str(script), role, str(gen_port), str(mp), ",".join(TARGETS)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            procs.append(p)
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line.strip() == "ready", line + p.stdout.read() if p.poll() is not None else line
        # stand-ins for the two servers: the process exporter watches the feed processes
        (exp_port,) = free_ports(1)
        exporter = ProcessExporter({"torchserve": procs[0].pid, "tfserving": procs[1].pid})
        exporter_server = exporter.serve(exp_port)

        cfg = sc.local_scrape_config(
            run_id=RUN_ID, generator_port=gen_port, process_exporter_port=exp_port
        )
        t0 = time.time()
        with LocalPrometheus(tmp_path / "run", cfg) as prom:
            up = prom.wait_targets_up(timeout_s=60)
            assert {t["labels"]["job"] for t in up} == {n.JOB_GENERATOR, n.JOB_PROCESSES}

            for d in (dashboards.comparison_dashboard(), dashboards.generator_dashboard()):
                assert check.parse_errors(d, prom.url) == [], "every panel query must parse"

            variables = {"namespace": "local", "run": RUN_ID}
            # rows of the servers the feed stands for (a registered server quick.yaml does not
            # measure has a row without data here)
            from servecmp.servers import registry

            fed = [
                a for a in registry.servers() if any(t.startswith(f"{a.name}-") for t in TARGETS)
            ]
            for d in (dashboards.generator_dashboard(fed), dashboards.comparison_dashboard(fed)):
                empty = check.wait_for_data(
                    d,
                    prom.url,
                    sources={"generator", "resources"},
                    variables=variables,
                    timeout_s=60,
                )
                assert not empty, "panel queries without data:\n" + check.describe(empty)

            # the helper does report empty panels: no TF Serving runs here
            tf_empty = check.queries_without_data(
                dashboards.comparison_dashboard(),
                prom.url,
                sources={"tfserving"},
                variables=variables,
            )
            assert tf_empty and all("tfserving" in check.query_sources(q.expr) for q in tf_empty)

            # both processes' requests are in (multiprocess aggregation through a real scrape)
            cpu = prom.query(f'{n.R_GEN_CPU}{{run="{RUN_ID}"}}')["data"]["result"]
            assert len({s["metric"]["pid"] for s in cpu}) == 2
            rate = prom.query(f'sum({n.R_REQUESTS}{{target="torchserve-rest-json"}})')["data"][
                "result"
            ]
            assert float(rate[0]["value"][1]) > 0

            # Recorded series appear one rule evaluation after their inputs: on a loaded machine
            # that can trail the panel checks above, so wait for each before storing.
            for record in (n.R_REQUESTS, n.R_SERVER_CPU, n.R_SERVER_MEM):
                deadline = time.monotonic() + 30
                while not prom.query(record)["data"]["result"] and time.monotonic() < deadline:
                    time.sleep(0.5)
            # an instant query sees a sample up to now; the stored range query evaluates at
            # t0 + k * 1s <= end only: let one more step pass so its last point is after the sample
            time.sleep(1.5)
            path = prom.store_series(t0, time.time(), run=RUN_ID)
        doc = json.loads(path.read_text())
        assert path == tmp_path / "run" / "prometheus" / "series.json"
        for record in (
            n.R_REQUESTS,
            n.R_CLIENT_P[99],
            n.R_ERROR_RATIO,
            n.R_SERVER_CPU,
            n.R_SERVER_MEM,
        ):
            assert doc["queries"][record]["status"] == "success"
            assert doc["queries"][record]["result"], record
        assert doc["queries"]["servecmp-comparison#2A"]["result"]
        assert (tmp_path / "run" / "logs" / "prometheus.log").exists()
        assert yaml.safe_load((tmp_path / "run" / "prometheus" / "prometheus.yml").read_text())[
            "rule_files"
        ] == ["recording-rules.yaml"]
    finally:
        if exporter_server is not None:
            exporter_server.shutdown()
        for p in procs:
            p.kill()
            p.wait(timeout=10)


def test_feed_targets_are_quick_yamls() -> None:
    """The fed targets stand for the README's main job: one per quick.yaml target, no more."""
    from servecmp.experiment import load_experiment

    assert set(TARGETS) == {
        t.name for t in load_experiment(REPO / "loadtests" / "experiments" / "quick.yaml").targets
    }
