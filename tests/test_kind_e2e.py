"""The whole kind path on a real cluster: kind-up (preflight, images, kube-prometheus-stack, chart,
helm test), in-cluster load per target over REST and gRPC with the steps engine and with
``--engine locust``, what Prometheus and Grafana show while and after it runs, pod recovery,
kind-down. Needs docker (a running engine) + kind + helm + kubectl, network to pull images, and a
host where the experiment fits (the preflight says so); skipped elsewhere with the reason.
Run: pytest -m cluster tests/test_kind_e2e.py (20-30 min; SERVECMP_KEEP_CLUSTER=1 keeps it).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_util import KIND_DIR, ROOT, find_helm, load_env_file

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(3600)]

PINS = load_env_file(KIND_DIR / "versions.env")
EXPERIMENT = "loadtests/experiments/quick.yaml"
TARGETS = (
    "torchserve-rest-json",
    "torchserve-grpc-bytes",
    "tfserving-rest-json",
    "tfserving-grpc-tensorproto",
)
PROM = f"http://127.0.0.1:{PINS['PROMETHEUS_HOST_PORT']}"
GRAFANA = f"http://127.0.0.1:{PINS['GRAFANA_HOST_PORT']}"
KCTX = f"kind-{PINS['KIND_CLUSTER_NAME']}"
NS = PINS["SERVECMP_NAMESPACE"]


def _missing() -> list[str]:
    missing = [t for t in ("docker", "kind", "kubectl") if shutil.which(t) is None]
    if find_helm() is None:
        missing.append("helm")
    if (
        "docker" not in missing
        and subprocess.run(["docker", "info"], capture_output=True).returncode != 0
    ):
        missing.append("a running Docker engine")
    return missing


def _get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> Any:
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _prom(query: str, range_s: int = 1800) -> list[dict[str, Any]]:
    end = time.time()
    q = urllib.parse.urlencode({"query": query, "start": end - range_s, "end": end, "step": "15"})
    return _get(f"{PROM}/api/v1/query_range?{q}")["data"]["result"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def kind_cluster():
    missing = _missing()
    if missing:
        pytest.skip(
            f"needs {', '.join(missing)} to create a kind cluster (not available on this machine)"
        )
    env = {**os.environ}
    helm = find_helm()
    if helm:
        env["SERVECMP_HELM"] = helm
    pre = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "servecmp"), "kind", "preflight", EXPERIMENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    if pre.returncode == 3:  # the preflight's "does not fit": a host too small, not a bug
        pytest.skip(f"this host is too small for {EXPERIMENT} on kind:\n{pre.stderr}")
    assert pre.returncode == 0, (
        f"preflight crashed (exit {pre.returncode}):\n{pre.stdout}{pre.stderr}"
    )
    try:
        subprocess.run(
            [str(ROOT / "scripts" / "kind-up.sh"), EXPERIMENT],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=2400,
        )
        yield env
    finally:
        if os.environ.get("SERVECMP_KEEP_CLUSTER") != "1":
            subprocess.run([str(ROOT / "scripts" / "kind-down.sh")], cwd=ROOT, env=env, timeout=600)


def _new_runs(before: set[Path]) -> Path:
    (run,) = set((ROOT / "runs").glob("kind-*")) - before
    return run


def _runs() -> set[Path]:
    return set((ROOT / "runs").glob("kind-*")) if (ROOT / "runs").is_dir() else set()


@pytest.fixture(scope="module")
def steps_run(kind_cluster) -> dict[str, Any]:
    """kind-load.sh (steps engine) for the four targets; Prometheus targets are sampled while it runs."""
    before = _runs()
    args = [str(ROOT / "scripts" / "kind-load.sh"), EXPERIMENT]
    for t in TARGETS:
        args += ["--target", t]
    proc = subprocess.Popen(args, cwd=ROOT, env=kind_cluster)
    seen_up: set[str] = set()
    deadline = time.monotonic() + 2400
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            for t in _get(f"{PROM}/api/v1/targets?state=active")["data"]["activeTargets"]:
                if t["health"] == "up":
                    seen_up.add(t["scrapePool"])
        except OSError:
            pass
        time.sleep(5)
    rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
    assert rc == 0, "kind-load.sh failed"
    return {"run": _new_runs(before), "up": seen_up}


def test_helm_test_passes(kind_cluster) -> None:
    helm = kind_cluster.get("SERVECMP_HELM") or "helm"
    out = subprocess.run(
        [
            helm,
            "test",
            PINS["SERVECMP_RELEASE"],
            "--kube-context",
            KCTX,
            "--namespace",
            NS,
            "--logs",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout


def test_in_cluster_steps_are_stored_like_local_ones(steps_run) -> None:
    from servecmp.results.friction import read_friction
    from servecmp.results.store import RunStore

    run = steps_run["run"]
    steps = RunStore(run).read_steps().steps
    for target in TARGETS:
        mine = [s for s in steps if s.target == target]
        assert mine and all(s.ok > 0 and s.wrong_answers == 0 for s in mine), f"{target}: {mine}"
    assert (run / "kind" / "cluster-report.json").is_file()
    assert (run / "report" / "report.md").is_file()
    metrics = {(r.server, r.metric) for r in read_friction(run)[0] if r.available}
    assert {("torchserve", "install_ready_s"), ("tfserving", "image_bytes")} <= metrics


def test_in_cluster_steps_carry_the_latency_breakdown(steps_run) -> None:
    """Each in-cluster step read its server's metrics Service at its windows' edges (one replica
    by the chart's defaults): the REST steps' counters were read and counted requests (parts
    shown, or the self-check's flag); TorchServe's gRPC says 0.12 does not count it; the report's
    breakdown table has the cluster steps."""
    from servecmp.results.store import RunStore

    run = steps_run["run"]
    steps = RunStore(run).read_steps().steps
    for target in TARGETS:
        for s in (s for s in steps if s.target == target):
            b = s.breakdown
            assert b is not None, f"{s.step_id}: no breakdown"
            if target == "torchserve-grpc-bytes":
                assert b.not_reported is not None and "over grpc" in b.not_reported, b
                continue
            assert b.not_reported is None, f"{s.step_id}: {b.not_reported}"
            assert b.server_requests and b.server_requests > 0, b
            assert b.flagged or b.server_total_ms is not None, b
    md = (run / "report" / "report.md").read_text()
    table = md.split("Breakdown per target and load level")[1]
    assert "torchserve-rest-json" in table and "tfserving-rest-json" in table


def test_meta_records_server_images_runtimes_and_cpu_sharing(steps_run) -> None:
    meta = json.loads((steps_run["run"] / "meta.json").read_text())
    ts, tf = meta["servers"]["torchserve"], meta["servers"]["tfserving"]
    assert ts["runtime"]["torch"].startswith("2.13.0") and ts["runtime"]["python"].startswith(
        "3.11"
    )
    assert ts["runtime"]["torchserve"] == "0.12.0" and ts["runtime"]["java"].startswith("17")
    tf_tag = yaml.safe_load((ROOT / "helm/servecmp/charts/tfserving/values.yaml").read_text())[
        "image"
    ]["tag"]
    assert tf["runtime"]["tensorflow_model_server"].startswith(str(tf_tag))
    for info in (ts, tf):
        assert all(i["digest"] for i in info["images"]), info
    assert meta["cluster"]["server_and_generator_can_contend"] is True


def test_prometheus_scraped_both_servers_and_the_load_generator(steps_run) -> None:
    up = steps_run["up"]
    for pool in (
        f"serviceMonitor/{NS}/servecmp-torchserve/0",
        f"serviceMonitor/{NS}/servecmp-tfserving/0",
    ):
        assert pool in up, sorted(up)
    assert any(p.startswith(f"podMonitor/{NS}/") for p in up), sorted(up)


def test_kserve_runs_the_project_pins_and_is_scraped(steps_run) -> None:
    """The third server on the kind path: its image reports the pinned kserve/torch, and its
    ServiceMonitor (metrics port/path from the wire) is a healthy Prometheus target."""
    from servecmp import versions
    from servecmp.experiment import load_experiment

    if "kserve" not in {t.server for t in load_experiment(ROOT / EXPERIMENT).targets}:
        pytest.skip(f"{EXPERIMENT} targets no kserve server")
    meta = json.loads((steps_run["run"] / "meta.json").read_text())
    ks = meta["servers"]["kserve"]
    assert ks["deployed"] and ks["runtime"]["kserve"] == versions.KSERVE_VERSION
    assert ks["runtime"]["torch"].startswith("2.13.0") and ks["runtime"]["python"].startswith(
        "3.11"
    )
    assert all(i["digest"] for i in ks["images"]), ks
    assert f"serviceMonitor/{NS}/servecmp-kserve/0" in steps_run["up"], sorted(steps_run["up"])


def test_recording_rules_produce_series_for_every_target(steps_run) -> None:
    rules = yaml.safe_load((ROOT / "helm/servecmp/files/recording-rules.yaml").read_text())
    records = [r["record"] for g in rules["groups"] for r in g["rules"]]
    per_target = {s["metric"].get("target") for s in _prom("servecmp:requests:rate1m")}
    assert set(TARGETS) <= per_target, per_target
    for record in records:
        assert _prom(record), f"recording rule {record} produced no series"
    servers = {s["metric"].get("server") for s in _prom("servecmp:server_requests:rate1m")}
    assert servers == {"torchserve", "tfserving"}


def _grafana_auth() -> dict[str, str]:
    def secret(key: str) -> str:
        out = subprocess.run(
            [
                "kubectl",
                "--context",
                KCTX,
                "-n",
                PINS["KPS_NAMESPACE"],
                "get",
                "secret",
                "servecmp-grafana-admin",
                "-o",
                f"jsonpath={{.data.{key}}}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return base64.b64decode(out).decode()

    token = base64.b64encode(f"{secret('admin-user')}:{secret('admin-password')}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard.get("panels", []):
        out += _panels(p) if p.get("type") == "row" else [p]
    return out


def test_grafana_has_both_dashboards_and_every_panel_returns_data(steps_run) -> None:
    auth = _grafana_auth()
    found = {d["uid"]: d for d in _get(f"{GRAFANA}/api/search?type=dash-db", auth)}
    expected = {
        json.loads(p.read_text())["uid"] for p in (ROOT / "helm/servecmp/dashboards").glob("*.json")
    }
    assert expected <= set(found), sorted(found)
    (ds,) = [
        d
        for d in _get(f"{GRAFANA}/api/datasources", auth)
        if d["type"] == "prometheus" and d.get("isDefault")
    ]
    empty = []
    for uid in sorted(expected):
        dash = _get(f"{GRAFANA}/api/dashboards/uid/{uid}", auth)["dashboard"]
        for panel in _panels(dash):
            for target in panel.get("targets", []):
                expr = (
                    target["expr"]
                    .replace("$namespace", ".*")
                    .replace("$run", ".*")
                    .replace("$__rate_interval", "1m")
                    .replace("$__interval", "15s")
                )
                body = {
                    "queries": [
                        {
                            "refId": "A",
                            "datasource": {"uid": ds["uid"], "type": "prometheus"},
                            "expr": expr,
                            "range": True,
                            "intervalMs": 15000,
                            "maxDataPoints": 200,
                        }
                    ],
                    "from": "now-45m",
                    "to": "now",
                }
                res = _get(f"{GRAFANA}/api/ds/query", auth, json.dumps(body).encode())["results"][
                    "A"
                ]
                frames = [f for f in res.get("frames", []) if (f.get("data") or {}).get("values")]
                if not frames or not any(len(v) for f in frames for v in f["data"]["values"]):
                    empty.append(f"{uid} / {panel.get('title')}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_locust_engine_runs_in_cluster(kind_cluster) -> None:
    before = _runs()
    subprocess.run(
        [
            str(ROOT / "scripts" / "kind-load.sh"),
            EXPERIMENT,
            "--engine",
            "locust",
            "--duration",
            "20",
            "--users",
            "2",
            "--workers",
            "1",
            "--target",
            "torchserve-rest-json",
        ],
        cwd=ROOT,
        env=kind_cluster,
        check=True,
        timeout=1200,
    )
    run = _new_runs(before)
    stats = run / "kind" / "torchserve-rest-json" / "locust_stats.csv"
    assert stats.is_file()
    import csv

    (agg,) = [
        r for r in csv.DictReader(stats.read_text().splitlines()) if r["Name"] == "Aggregated"
    ]
    assert int(agg["Request Count"]) > 0
    assert int(agg["Failure Count"]) == 0, (
        agg
    )  # wrong answers and transport errors count as failures


def test_pod_recovery_is_measured(kind_cluster) -> None:
    out = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-m",
            "servecmp.cluster.cluster",
            "--context",
            KCTX,
            "--namespace",
            NS,
            "recover",
            "--server",
            "tfserving",
            "--replicas",
            "1",
        ],
        cwd=ROOT,
        env=kind_cluster,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    # a new pod: scheduled, started and through its startup probe (period 2 s): never ~0
    assert json.loads(out)["recovery_s"] > 1.0
