"""Triton Inference Server 2.51.0 (Python backend), for real: the binary bundled in the
nvidia-pytriton 0.7.0 wheel of ``.venv-triton``, started from the generated flags and model
repository, driven by the project's OIP clients over REST (JSON) and gRPC.

Contract tests check each fact the adapter rests on against the INSTALLED binary and wheel: the
flags (``tritonserver --help``), the default ports it prints, config.pbtxt parsed by Triton's own
ModelConfig schema (tritonclient's ``model_config_pb2`` in the same venv), the metric names on a
live metrics page, the version in ``GET /v2``. Upstream source: triton-inference-server/server
v2.51.0, python_backend r24.10. Everything skips (with the reason) only when ``.venv-triton`` is
missing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
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

from servecmp import versions
from servecmp.experiment import Encoding, Target, parse_experiment
from servecmp.servers.triton import ADAPTER, config
from servecmp.servers.triton import metrics as tmetrics
from servecmp.servers.triton.local import TritonServer, binary, environment, venv_dir

pytestmark = pytest.mark.triton
ROOT = Path(__file__).resolve().parents[1]
MODEL = "resnet"
REASON = TritonServer.availability()
needs_venv = pytest.mark.skipif(REASON is not None, reason=REASON or "")
TARGETS = [
    Target(server="triton", protocol="rest"),  # type: ignore[arg-type]
    Target(server="triton", protocol="grpc"),  # type: ignore[arg-type]
]


def _alive(procs: list[psutil.Process]) -> list[int]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


# ---- no server: pins and image -------------------------------------------------------------------
def test_setup_installs_the_pins_in_its_own_venv() -> None:
    setup = (ROOT / "scripts/setup-triton.sh").read_text()
    assert f"nvidia-pytriton=={versions.PYTRITON_VERSION}" in setup
    assert f"torch=={versions.TRITON_TORCH_VERSION}" in setup
    assert f"numpy=={versions.TRITON_NUMPY_VERSION}" in setup
    assert "bash scripts/setup-triton.sh" in (ROOT / "scripts/setup.sh").read_text()


def test_image_carries_the_python_backend_on_the_pins() -> None:
    text = (ROOT / "deploy/kind/triton.Dockerfile").read_text()
    run = " ".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    assert f"nvidia-pytriton=={versions.PYTRITON_VERSION}" in run
    assert f"torch=={versions.TRITON_TORCH_VERSION}" in run
    assert f"numpy=={versions.TRITON_NUMPY_VERSION}" in run
    assert "PYTHON BACKEND ONLY" in text  # the image says which backend it carries
    assert "COPY servecmp/servers/triton/model.py /opt/servecmp/model.py" in text
    assert "USER 1000:1000" in text
    import yaml

    vals = yaml.safe_load((ROOT / "helm/servecmp/charts/triton/values.yaml").read_text())
    assert vals["modelPy"] == "/opt/servecmp/model.py"
    assert vals["image"]["tag"] == (
        f"triton{versions.TRITON_VERSION}-pytriton{versions.PYTRITON_VERSION}-py3.11-"
        f"torch{versions.TRITON_TORCH_VERSION}"
    )


def test_missing_venv_is_reported_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SERVECMP_TRITON_VENV", str(tmp_path / "nope"))
    reason = TritonServer.availability()
    assert reason and "setup-triton.sh" in reason and "nope" in reason


# ---- contracts against the installed binary and wheel --------------------------------------------
def _help() -> str:
    out = subprocess.run(
        [str(binary()), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **environment()},
        check=False,
    )
    return out.stdout + out.stderr


@needs_venv
def test_contract_every_rendered_flag_exists_in_the_binary() -> None:
    text = _help()
    known = set(re.findall(r"^\s+(--[a-z0-9-]+)", text, flags=re.M))
    flags = config.flags(
        parse_experiment({"name": "t", "targets": [{"server": "triton", "protocol": "rest"}]}),
        _local(),
    )
    used = {f.split("=", 1)[0] for f in flags} | {"--backend-directory"}
    assert used <= known, sorted(used - known)
    # the defaults the wire and FLAG_DEFAULTS state, as the binary prints them
    for default in ("Default is 8000", "Default is 8001", "Default is 8002", '"none"'):
        assert default in text, default


class _Placement:
    bind_host = "127.0.0.1"

    def port(self, server: str, role: str) -> int:
        return {"rest": 18000, "grpc": 18001, "metrics": 18002}[role]

    def path(self, server: str, role: str) -> str:
        return "/m"


def _local() -> Any:
    return _Placement()


@needs_venv
@pytest.mark.parametrize("batching", [False, True])
def test_contract_model_config_parses_as_tritons_model_config(batching: bool) -> None:
    exp = parse_experiment(
        {
            "name": "t",
            "model": MODEL,
            "targets": [{"server": "triton", "protocol": "rest"}],
            "tuning": {"workers": 2, "batching": {"enabled": batching}},
        }
    )
    code = (
        "import json, sys; from google.protobuf import text_format, json_format; "
        "from tritonclient.grpc import model_config_pb2 as m; "
        "c = text_format.Parse(sys.stdin.read(), m.ModelConfig()); "
        "print(json.dumps(json_format.MessageToDict(c)))"
    )
    out = subprocess.run(
        [str(venv_dir() / "bin" / "python"), "-c", code],
        input=config.model_config(exp),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["instanceGroup"] == [{"count": 2, "kind": "KIND_CPU"}]
    assert doc["parameters"]["intra_op_threads"]["stringValue"] == "1"
    assert ("dynamicBatching" in doc) is batching


@needs_venv
def test_contract_installed_wheel_is_the_pin() -> None:
    out = subprocess.run(
        [
            str(venv_dir() / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; "
            "print(m.version('nvidia-pytriton'), m.version('numpy'), m.version('torch'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pyt, np_v, torch_v = out.stdout.split()
    assert pyt == versions.PYTRITON_VERSION and np_v == versions.TRITON_NUMPY_VERSION
    assert torch_v.startswith(versions.TRITON_TORCH_VERSION)


# ---- the real server -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_root(exported_model: Callable[[str], Path]) -> Path:
    from servecmp.models.export import DEFAULT_SEED, artifacts, export_model, seed_for_version

    root = exported_model(MODEL)
    if not artifacts(MODEL, root, 2).mar.is_file():
        export_model(MODEL, root, seed=seed_for_version(DEFAULT_SEED, 2), version=2)
    return root


@pytest.fixture(scope="module")
def triton_server(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    from servecmp.run.standalone import start_server

    if REASON:
        pytest.skip(REASON)
    work = tmp_path_factory.mktemp("triton run dir")  # a space in the path
    server = start_server("triton", MODEL, work, model_root, payload={"batch_size": 4})
    assert isinstance(server, TritonServer)
    yield server
    tree = server.process.tree() if server.process else []
    server.stop()
    assert not _alive(tree), "Triton processes survived stop()"


def _payloads(batch: int, version: int = 1) -> Any:
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.export import DEFAULT_SEED, seed_for_version
    from servecmp.models.registry import get_model

    return PayloadSet.build(
        get_model(MODEL), 99, batch, 4, weights_seed=seed_for_version(DEFAULT_SEED, version)
    )


@needs_venv
@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_protocol_answers_the_expected_logits(
    triton_server: TritonServer, target: Target, batch: int
) -> None:
    assert outcomes(triton_server, target, _payloads(batch)) == ["ok"] * 4


@needs_venv
@pytest.mark.slow
def test_binary_tensor_extension_answers_as_json_does_in_fewer_bytes(
    triton_server: TritonServer,
) -> None:
    """Triton v2.51.0 docs/protocol/extension_binary_data.md: binary inputs after the JSON
    header, binary outputs asked for with binary_data_output."""
    assert_binary_answers_as_json_in_fewer_bytes(binary_vs_json(triton_server, _payloads(4)), 4)


@needs_venv
@pytest.mark.slow
@pytest.mark.parametrize(
    ("cut", "message"),
    [(4, "unexpected size for input 'input'"), (-4, "unexpected additional input data")],
    ids=["short", "long"],
)
def test_malformed_binary_body_is_triton_s_400_counted_as_a_failure(
    triton_server: TritonServer, cut: int, message: str
) -> None:
    """src/http_server.cc v2.51.0: binary data shorter or longer than the inputs'
    binary_data_size is INVALID_ARG (HTTP 400); the step counts it as a transport error."""
    results = malformed_binary(triton_server, _payloads(1), cut)
    assert [r.error_kind for r in results] == ["http_4xx"] * 4
    assert all(message in str(r.exception) for r in results), results[0].exception


@needs_venv
@pytest.mark.slow
def test_run_dir_has_a_space_and_the_server_runs_from_it(triton_server: TritonServer) -> None:
    assert " " in str(triton_server.repository())
    assert (triton_server.repository() / MODEL / "config.pbtxt").is_file()
    argv = triton_server.process.argv if triton_server.process else []
    repo_flag = next(a for a in argv if a.startswith("--model-repository="))
    assert " " not in repo_flag  # the staged space-free link (stub_launcher.cc quotes nothing)


@needs_venv
@pytest.mark.slow
def test_a_wrong_model_version_is_caught_as_a_wrong_answer(triton_server: TritonServer) -> None:
    answers = outcomes(triton_server, TARGETS[0], _payloads(1, version=2))
    assert all(o.startswith("wrong_answer") for o in answers)


@needs_venv
@pytest.mark.slow
def test_readiness_and_server_metadata(triton_server: TritonServer) -> None:
    base = f"http://{triton_server.endpoints.rest}"
    assert requests.get(f"{base}/v2/health/ready", timeout=5).status_code == 200
    assert requests.get(f"{base}/v2/models/{MODEL}/ready", timeout=5).status_code == 200
    assert requests.get(f"{base}/v2/models/nope/ready", timeout=5).status_code != 200
    assert triton_server.is_ready()
    prov = ADAPTER.provenance(triton_server)
    assert prov is not None and prov["version"] == versions.TRITON_VERSION  # from GET /v2
    assert "model_repository" in prov["extensions"] and "statistics" in prov["extensions"]
    assert prov["nvidia_pytriton"] == versions.PYTRITON_VERSION


@needs_venv
@pytest.mark.slow
def test_runtime_probe_reads_the_running_binarys_version(triton_server: TritonServer) -> None:
    """What the cluster path runs in the container (kubectl exec), here against the local server:
    the generated flags.txt names the HTTP port, GET /v2 the version."""
    from servecmp.servers.triton import RUNTIME_PROBE, WIRE

    code = RUNTIME_PROBE.replace(WIRE.paths["config"], str(triton_server.config_dir))
    out = subprocess.run(
        [str(venv_dir() / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = ADAPTER.parse_runtime([out.stdout])
    assert found["version"] == versions.TRITON_VERSION, out.stderr[-500:]
    assert found["nvidia-pytriton"] == versions.PYTRITON_VERSION
    assert ADAPTER.parse_runtime(["garbage"])["version"] == "unknown"


@needs_venv
@pytest.mark.slow
def test_metrics_scrape_has_the_names_and_counts_requests(triton_server: TritonServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, Any]:
        text = requests.get(triton_server.endpoints.metrics_url, timeout=5).text
        return {f.name: f for f in text_string_to_metric_families(text)}

    def value(fams: dict[str, Any], name: str) -> float:
        return sum(
            s.value
            for s in fams[name].samples
            if s.labels.get("model") == MODEL and s.name in (name, name + "_total")
        )

    before = scrape()
    assert set(tmetrics.NAMES) <= set(before), sorted(set(tmetrics.NAMES) - set(before))
    assert outcomes(triton_server, TARGETS[1], _payloads(4)) == ["ok"] * 4  # gRPC counts too
    after = scrape()
    assert value(after, tmetrics.SUCCESS) - value(before, tmetrics.SUCCESS) == 4
    # nv_inference_count counts examples: 4 requests of 4
    assert value(after, tmetrics.INFERENCES) - value(before, tmetrics.INFERENCES) == 16


@needs_venv
@pytest.mark.slow
def test_statistics_extension_splits_queue_and_compute(triton_server: TritonServer) -> None:
    r = requests.get(f"http://{triton_server.endpoints.rest}/v2/models/{MODEL}/stats", timeout=5)
    stats = r.json()["model_stats"][0]["inference_stats"]
    assert {"queue", "compute_input", "compute_infer", "compute_output"} <= set(stats)
    assert stats["compute_infer"]["count"] > 0


@needs_venv
@pytest.mark.slow
def test_bad_payloads_get_clear_errors(triton_server: TritonServer) -> None:
    ok_url, missing_url = ADAPTER.predict_urls(triton_server.endpoints.rest, MODEL)

    def post(url: str, body: object) -> tuple[int, str]:
        r = requests.post(url, json=body, timeout=10)
        return r.status_code, r.json().get("error", "")

    def tensor(**over: object) -> dict[str, object]:
        t = {"name": "input", "shape": [1, 3, 64, 64], "datatype": "FP32", "data": [0.0] * 12288}
        return {"inputs": [{**t, **over}]}

    # Triton 2.51 answers a body it cannot parse with 500 (a server error), naming the field
    code, err = post(ok_url, {"instances": [[1.0]]})
    assert code == 500 and "Unable to parse 'inputs'" in err
    code, err = post(ok_url, tensor(datatype="INT32"))
    assert code == 500 and "Unable to parse 'data'" in err
    code, err = post(ok_url, tensor(data=[1.0]))
    assert code == 500 and "Shape does not match true shape of 'data'" in err
    r = requests.post(ok_url, data=b"\x00\x01{", timeout=10)
    assert r.status_code == 500 and "failed to parse the request JSON" in r.json()["error"]
    # checks against the model's config are 400s
    code, err = post(ok_url, tensor(shape=[1, 5, 8, 8], data=[0.0] * 320))
    assert code == 400 and "Expected [-1,3,64,64], got [1,5,8,8]" in err
    code, err = post(ok_url, tensor(shape=[5, 3, 64, 64], data=[0.0] * 5 * 12288))
    assert code == 400 and "batch-size must be <= 4" in err  # max_batch_size = payload batch
    code, err = post(ok_url, tensor(name="x"))
    assert code == 400 and "unexpected inference input 'x'" in err
    code, err = post(missing_url, tensor())
    assert code == 404 and "unknown model" in err


@needs_venv
@pytest.mark.slow
def test_bad_payload_probe_speaks_the_oip_route(triton_server: TritonServer) -> None:
    """The friction probe sends its bad bodies in the route's own format: on an OIP infer route a
    wrong shape is an OIP tensor of the wrong shape (not a body without ``inputs``), so what is
    judged is whether Triton names the problem."""
    from servecmp.run import probes

    ok_url, missing_url = ADAPTER.predict_urls(triton_server.endpoints.rest, MODEL)
    results = {r.case: r for r in probes.probe_bad_payloads(ok_url, missing_url, (3, 64, 64))}
    assert (
        results["wrong_shape"].status == 400 and "got [1,3,65,64]" in results["wrong_shape"].message
    )
    unnamed = {r.case: (r.status, r.message) for r in results.values() if not r.names_problem}
    # Triton's dtype message ("attempt to access JSON non-number as double", HTTP 500) holds none
    # of the probe's dtype words: the probe records it as not naming the problem
    assert set(unnamed) == {"wrong_dtype"}, unnamed
    assert unnamed["wrong_dtype"][0] == 500 and "non-number" in unnamed["wrong_dtype"][1]
    valid = probes.valid_body((3, 64, 64), oip=True)
    assert requests.post(ok_url, data=valid, timeout=10).status_code == 200


@needs_venv
@pytest.mark.slow
def test_bad_grpc_request_is_invalid_argument(triton_server: TritonServer) -> None:
    import grpc

    from servecmp.load.clients import protos

    pb2, pb2_grpc = protos.load("oip")
    req = pb2.ModelInferRequest(
        model_name=MODEL,
        inputs=[
            pb2.ModelInferRequest.InferInputTensor(
                name="input",
                datatype="INT32",
                shape=[1],
                contents=pb2.InferTensorContents(int_contents=[1]),
            )
        ],
    )
    with (
        grpc.insecure_channel(triton_server.endpoints.grpc) as ch,
        pytest.raises(grpc.RpcError) as info,
    ):
        pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=10)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@needs_venv
@pytest.mark.slow
def test_model_update_through_the_repository_api(
    triton_server: TritonServer, model_root: Path
) -> None:
    import shutil

    from servecmp.models.export import artifacts

    repo = triton_server.repository()
    update = ADAPTER.update_action(triton_server, artifacts(MODEL, model_root, 2), repo)
    pid = triton_server.measured_pid()
    try:
        update()
        assert triton_server.measured_pid() == pid  # in place, no restart
        assert outcomes(triton_server, TARGETS[0], _payloads(1, version=2)) == ["ok"] * 4
        assert outcomes(triton_server, TARGETS[1], _payloads(1, version=2)) == ["ok"] * 4
        r = requests.post(
            f"http://{triton_server.endpoints.rest}/v2/models/{MODEL}/infer",
            data=_payloads(1).body(Encoding.oip, 0),
            timeout=10,
            headers={"Content-Type": "application/json"},
        )
        assert r.json()["model_version"] == "2"
    finally:  # back to v1 for the other tests
        shutil.rmtree(repo / MODEL / "2", ignore_errors=True)
        triton_server.load_model()
    assert outcomes(triton_server, TARGETS[0], _payloads(1)) == ["ok"] * 4


@needs_venv
@pytest.mark.slow
def test_kill_hard_then_restart_recovers(triton_server: TritonServer) -> None:
    tree = triton_server.process.tree() if triton_server.process else []
    assert any("triton_python_backend_stub" in p.name() for p in tree)  # the instance's stub
    triton_server.kill_hard()
    assert not _alive(tree)
    with pytest.raises(requests.ConnectionError):
        triton_server.is_ready()
    triton_server.start()
    triton_server.wait_ready(timeout_s=120)
    for target in TARGETS:
        assert outcomes(triton_server, target, _payloads(1)) == ["ok"] * 4


@needs_venv
@pytest.mark.slow
def test_two_workers_are_two_stub_processes_and_stop_leaves_nothing(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from servecmp.run.standalone import start_server

    server = start_server(
        "triton",
        MODEL,
        tmp_path_factory.mktemp("triton two workers"),
        model_root,
        resources={"cpus": 2},
        tuning={"workers": 2},
    )
    assert isinstance(server, TritonServer)
    stage = server._stage
    try:
        assert server.process is not None
        tree = server.process.tree()
        stubs = [p for p in tree if "triton_python_backend_stub" in p.name()]
        assert len(stubs) == 2  # one stub process per instance, each with its own model
        for target in TARGETS:
            assert outcomes(server, target, _payloads(1)) == ["ok"] * 4
    finally:
        server.stop()
    assert not _alive(tree)
    assert stage is not None and not stage.exists()  # the staged links are gone too


KILLED_ORCHESTRATOR = """
import json, sys, time
from pathlib import Path
from servecmp.run import watchdog
from servecmp.run.standalone import start_server
watchdog.start()
srv = start_server("triton", "resnet", Path(sys.argv[1]), Path(sys.argv[2]))
tree = [p.pid for p in srv.process.tree()]
(Path(sys.argv[1]) / "pids.json").write_text(json.dumps({"pids": tree, "stage": str(srv._stage)}))
time.sleep(600)
"""


@needs_venv
@pytest.mark.slow
def test_no_process_left_after_kill_9_of_the_orchestrator(model_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "orchestrator run"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    orch = subprocess.Popen(
        [sys.executable, "-c", KILLED_ORCHESTRATOR, str(work), str(model_root)], env=env
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while not (work / "pids.json").is_file() and time.monotonic() < deadline:
            assert orch.poll() is None, "the orchestrator died before the server was ready"
            time.sleep(0.5)
        info = json.loads((work / "pids.json").read_text())
        pids = info["pids"]
        assert len(pids) >= 2  # tritonserver and its stub
        orch.send_signal(signal.SIGKILL)
        orch.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            any(psutil.pid_exists(p) for p in pids) or Path(info["stage"]).exists()
        ):
            time.sleep(0.2)
        left = _alive([psutil.Process(p) for p in pids if psutil.pid_exists(p)])
        assert not left, f"still running after kill -9 of the orchestrator: {left}"
        assert not Path(info["stage"]).exists()
    finally:
        if orch.poll() is None:
            orch.kill()
        for p in pids:
            if psutil.pid_exists(p):
                os.kill(p, signal.SIGKILL)


@needs_venv
@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_breakdown_parts_add_up_to_the_clients_mean(
    triton_server: TritonServer, target: Target, tmp_path: Path
) -> None:
    """A real step reads Triton's duration counters at its window edges: outside, queue, the
    backend's input/output handling and compute add up to the client's mean within noise."""
    from breakdown_util import assert_parts_add_up, breakdown_step, parts_of

    path = str(_payloads(1).save(tmp_path))
    address = triton_server.address(target.protocol)
    r = breakdown_step(target, address, triton_server.endpoints.metrics_url, path, tmp_path)
    assert_parts_add_up(r)
    parts = parts_of(r)
    assert parts["compute"].ms is not None and parts["compute"].ms > 0
    assert parts["queue"].ms is not None and parts["pre_post"].ms is not None
