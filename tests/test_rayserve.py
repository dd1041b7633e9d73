"""Ray Serve 2.60 (``ray[serve]``), for real: started from the generated Serve config in its own
venv, driven by the project's OIP clients over REST (Ray's HTTP proxy) and gRPC (Ray's gRPC proxy).

Contract tests check each upstream fact the adapter rests on against the INSTALLED ray
(``.venv-ray``, ray 2.60.0): the config schema, default ports, the servicer hook, the socket
length limit, metric names. Real-server tests share one started server (Ray starts slowly) and
skip (with the reason) only when ``.venv-ray`` is missing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from answers_util import (
    assert_binary_answers_as_json_in_fewer_bytes,
    binary_vs_json,
    malformed_binary,
    outcomes,
)

from servecmp.experiment import Encoding, Target, parse_experiment
from servecmp.servers import registry
from servecmp.servers.rayserve import ADAPTER, WIRE, config
from servecmp.servers.rayserve import metrics as rmetrics
from servecmp.servers.rayserve.local import (
    AF_UNIX_MAX,
    RAY_SOCKET_SUFFIX,
    RayServeServer,
    short_temp_dir,
    venv_python,
)

pytestmark = pytest.mark.rayserve
MODEL = "resnet"
REASON = RayServeServer.availability()
needs_venv = pytest.mark.skipif(REASON is not None, reason=REASON or "")
ROOT = Path(__file__).resolve().parents[1]


def ray_python(code: str) -> Any:
    """Run ``code`` in the Ray venv; its last stdout line parsed as JSON."""
    out = subprocess.run(
        [str(venv_python()), "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _exp(**fields: object) -> Any:
    return parse_experiment(
        {
            "name": "r",
            "model": MODEL,
            "targets": [{"server": "rayserve", "protocol": "rest"}],
            **fields,
        }
    )


class _Placement:
    bind_host = "127.0.0.1"

    def port(self, server: str, role: str) -> int:
        return {"rest": 18000, "grpc": 19000, "metrics": 18080}[role]

    def path(self, server: str, role: str) -> str:
        return {"models": "/m root", "config": "/c dir"}[role]


# ---- no server: rendering, adapter -------------------------------------------------------------
def test_serve_config_carries_the_experiment_budget() -> None:
    exp = _exp(
        resources={"cpus": 3},
        tuning={
            "workers": 2,
            "batching": {"enabled": True, "max_batch_size": 16, "batch_timeout_ms": 4},
        },
    )
    doc = config.serve_config(exp, _Placement())  # type: ignore[arg-type]
    assert doc["http_options"] == {"host": "127.0.0.1", "port": 18000}
    assert doc["grpc_options"]["port"] == 19000
    app = doc["applications"][0]
    assert app["name"] == MODEL and app["route_prefix"] == "/"
    assert app["args"] == {
        "model_name": MODEL,
        "model_dir": "/m root/resnet",
        "intra_op_threads": 1,
    }
    dep = app["deployments"][0]
    assert dep["num_replicas"] == 2 and dep["ray_actor_options"] == {"num_cpus": 1.5}
    assert dep["max_ongoing_requests"] == 16  # raised to max_batch_size so a batch can fill
    assert dep["user_config"] == {
        "model_version": 1,
        "batching": True,
        "max_batch_size": 16,
        "batch_wait_timeout_s": 0.004,
    }
    flags = config.flags(exp, _Placement())  # type: ignore[arg-type]
    assert flags == [
        "--config=/c dir/serve_config.yaml",
        "--num_cpus=3",
        "--metrics_export_port=18080",
    ]
    off = config.serve_config(_exp(), _Placement())["applications"][0]["deployments"][0]  # type: ignore[arg-type]
    assert off["max_ongoing_requests"] == config.DEFAULT_MAX_ONGOING_REQUESTS
    assert off["user_config"] == {"model_version": 1, "batching": False}


def test_replica_reservations_sum_to_the_budget() -> None:
    exp = _exp(resources={"cpus": 1.5}, tuning={"workers": 3})
    assert config.ray_num_cpus(exp) == 2  # Ray's node resource is whole CPUs
    assert config.replica_num_cpus(exp) * 3 == pytest.approx(1.5)


def test_model_update_edits_only_the_version() -> None:
    text = config.render(_exp(), _Placement()).files[config.SERVE_CONFIG]  # type: ignore[arg-type]
    import yaml

    before, after = yaml.safe_load(text), yaml.safe_load(config.with_model_version(text, 2))
    dep = after["applications"][0]["deployments"][0]
    assert dep["user_config"]["model_version"] == 2
    dep["user_config"]["model_version"] = 1
    assert after == before


def test_short_temp_dir_keeps_ray_sockets_under_the_af_unix_limit(tmp_path: Path) -> None:
    short = tmp_path / "r"
    if len(os.fsencode(str(short))) + RAY_SOCKET_SUFFIX <= AF_UNIX_MAX:
        assert short_temp_dir(short) == short
    deep = tmp_path / ("a run dir with spaces " * 4) / "ray"
    link = short_temp_dir(deep)
    try:
        assert link != deep and link.resolve() == deep.resolve() and deep.is_dir()
        assert len(os.fsencode(str(link))) + RAY_SOCKET_SUFFIX <= AF_UNIX_MAX
    finally:
        link.unlink()
        link.parent.rmdir()


def test_adapter_facts() -> None:
    assert registry.get("rayserve") is ADAPTER
    assert ADAPTER.label == "Ray Serve 2.60" and ADAPTER.short_label == "Ray Serve"
    assert ADAPTER.predict_urls("127.0.0.1:1", MODEL) == (
        "http://127.0.0.1:1/v2/models/resnet/infer",
        "http://127.0.0.1:1/v2/models/resnet-missing/infer",
    )
    assert {r.setting for r in ADAPTER.fairness} >= {
        "tuning.workers",
        "tuning.intra_op_threads",
        "tuning.io_threads",
        "tuning.batching.enabled",
    }
    assert "tuning.io_threads" not in {k.field for k in ADAPTER.search_space.knobs}  # type: ignore[union-attr]
    assert ADAPTER.parse_runtime(['{"ray": "2.60.0", "torch": "2.13.0"}'])["version"] == "2.60.0"
    assert ADAPTER.parse_runtime(["garbage"])["version"] == "unknown"


def test_setup_installs_the_pinned_ray_in_its_own_venv() -> None:
    from servecmp.versions import RAY_VERSION

    setup = (ROOT / "scripts/setup-ray.sh").read_text()
    assert f'"ray[serve]=={RAY_VERSION}"' in setup and "torch==2.13.0" in setup
    assert ".venv-ray" in setup and "servecmp/versions.py" in setup  # re-runs when the pin moves
    assert "bash scripts/setup-ray.sh" in (ROOT / "scripts/setup.sh").read_text()
    dockerfile = (ROOT / "deploy/kind/rayserve.Dockerfile").read_text()
    assert f"ray[serve]=={RAY_VERSION}" in dockerfile
    assert "servecmp/servers/rayserve/serve_app.py" in dockerfile


# ---- contract: the installed ray 2.60.0 ------------------------------------------------------
@needs_venv
def test_contract_installed_ray_facts() -> None:
    """Default ports, the servicer hook, the socket limit and the batch setters, as installed."""
    found = ray_python(
        textwrap.dedent(
            """
            import importlib.metadata as m, inspect, json
            from ray.serve._private import constants as c
            from ray.serve.config import gRPCOptions
            from ray.serve import batching
            from ray._private import utils
            src = inspect.getsource(utils.validate_socket_filepath)
            print(json.dumps({
                "ray": m.version("ray"),
                "http": c.DEFAULT_HTTP_PORT, "grpc": c.DEFAULT_GRPC_PORT,
                "ongoing": c.DEFAULT_MAX_ONGOING_REQUESTS,
                "servicer_field": "grpc_servicer_functions" in gRPCOptions.model_fields,
                "af_unix_108": "108" in src,
                "setters": all(hasattr(batching._LazyBatchQueueWrapper, s) for s in
                               ("set_max_batch_size", "set_batch_wait_timeout_s")),
            }))
            """
        )
    )
    assert found["ray"] == "2.60.0"
    assert (found["http"], found["grpc"]) == (WIRE.port("rest").number, WIRE.port("grpc").number)
    assert found["ongoing"] == config.DEFAULT_MAX_ONGOING_REQUESTS
    assert found["servicer_field"] and found["af_unix_108"] and found["setters"]


@needs_venv
def test_contract_generated_config_is_a_valid_serve_deploy_schema(tmp_path: Path) -> None:
    exp = _exp(tuning={"workers": 2, "logging": "quiet", "batching": {"enabled": True}})
    path = tmp_path / "serve config.yaml"
    path.write_text(config.render(exp, _Placement()).files[config.SERVE_CONFIG])  # type: ignore[arg-type]
    code = (
        "import json, sys, yaml; from ray.serve.schema import ServeDeploySchema; "
        f"c = ServeDeploySchema.model_validate(yaml.safe_load(open({str(path)!r}))); "
        "d = c.applications[0].deployments[0]; "
        "print(json.dumps({'replicas': d.num_replicas, 'cpus': d.ray_actor_options.num_cpus, "
        "'level': c.logging_config.log_level, 'servicers': c.grpc_options.grpc_servicer_functions}))"
    )
    found = ray_python(code)
    assert found == {
        "replicas": 2,
        "cpus": 0.5,
        "level": "WARNING",
        "servicers": [config.OIP_SERVICER],
    }


@needs_venv
def test_contract_metric_names_are_in_rays_source() -> None:
    """Each name the PromQL reads is declared by the installed Serve (``ray_`` + name; counters
    get ``_total``); the live scrape test sees them exported."""
    sources = ray_python(
        "import inspect, json; from ray.serve._private import replica, request_ingress_metrics as r; "
        "print(json.dumps(inspect.getsource(replica) + inspect.getsource(r)))"
    )
    for name in (
        '"serve_deployment_request_counter"',
        '"serve_deployment_error_counter"',
        '"serve_deployment_processing_latency_ms"',
        'f"serve_num_{protocol_name}_requests"',
        'f"serve_{protocol_name}_request_latency_ms"',
    ):
        assert name in sources, name


def _ray_page(n_http: int, n_grpc: int, n_replica: int) -> str:
    """A metrics page as Ray exports it: the proxy's histograms per protocol (readiness calls
    beside the inference ones), the replica's processing histogram; 10 ms proxy, 6 ms replica."""
    h, g, p = rmetrics.HTTP_LATENCY_MS, rmetrics.GRPC_LATENCY_MS, rmetrics.PROCESSING_MS
    lab = 'application="resnet",route="/",status_code="200"'
    infer = "/inference.GRPCInferenceService/ModelInfer"
    ready = "/inference.GRPCInferenceService/ServerReady"
    return "".join(
        (
            f'{h}_sum{{method="POST",{lab}}} {n_http * 10.0}\n',
            f'{h}_count{{method="POST",{lab}}} {n_http}\n',
            f'{h}_sum{{method="GET",{lab}}} 5000\n',
            f'{h}_count{{method="GET",{lab}}} 7\n',
            f'{g}_sum{{method="{infer}",{lab}}} {n_grpc * 10.0}\n',
            f'{g}_count{{method="{infer}",{lab}}} {n_grpc}\n',
            f'{g}_sum{{method="{ready}",{lab}}} 900\n',
            f'{g}_count{{method="{ready}",{lab}}} 3\n',
            f'{p}_sum{{route="/",application="resnet"}} {n_replica * 6.0}\n',
            f'{p}_count{{route="/",application="resnet"}} {n_replica}\n',
        )
    )


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_breakdown_reads_the_proxy_of_the_steps_protocol(protocol: str) -> None:
    """REST steps read the HTTP proxy's POSTs, gRPC steps the gRPC proxy's ModelInfer calls; the
    replica's method is compute, the proxy's rest pre/post (10 - 6 ms)."""
    from servecmp.results import breakdown as bd

    parts = ADAPTER.breakdown(protocol)
    assert parts["total"].protocols == (protocol,)
    series = bd.all_series(parts)
    rest, grpc = (400, 0) if protocol == "rest" else (0, 400)
    start = bd.read_counters(_ray_page(100, 100, 200), series)
    end = bd.read_counters(_ray_page(100 + rest, 100 + grpc, 600), series)
    client = bd.ClientSide(mean_ms=12.0, sd_ms=1.0, n=400, in_flight=2, completed=400)
    out = bd.compute(
        parts, server_label="Ray Serve 2.60", protocol=protocol, client=client,
        readings=[(start, end)],
    )  # fmt: skip
    assert out is not None and out.flagged is None, out
    got = {p.part: p.ms for p in out.parts}
    assert got["outside"] == pytest.approx(2.0)
    assert got["compute"] == pytest.approx(6.0)
    assert got["pre_post"] == pytest.approx(4.0)
    assert got["queue"] is None  # not a per-request series in Ray 2.60: never shown as 0
    assert out.server_requests == 400


def test_breakdown_flags_a_proxy_export_that_lags_the_window() -> None:
    """Ray exports each process's series about once a second: a window whose end read missed
    a second of requests counts too few of them and is flagged, not shown."""
    from servecmp.results import breakdown as bd

    parts = ADAPTER.breakdown("rest")
    series = bd.all_series(parts)
    start = bd.read_counters(_ray_page(100, 0, 100), series)
    end = bd.read_counters(_ray_page(100 + 300, 0, 100 + 400), series)  # 100 not yet exported
    client = bd.ClientSide(mean_ms=12.0, sd_ms=1.0, n=400, in_flight=2, completed=400)
    out = bd.compute(
        parts, server_label="Ray Serve 2.60", protocol="rest", client=client,
        readings=[(start, end)],
    )  # fmt: skip
    assert out is not None and out.flagged is not None
    assert "counted 300 requests" in out.flagged


def test_launcher_shortens_rays_metrics_report_interval() -> None:
    """Ray's default report interval (10 s) would leave a step's edge reads 10 s old; the
    launcher asks for the 1 s floor, and the installed Ray still defaults to 10 s."""
    import ast

    src = (ROOT / "servecmp/servers/rayserve/serve_app.py").read_text()  # imports ray: parsed
    assert '_system_config={"metrics_report_interval_ms": METRICS_REPORT_INTERVAL_MS}' in src
    consts = {
        t.id: n.value
        for n in ast.parse(src).body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    interval = consts["METRICS_REPORT_INTERVAL_MS"]
    assert isinstance(interval, ast.Constant) and interval.value == 1000
    if REASON is None:
        assert ray_python("import ray; print(ray._config.metrics_report_interval_ms())") == 10000


# ---- the real server ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_root(exported_model: Callable[[str], Path]) -> Path:
    from servecmp.models.export import DEFAULT_SEED, artifacts, export_model, seed_for_version

    root = exported_model(MODEL)
    if not artifacts(MODEL, root, 2).mar.is_file():
        export_model(MODEL, root, seed=seed_for_version(DEFAULT_SEED, 2), version=2)
    return root


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def ray_server(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RayServeServer]:
    from servecmp.run.standalone import start_server

    if REASON:
        pytest.skip(REASON)
    work = tmp_path_factory.mktemp("rayserve run dir with a space")
    last_cpu = max(os.sched_getaffinity(0))  # the server CPU set, as `servecmp run` pins it
    server = start_server(
        "rayserve", MODEL, work, model_root, cpus=(last_cpu,), ready_timeout_s=240
    )
    assert isinstance(server, RayServeServer)
    yield server
    # The server is killed (SIGKILL of the launcher, the Ray driver): Ray's agents outlive their
    # raylet, and the workers sit in process groups of their own; stop() must still sweep them all.
    members = [p.pid for p in server.members()]
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.stop()
    left = [" ".join(psutil.Process(p).cmdline())[:60] for p in members if _alive(p)]
    assert not left, f"Ray processes survived the kill and stop(): {left}"


def _payloads(batch: int, version: int = 1) -> Any:
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.export import DEFAULT_SEED, seed_for_version
    from servecmp.models.registry import get_model

    return PayloadSet.build(
        get_model(MODEL), 99, batch, 4, weights_seed=seed_for_version(DEFAULT_SEED, version)
    )


TARGETS = [
    Target(server="rayserve", protocol="rest"),  # type: ignore[arg-type]
    Target(server="rayserve", protocol="grpc"),  # type: ignore[arg-type]
]


def _outcomes(server: Any, target: Target, payloads: Any) -> list[str]:
    return outcomes(server, target, payloads, timeout_s=20.0)  # Ray's proxy hop on 1 CPU


@needs_venv
@pytest.mark.slow
def test_ray_tree_is_pinned_and_lives_under_the_run_dir(ray_server: RayServeServer) -> None:
    assert " " in str(ray_server.run_dir)
    members = ray_server.members()
    titles = " ".join(" ".join(p.cmdline()) for p in members)
    for part in (
        "gcs_server",
        "raylet",
        "ray::ServeController",
        "ray::ProxyActor",
        "ray::ServeReplica",
    ):
        assert part in titles, part
    root = ray_server.measured_pid()
    assert root is not None
    tree = {p.pid for p in psutil.Process(root).children(recursive=True)} | {root}
    assert {p.pid for p in members} <= tree  # the resource numbers see every Ray process
    # the server's CPU set reaches every Ray process (the raylet's workers included)
    assert ray_server.cpus is not None
    want = set(ray_server.cpus)
    assert {p.pid: os.sched_getaffinity(p.pid) for p in members} == {p.pid: want for p in members}
    sessions = list((ray_server.run_dir / "ray").glob("session_*/sockets"))
    assert sessions, "Ray's temp dir is not under the run dir"


@needs_venv
@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_protocol_answers_the_expected_logits(
    ray_server: RayServeServer, target: Target, batch: int
) -> None:
    assert _outcomes(ray_server, target, _payloads(batch)) == ["ok"] * 4


@needs_venv
@pytest.mark.slow
def test_binary_tensor_extension_answers_as_json_does_in_fewer_bytes(
    ray_server: RayServeServer,
) -> None:
    """Ray Serve has no OIP of its own: our deployment reads and answers the binary tensor
    extension as Triton v2.51.0 docs/protocol/extension_binary_data.md describes it."""
    assert_binary_answers_as_json_in_fewer_bytes(
        binary_vs_json(ray_server, _payloads(4), timeout_s=20.0), 4
    )


@needs_venv
@pytest.mark.slow
@pytest.mark.parametrize(
    ("cut", "message"),
    [(4, "binary_data_size 49152, 49148 bytes left"), (-4, "4 bytes after the last input")],
    ids=["short", "long"],
)
def test_malformed_binary_body_is_a_400_counted_as_a_failure(
    ray_server: RayServeServer, cut: int, message: str
) -> None:
    """Short or long binary data is refused as Triton refuses it (src/http_server.cc v2.51.0)."""
    results = malformed_binary(ray_server, _payloads(1), cut, timeout_s=20.0)
    assert [r.error_kind for r in results] == ["http_4xx"] * 4
    assert all(message in str(r.exception) for r in results), results[0].exception


@needs_venv
@pytest.mark.slow
def test_readiness_endpoints(ray_server: RayServeServer) -> None:
    base = f"http://{ray_server.endpoints.rest}"
    assert requests.get(f"{base}/v2/health/ready", timeout=5).json() == {"ready": True}
    assert requests.get(f"{base}/v2/models/{MODEL}/ready", timeout=5).json()["ready"] is True
    assert requests.get(f"{base}/v2/models/nope/ready", timeout=5).status_code == 404
    assert ray_server.is_ready()


@needs_venv
@pytest.mark.slow
def test_metrics_scrape_has_ray_serve_series_and_counts_requests(
    ray_server: RayServeServer,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, float]:
        text = requests.get(ray_server.endpoints.metrics_url, timeout=5).text
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.labels.get("application") == MODEL:
                    out[s.name] = out.get(s.name, 0.0) + s.value
        return out

    before = scrape().get(rmetrics.REQUESTS, 0.0)
    assert _outcomes(ray_server, TARGETS[0], _payloads(1)) == ["ok"] * 4
    assert _outcomes(ray_server, TARGETS[1], _payloads(1)) == ["ok"] * 4
    deadline = time.monotonic() + 60  # Ray exports on its report interval
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        seen = scrape()
        if seen.get(rmetrics.REQUESTS, 0.0) - before >= 8 and rmetrics.GRPC_REQUESTS in seen:
            break
        time.sleep(1)
    assert seen.get(rmetrics.REQUESTS, 0.0) - before >= 8
    for name in (
        rmetrics.REQUESTS,
        rmetrics.PROCESSING_MS + "_bucket",
        rmetrics.HTTP_REQUESTS,
        rmetrics.HTTP_LATENCY_MS + "_bucket",
        rmetrics.GRPC_REQUESTS,
        rmetrics.GRPC_LATENCY_MS + "_bucket",
    ):
        assert name in seen, f"{name} not exported; have {sorted(seen)[:40]}"


@needs_venv
@pytest.mark.slow
def test_bad_payloads_get_clear_errors(ray_server: RayServeServer) -> None:
    ok_url, missing_url = ADAPTER.predict_urls(ray_server.endpoints.rest, MODEL)

    def post(url: str, body: object) -> tuple[int, str]:
        r = requests.post(url, json=body, timeout=20)
        return r.status_code, r.json().get("error", "")

    code, err = post(ok_url, {"rows": [1]})
    assert code == 400 and '"inputs"' in err
    inp = {"name": "input", "shape": [1, 3, 64, 64], "datatype": "INT32", "data": [1]}
    assert post(ok_url, {"inputs": [inp]}) == (
        400,
        "input 'input': datatype must be FP32, got INT32",
    )
    code, err = post(ok_url, {"inputs": [{**inp, "datatype": "FP32", "data": [1.0]}]})
    assert code == 400 and "cannot reshape" in err
    code, err = post(
        ok_url,
        {"inputs": [{**inp, "datatype": "FP32", "shape": [1, 5, 8, 8], "data": [0.0] * 320}]},
    )
    assert code == 400 and "does not match the model's [B, 3, 64, 64]" in err
    code, err = post(missing_url, {"inputs": [inp]})
    assert code == 404 and "does not exist" in err
    r = requests.post(ok_url, data=b"\xff\x00 not json", timeout=20)
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    assert ray_server.is_ready()  # nothing of this took a replica down


@needs_venv
@pytest.mark.slow
def test_bad_grpc_request_is_invalid_argument(ray_server: RayServeServer) -> None:
    import grpc

    from servecmp.load.clients import protos

    pb2, pb2_grpc = protos.load("oip")
    req = pb2.ModelInferRequest(
        model_name=MODEL,
        inputs=[pb2.ModelInferRequest.InferInputTensor(name="input", datatype="INT32", shape=[1])],
    )
    with grpc.insecure_channel(ray_server.endpoints.grpc) as ch:
        stub = pb2_grpc.GRPCInferenceServiceStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(req, timeout=20)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "datatype must be FP32" in (info.value.details() or "")
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(pb2.ModelInferRequest(model_name="nope"), timeout=20)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
        assert stub.ModelReady(pb2.ModelReadyRequest(name=MODEL), timeout=20).ready


def _wait(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    return False


def _served_version(server: RayServeServer) -> str:
    r = requests.post(
        f"http://{server.endpoints.rest}/v2/models/{MODEL}/infer",
        data=_payloads(1).body(Encoding.oip, 0),
        headers={"Content-Type": "application/json"},
        timeout=20,
    )
    return str(r.json()["model_version"])


@needs_venv
@pytest.mark.slow
def test_model_update_is_a_redeploy_without_replica_restart(
    ray_server: RayServeServer, model_root: Path
) -> None:
    from servecmp.models.export import artifacts
    from servecmp.run.configs import model_root as run_model_root

    update = ADAPTER.update_action(
        ray_server, artifacts(MODEL, model_root, 2), run_model_root(ray_server.run_dir, "rayserve")
    )
    replicas = ray_server.replica_pids()
    try:
        update()
        assert _wait(lambda: _served_version(ray_server) == "2", 90)
        assert ray_server.replica_pids() == replicas  # reconfigured in place
        for target in TARGETS:
            assert _outcomes(ray_server, target, _payloads(1, version=2)) == ["ok"] * 4
        # the v1 expectations against v2 are caught as wrong answers
        assert all(
            o.startswith("wrong_answer") for o in _outcomes(ray_server, TARGETS[0], _payloads(1))
        )
    finally:  # back to v1 for the other tests
        ray_server.redeploy(1)
        assert _wait(lambda: _served_version(ray_server) == "1", 90)


@needs_venv
@pytest.mark.slow
def test_killed_replica_is_replaced_by_ray(ray_server: RayServeServer) -> None:
    before = ray_server.replica_pids()
    launcher = ray_server.measured_pid()
    ray_server.kill_hard()
    assert not _alive(before[0]) or _wait(lambda: not _alive(before[0]), 10)
    ray_server.start()  # what the recovery probe calls: Ray restarts the replica, not servecmp
    assert _wait(
        lambda: bool(ray_server.replica_pids()) and ray_server.replica_pids() != before, 120
    )
    assert _wait(ray_server.is_ready, 120)
    assert ray_server.measured_pid() == launcher
    for target in TARGETS:
        assert _outcomes(ray_server, target, _payloads(1)) == ["ok"] * 4


ORCHESTRATOR = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from servecmp.run import watchdog
    from servecmp.run.standalone import start_server

    work, models = Path(sys.argv[1]), Path(sys.argv[2])
    watchdog.start(work / "watchdog.log")
    s = start_server("rayserve", "resnet", work, models, ready_timeout_s=240,
                     resources={"cpus": 2}, tuning={"workers": 2})
    (work / "server.json").write_text(
        '{"rest": "%s", "grpc": "%s", "pid": %d}' % (s.endpoints.rest, s.endpoints.grpc, s.process.pid))
    time.sleep(600)
    """
)


@needs_venv
@pytest.mark.slow
def test_two_replicas_then_kill_9_of_the_orchestrator_leaves_no_ray_process(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """workers=2 is two replica processes; after ``kill -9`` of the process that started Ray
    (its watchdog sweeps), no process of the Ray session is left, its short temp link neither."""
    from servecmp.run.configs import local_configs  # noqa: F401 - the same runtime the child uses

    work = tmp_path_factory.mktemp("rayserve two replicas")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    orch = subprocess.Popen(
        [sys.executable, "-c", ORCHESTRATOR, str(work), str(model_root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    info_path = work / "server.json"
    sid = 0
    try:
        assert _wait(lambda: info_path.is_file() or orch.poll() is not None, 300)
        assert info_path.is_file(), "the child never reported a ready server"
        info = json.loads(info_path.read_text())
        sid = int(info["pid"])
        from servecmp.servers.rayserve.local import session_members

        members = session_members(sid)
        replicas = [p for p in members if " ".join(p.cmdline()).startswith("ray::ServeReplica:")]
        assert len(replicas) == 2, [p.cmdline() for p in members]
        pinned = {tuple(sorted(os.sched_getaffinity(p.pid))) for p in members}
        assert len(pinned) == 1
        fake = _FixedServer(info["rest"], info["grpc"])
        for target in TARGETS:
            assert _outcomes(fake, target, _payloads(4)) == ["ok"] * 4  # type: ignore[arg-type]
        orch.send_signal(signal.SIGKILL)
        orch.wait(timeout=10)
        assert _wait(lambda: not session_members(sid), 30), [
            " ".join(p.cmdline())[:80] for p in session_members(sid)
        ]
    finally:
        if orch.poll() is None:
            orch.kill()
        if sid:
            from servecmp.servers.rayserve.local import session_members

            for p in session_members(sid):  # never leave them behind, even on failure
                p.kill()


class _FixedServer:
    """A server known only by its addresses (started by another process)."""

    def __init__(self, rest: str, grpc: str) -> None:
        self.rest, self.grpc = rest, grpc

    def address(self, protocol: Any) -> str:
        return self.grpc if protocol.value == "grpc" else self.rest


@needs_venv
def test_runtime_probe_reports_the_installed_versions() -> None:
    from servecmp.servers.rayserve import RUNTIME_PROBE

    out = subprocess.run(
        [str(venv_python()), "-c", RUNTIME_PROBE], capture_output=True, text=True, timeout=60
    )
    found = ADAPTER.parse_runtime([out.stdout])
    assert found["version"] == "2.60.0" and found["torch"].startswith("2.13.0")


@needs_venv
@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_breakdown_parts_add_up_to_the_clients_mean(
    ray_server: RayServeServer, target: Target, tmp_path: Path
) -> None:
    """A real step reads the proxy's and the replica's histograms at its window edges: outside,
    the proxy's share and the replica's method add up to the client's mean within noise. Each
    Ray process exports about once a second on its own phase, so a step's reads may cover a
    window shifted by up to a second: where that shows (a request count that misses requests, or
    a server mean that exceeds the client's), the self-check flags the step instead."""
    from breakdown_util import parts_of

    from servecmp.experiment import Load, Stability
    from servecmp.load.engine.runner import run_step
    from servecmp.load.engine.spec import StepSpec

    path = str(_payloads(1).save(tmp_path))
    spec = StepSpec(
        run_id="t",
        step_id=f"breakdown-{target.name}",
        target=target,
        address=ray_server.address(target.protocol),
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=2,
        load=Load(
            warmup_s=2.0,  # past the first slow requests: a shifted window sees the same load
            stability=Stability(window_s=4.0, windows=2, max_windows=2, tolerance=0.5),
        ),
        payloads_path=path,
        server_metrics_url=ray_server.endpoints.metrics_url,
    )
    r = run_step(spec, tmp_path)
    b = r.breakdown
    assert r.ok > 10, r.error
    assert b is not None and b.not_reported is None, b
    parts = parts_of(r)
    assert parts["compute"].ms is not None and parts["compute"].ms > 0
    assert parts["queue"].ms is None  # not a per-request series in Ray 2.60
    if b.flagged is not None:
        lag = ("its counters do not cover these requests", "exceeds what the client saw")
        assert all(any(w in f for w in lag) for f in b.flagged.split("; ")), b.flagged
        if "exceeds what the client saw" in b.flagged:
            assert parts["outside"].ms is None  # never drawn negative
        return
    assert b.client_mean_ms is not None and b.noise_ms is not None
    assert b.server_total_ms is not None and b.server_total_ms <= b.client_mean_ms + b.noise_ms
    reported = [p.ms for p in b.parts if p.ms is not None]
    assert all(ms >= 0 for ms in reported)
    assert abs(sum(reported) - b.client_mean_ms) <= b.noise_ms
    assert parts["pre_post"].ms is not None
