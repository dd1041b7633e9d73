"""KServe's Python model server (kserve 0.21.0), for real: started from the generated flags in
its own venv, driven by the project's clients over v1 REST, OIP v2 REST and OIP v2 gRPC.

Contract tests check each upstream fact the adapter rests on against the INSTALLED kserve
(``.venv-kserve``): flag names, default ports, metric names, the routes, the missing .proto.
Everything skips (with the reason) only when ``.venv-kserve`` is missing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import requests
from answers_util import (
    assert_binary_answers_as_json_in_fewer_bytes,
    binary_vs_json,
    malformed_binary,
    outcomes,
)

from servecmp.experiment import Encoding, Protocol, Target, parse_experiment
from servecmp.servers import registry
from servecmp.servers.kserve import ADAPTER, WIRE, config
from servecmp.servers.kserve import metrics as kmetrics
from servecmp.servers.kserve.local import KServeServer, venv_python

pytestmark = pytest.mark.kserve
MODEL = "resnet"
REASON = KServeServer.availability()
needs_venv = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def kserve_python(code: str) -> Any:
    """Run ``code`` in the KServe venv; its last stdout line parsed as JSON."""
    out = subprocess.run(
        [str(venv_python()), "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _exp(**fields: object) -> Any:
    return parse_experiment(
        {
            "name": "k",
            "model": MODEL,
            "targets": [{"server": "kserve", "protocol": "rest"}],
            **fields,
        }
    )


# ---- no server: rendering, adapter, registry -----------------------------------------------------
class _Placement:
    bind_host = "127.0.0.1"

    def port(self, server: str, role: str) -> int:
        return {"rest": 18080, "grpc": 18081, "metrics": 18080}[role]

    def path(self, server: str, role: str) -> str:
        return {"models": "/m root", "config": "/c"}[role]


def test_flags_carry_the_experiment_budget() -> None:
    exp = _exp(resources={"cpus": 4}, tuning={"workers": 2, "io_threads": 3})
    rendered = config.render(exp, _Placement())
    flags = config.read_flags(rendered.files[config.FLAGS_FILE])
    assert "--workers=2" in flags and "--max_threads=3" in flags
    assert "--intra_op_threads=2" in flags  # 4 cpus / 2 workers
    assert "--http_port=18080" in flags and "--grpc_port=18081" in flags
    assert "--model_dir=/m root/resnet" in flags and f"--model_name={MODEL}" in flags
    assert rendered.env["OMP_NUM_THREADS"] == "2"
    assert "ignored" not in rendered.files[config.FLAGS_FILE]


def test_batching_on_with_a_kserve_target_is_refused_naming_the_field() -> None:
    from servecmp.experiment import ExperimentError

    with pytest.raises(
        ExperimentError, match=r"tuning\.batching\.enabled is true.*no server-side batching"
    ):
        _exp(tuning={"batching": {"enabled": True}})
    two = [{"server": "kserve", "protocol": "rest"}, {"server": "torchserve", "protocol": "rest"}]
    with pytest.raises(ExperimentError, match=r"tuning\.per_server\.kserve\.batching\.enabled"):
        parse_experiment(
            {
                "name": "k",
                "targets": two,
                "configuration": "tuned",
                "tuning": {"per_server": {"kserve": {"batching": {"enabled": True}}}},
            }
        )
    # batching for the other server only is fine
    parse_experiment(
        {
            "name": "k",
            "targets": two,
            "configuration": "tuned",
            "tuning": {"per_server": {"torchserve": {"batching": {"enabled": True}}}},
        }
    )
    assert any(
        r.setting == "tuning.batching.enabled" and "refused" in r.rule for r in ADAPTER.fairness
    )


def test_grpc_parent_gets_the_whole_math_budget_with_several_workers() -> None:
    one = config.flags(_exp(resources={"cpus": 2}), _Placement())  # type: ignore[arg-type]
    assert not [f for f in one if f.startswith("--parent_intra_op_threads")]  # rendered as before
    two = config.flags(_exp(resources={"cpus": 2}, tuning={"workers": 2}), _Placement())  # type: ignore[arg-type]
    assert "--intra_op_threads=1" in two and "--parent_intra_op_threads=2" in two


def test_max_threads_is_not_searched_and_workers_are_rest_only() -> None:
    knobs = {k.field: k for k in ADAPTER.search_space.knobs}  # type: ignore[union-attr]
    assert "tuning.io_threads" not in knobs
    assert knobs["tuning.workers"].protocols == ("rest",)
    row = next(r for r in ADAPTER.fairness if r.setting == "tuning.io_threads")
    assert "no effect" in row.knob


@needs_venv
def test_contract_grpc_servicer_methods_are_all_coroutines() -> None:
    """--max_threads sizes the executor grpc.aio runs synchronous handlers on: with every servicer
    method async it cannot matter (kserve 0.21.0 protocol/grpc/{servicer,server}.py)."""
    found = kserve_python(
        "import inspect, json; from kserve.protocol.grpc.servicer import InferenceServicer as S; "
        "from kserve.protocol.grpc import server; "
        "m = [n for n, f in vars(S).items() if inspect.isfunction(f) and n[0].isupper()]; "
        "src = inspect.getsource(server.GRPCServer.start); "
        "print(json.dumps({'methods': m, 'sync': [n for n in m if not inspect.iscoroutinefunction(getattr(S, n))], "
        "'pool': 'ThreadPoolExecutor(max_workers=max_workers)' in src}))"
    )
    assert "ModelInfer" in found["methods"] and found["sync"] == [] and found["pool"]


def test_logging_knob_renders_only_when_quiet() -> None:
    from servecmp.servers.kserve import logconfig

    default = config.render(_exp(), _Placement())  # type: ignore[arg-type]
    explicit = config.render(_exp(tuning={"logging": "default"}), _Placement())  # type: ignore[arg-type]
    assert default.files == explicit.files and set(default.files) == {config.FLAGS_FILE}
    quiet = config.render(_exp(tuning={"logging": "quiet"}), _Placement())  # type: ignore[arg-type]
    assert "--log_config_file=/c/log_config.json" in config.read_flags(
        quiet.files[config.FLAGS_FILE]
    )
    cfg = json.loads(quiet.files[logconfig.FILE])
    assert {n: cfg["loggers"][n]["level"] for n in logconfig.PER_REQUEST} == dict.fromkeys(
        logconfig.PER_REQUEST, "WARNING"
    )
    assert cfg["loggers"]["uvicorn"]["level"] == "INFO"  # start-up lines stay


@needs_venv
def test_a_rest_process_copy_loads_in_the_background_and_requests_wait_for_it(
    tmp_path: Path,
) -> None:
    """Unpickling the model in a spawned REST process must return before the copy is loaded (the
    parent kills a process that has not answered its ping within 5 s), and load() waits for that
    copy instead of loading twice; the copy runs the workers' thread count."""
    from servecmp.servers.kserve.local import SCRIPT

    code = f"""
import json, pickle, sys, torch
sys.argv = ["x"]; sys.path.insert(0, {str(SCRIPT.parent)!r})
import model_server as ms
from pathlib import Path
d = Path({str(tmp_path)!r}); (d / "1").mkdir()
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(d / "1" / "model.pt"))
m = ms.TorchScriptModel("m", str(d), threads=2, worker_threads=1)
m.load()
c = pickle.loads(pickle.dumps(m))
background = c._loading is not None and c._loading.name == "servecmp-model-load"
ok = c.load()
(d / "2").mkdir()
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(d / "2" / "model.pt"))
reloaded = c.load() and c.version == 2
ms.patient_ping()
from kserve.protocol.rest.multiprocess.server import RESTServerProcess
class Pipe:
    waited = None
    def send(self, b): pass
    def poll(self, t): Pipe.waited = t; return False
p = RESTServerProcess.__new__(RESTServerProcess); p._parent_conn = Pipe()
RESTServerProcess.ping(p, 5)
print(json.dumps({{"background": background, "ok": ok, "reloaded": reloaded, "ready": c.ready, "module": c._module is not None,
                  "threads": c.threads, "parent_threads": m.threads, "waited": Pipe.waited}}))
"""
    found = kserve_python(code)
    assert found["background"] and found["ok"] and found["ready"] and found["module"]
    assert found["reloaded"]  # a later load() is a reload (the repository extension), not a no-op
    assert (found["threads"], found["parent_threads"]) == (1, 2)
    assert found["waited"] >= 30  # the parent waits long enough for a copy that is still importing


@needs_venv
def test_contract_log_config_is_kserves_own_at_info() -> None:
    """logconfig.config("INFO") is exactly kserve 0.21.0's KSERVE_LOG_CONFIG, so "quiet" changes
    only the per-request loggers' levels."""
    from servecmp.servers.kserve import logconfig

    upstream = kserve_python(
        "import json; from kserve.logging import KSERVE_LOG_CONFIG as K; print(json.dumps(K))"
    )
    assert json.loads(json.dumps(logconfig.config("INFO"))) == upstream


def test_registry_lists_kserve_after_tfserving_with_its_pieces() -> None:
    names = registry.names()
    assert names.index("kserve") == names.index("tfserving") + 1
    a = registry.get("kserve")
    assert a.framework == "pytorch" and a.baseline == "pytorch-inprocess" and a.chart == "kserve"
    assert a.encodings(Protocol.rest) == (Encoding.json, Encoding.oip, Encoding.oip_binary)
    assert a.encodings(Protocol.grpc) == (Encoding.oip,)
    for spec in a.protocols:
        assert spec.client_class().__name__ in ("OipRestClient", "OipGrpcClient")
    assert {r.setting for r in a.fairness} >= {
        "tuning.workers",
        "tuning.intra_op_threads",
        "tuning.io_threads",
        "tuning.batching.enabled",
    }
    assert a.chart_files == {"config.flags": config.FLAGS_FILE}
    assert a.search_space is not None and all(k.source for k in a.search_space.knobs)
    assert WIRE.port("metrics").number == WIRE.port("rest").number  # /metrics on the HTTP port


def test_targets_accept_kserve_pairs_and_refuse_others() -> None:
    names = [
        Target(server="kserve", protocol=p, encoding=e).name  # type: ignore[arg-type]
        for p, e in (("rest", None), ("rest", "oip"), ("grpc", None))
    ]
    assert names == ["kserve-rest-json", "kserve-rest-oip", "kserve-grpc-oip"]
    with pytest.raises(ValueError, match="encoding 'raw' is not valid for kserve/rest"):
        Target(server="kserve", protocol="rest", encoding="raw")  # type: ignore[arg-type]


def test_missing_venv_is_reported_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SERVECMP_KSERVE_VENV", str(tmp_path / "nope"))
    reason = KServeServer.availability()
    assert reason and "scripts/setup.sh" in reason and "protobuf<7" in reason


def test_default_venv_is_the_checkouts_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without $SERVECMP_KSERVE_VENV, the server launcher and the OIP stub builder both look for
    ``.venv-kserve`` beside pyproject.toml (the checkout root), not inside the package."""
    from servecmp.load.clients.protos import kserve_venv
    from servecmp.servers.kserve.local import venv_dir

    monkeypatch.delenv("SERVECMP_KSERVE_VENV", raising=False)
    root = Path(__file__).resolve().parents[1]
    assert (root / "pyproject.toml").is_file()
    assert venv_dir() == root / ".venv-kserve"
    assert kserve_venv() == root / ".venv-kserve"


def test_descriptor_reader_refuses_a_file_that_is_not_generated_code() -> None:
    from servecmp.load.clients import protos

    with pytest.raises(protos.StubError, match="AddSerializedFile"):
        protos.descriptor_bytes("x = 1\n")


# ---- contract: facts from the installed kserve 0.21.0 ---------------------------------------------
@needs_venv
def test_contract_installed_kserve_is_the_pin_and_needs_its_own_venv() -> None:
    from servecmp.versions import KSERVE_VERSION

    got = kserve_python(
        "import importlib.metadata as m, json; "
        "print(json.dumps([m.version('kserve'), m.version('protobuf'), m.version('torch')]))"
    )
    assert got[0] == KSERVE_VERSION
    assert int(got[1].split(".")[0]) < 7  # kserve requires protobuf<7; our stack has 7.x
    assert got[2].startswith("2.13.0")


@needs_venv
def test_contract_every_rendered_flag_exists_in_kserve_or_our_script() -> None:
    code = (
        "import sys, json; sys.argv=['x']\n"
        "from kserve.model_server import parser\n"
        "from kserve.constants import constants as c\n"
        "print(json.dumps({'flags': [o for a in parser._actions for o in a.option_strings],"
        " 'http': c.DEFAULT_HTTP_PORT, 'grpc': c.DEFAULT_GRPC_PORT}))"
    )
    facts = kserve_python(code)
    ours = {"--model_dir", "--intra_op_threads", "--interop_threads", "--output_name"}
    flags = config.read_flags(config.render(_exp(), _Placement()).files[config.FLAGS_FILE])
    for flag in flags:
        name = flag.split("=", 1)[0]
        assert name in facts["flags"] or name in ours, f"{name} is not a kserve 0.21.0 flag"
    assert {"--workers", "--max_threads", "--enable_grpc", "--http_port", "--grpc_port"} <= set(
        facts["flags"]
    )
    assert (WIRE.port("rest").number, WIRE.port("grpc").number) == (facts["http"], facts["grpc"])


@needs_venv
def test_contract_metric_names_and_label() -> None:
    code = (
        "import json\nfrom kserve import metrics as m\n"
        "print(json.dumps({h._name: list(h._labelnames) for h in (m.PRE_HIST_TIME, m.PREDICT_HIST_TIME,"
        " m.POST_HIST_TIME, m.EXPLAIN_HIST_TIME)}))"
    )
    facts = kserve_python(code)
    assert set(facts) == set(kmetrics.NAMES)
    assert all(labels == ["model_name"] for labels in facts.values())


@needs_venv
def test_contract_routes_and_no_proto_file_in_the_wheel() -> None:
    code = (
        "import sys, json, importlib.metadata as m; sys.argv=['x']\n"
        "import fastapi\n"
        "from kserve.protocol.rest.v1_endpoints import register_v1_endpoints\n"
        "from kserve.protocol.rest.v2_endpoints import register_v2_endpoints\n"
        "app = fastapi.FastAPI(); register_v1_endpoints(app, None, None); register_v2_endpoints(app, None, None)\n"
        "files = [str(f) for f in m.files('kserve')]\n"
        "print(json.dumps({'routes': list(app.openapi()['paths']),"
        " 'protos': [f for f in files if f.endswith('.proto')],"
        " 'pb2': [f for f in files if f.endswith('grpc_predict_v2_pb2.py')]}))"
    )
    facts = kserve_python(code)
    for route in (
        "/v1/models/{model_name}:predict",
        "/v2/models/{model_name}/infer",
        "/v2/health/ready",
        "/v2/models/{model_name}/ready",
        "/v2/repository/models/{model_name}/load",
    ):
        assert route in facts["routes"]
    assert WIRE.ready_path.replace("{model}", "{model_name}") in facts["routes"]
    assert facts["protos"] == []  # hence protos.py reads the descriptor out of the pb2 file
    assert facts["pb2"] == ["kserve/protocol/grpc/grpc_predict_v2_pb2.py"]


@needs_venv
def test_oip_stubs_generated_with_our_grpcio_tools(tmp_path: Path) -> None:
    from servecmp.load.clients import protos

    d = protos.stub_dir("oip", tmp_path / "stubs")
    grpc_py = (d / protos.SETS["oip"].package / "grpc_predict_v2_pb2_grpc.py").read_text()
    assert "/inference.GRPCInferenceService/ModelInfer" in grpc_py  # the OIP wire path
    assert protos.stub_dir("oip", tmp_path / "stubs") == d  # cached


# ---- the real server ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_root(exported_model: Callable[[str], Path]) -> Path:
    from servecmp.models.export import DEFAULT_SEED, artifacts, export_model, seed_for_version

    root = exported_model(MODEL)
    if not artifacts(MODEL, root, 2).mar.is_file():
        export_model(MODEL, root, seed=seed_for_version(DEFAULT_SEED, 2), version=2)
    return root


@pytest.fixture(scope="module")
def kserve_server(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KServeServer]:
    from servecmp.run.standalone import start_server

    if REASON:
        pytest.skip(REASON)
    work = tmp_path_factory.mktemp("kserve run dir")  # a space in the path
    server = start_server("kserve", MODEL, work, model_root)
    yield server
    tree = server.process.tree() if server.process else []
    server.stop()
    left = [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"KServe processes survived stop(): {left}"


def _payloads(batch: int, version: int = 1) -> Any:
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.export import DEFAULT_SEED, seed_for_version
    from servecmp.models.registry import get_model

    return PayloadSet.build(
        get_model(MODEL), 99, batch, 4, weights_seed=seed_for_version(DEFAULT_SEED, version)
    )


TARGETS = [
    Target(server="kserve", protocol="rest"),  # type: ignore[arg-type]
    Target(server="kserve", protocol="rest", encoding="oip"),  # type: ignore[arg-type]
    Target(server="kserve", protocol="grpc"),
]  # type: ignore[arg-type]


@needs_venv
@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_protocol_answers_the_expected_logits(
    kserve_server: KServeServer, target: Target, batch: int
) -> None:
    assert outcomes(kserve_server, target, _payloads(batch)) == ["ok"] * 4


@needs_venv
@pytest.mark.slow
def test_binary_tensor_extension_answers_as_json_does_in_fewer_bytes(
    kserve_server: KServeServer,
) -> None:
    """kserve 0.21.0 decodes a body carrying ``inference-header-content-length``
    (protocol/dataplane.py, InferRequest.from_bytes) and answers binary outputs for
    ``binary_data_output`` (InferRequest.use_binary_outputs, InferResponse.to_rest)."""
    assert_binary_answers_as_json_in_fewer_bytes(binary_vs_json(kserve_server, _payloads(4)), 4)


@needs_venv
@pytest.mark.slow
def test_malformed_binary_body_is_kserves_error_counted_as_a_failure(
    kserve_server: KServeServer,
) -> None:
    """kserve 0.21.0 InferRequest.from_bytes slices each input's binary_data_size and reshapes it
    unchecked: a short body is a ValueError, answered 500; bytes after the last input are
    never looked at, so a long body is answered as if they were not there."""
    short = malformed_binary(kserve_server, _payloads(1), 4)
    assert all(not r.ok for r in short)
    assert short[0].error_kind == "http_5xx" and "cannot reshape" in str(short[0].exception)
    long = malformed_binary(kserve_server, _payloads(1), -4)
    assert [r.outcome.value for r in long] == ["ok"] * 4  # upstream checks no trailing bytes


@needs_venv
@pytest.mark.slow
def test_a_wrong_model_version_is_caught_as_a_wrong_answer(kserve_server: KServeServer) -> None:
    # The clients check logits: v2 weights' expectations against the v1 server must fail.
    answers = outcomes(kserve_server, TARGETS[1], _payloads(1, version=2))
    assert all(o.startswith("wrong_answer") for o in answers)


@needs_venv
@pytest.mark.slow
def test_readiness_endpoints(kserve_server: KServeServer) -> None:
    base = f"http://{kserve_server.endpoints.rest}"
    assert requests.get(f"{base}/v2/health/ready", timeout=5).json() == {"ready": True}
    assert requests.get(f"{base}/v2/models/{MODEL}/ready", timeout=5).json()["ready"] is True
    assert requests.get(f"{base}/v2/models/nope/ready", timeout=5).status_code == 404
    assert kserve_server.is_ready()


@needs_venv
@pytest.mark.slow
def test_metrics_scrape_parses_and_counts_predicts(kserve_server: KServeServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def predicts() -> float:
        text = requests.get(kserve_server.endpoints.metrics_url, timeout=5).text
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        assert set(kmetrics.NAMES) <= set(fams)
        return sum(
            s.value
            for s in fams[kmetrics.PREDICT].samples
            if s.name == kmetrics.PREDICT + "_count" and s.labels.get("model_name") == MODEL
        )

    before = predicts()
    assert outcomes(kserve_server, TARGETS[2], _payloads(1)) == ["ok"] * 4  # gRPC counts too
    assert predicts() - before == 4


@needs_venv
@pytest.mark.slow
def test_bad_payloads_get_clear_errors(kserve_server: KServeServer) -> None:
    base = f"http://{kserve_server.endpoints.rest}"
    ok_url, missing_url = ADAPTER.predict_urls(kserve_server.endpoints.rest, MODEL)

    def post(url: str, body: object) -> tuple[int, str]:
        r = requests.post(url, json=body, timeout=10)
        return r.status_code, r.json().get("error", "")

    assert post(ok_url, {"rows": [1]}) == (
        400,
        'v1 predict body must be a JSON object with "instances": [B, C, H, W]',
    )
    code, err = post(ok_url, {"instances": [[1, 2], [3]]})
    assert code == 400 and "not a rectangular array" in err
    code, err = post(missing_url, {"instances": [[1]]})
    assert code == 404 and "does not exist" in err
    v2 = f"{base}/v2/models/{MODEL}/infer"
    code, err = post(
        v2,
        {"inputs": [{"name": "input", "shape": [1, 3, 64, 64], "datatype": "INT32", "data": [1]}]},
    )
    assert code == 400 and "datatype must be FP32" in err
    code, err = post(
        v2,
        {"inputs": [{"name": "input", "shape": [1, 3, 64, 64], "datatype": "FP32", "data": [1.0]}]},
    )
    assert code == 400 and "cannot reshape" in err
    code, err = post(
        v2,
        {
            "inputs": [
                {"name": "input", "shape": [1, 5, 8, 8], "datatype": "FP32", "data": [0.0] * 320}
            ]
        },
    )
    assert (
        code == 400 and "input shape [1, 5, 8, 8] does not match the model's [B, 3, 64, 64]" in err
    )
    # a global-pooling CNN would run 65 x 64 too: the model's declared shape is enforced
    code, err = post(ok_url, {"instances": np.zeros((1, 3, 65, 64)).tolist()})
    assert code == 400 and "does not match" in err
    code, err = post(ok_url, {"instances": [[["a"] * 64] * 64] * 3})
    assert code == 400 and "could not convert string to float" in err
    r = requests.post(
        ok_url, data=bytes(range(256)) * 2, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert r.status_code == 400 and "Unrecognized request format" in r.json()["error"]
    r = requests.post(ok_url, data=b"{}", headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 400 and "Content-Type: application/json" in r.json()["error"]


@needs_venv
@pytest.mark.slow
def test_bad_grpc_request_is_invalid_argument(kserve_server: KServeServer) -> None:
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
        grpc.insecure_channel(kserve_server.endpoints.grpc) as ch,
        pytest.raises(grpc.RpcError) as info,
    ):
        pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=10)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "datatype must be FP32" in (info.value.details() or "")


@needs_venv
@pytest.mark.slow
def test_model_update_through_the_repository_extension(
    kserve_server: KServeServer, model_root: Path
) -> None:
    from servecmp.models.export import artifacts

    flags = config.read_flags((kserve_server.config_dir / config.FLAGS_FILE).read_text())
    model_dir = Path(next(f for f in flags if f.startswith("--model_dir=")).split("=", 1)[1])
    update = ADAPTER.update_action(kserve_server, artifacts(MODEL, model_root, 2), model_dir.parent)
    pid = kserve_server.measured_pid()
    try:
        update()
        assert kserve_server.measured_pid() == pid  # in place, no restart
        assert outcomes(kserve_server, TARGETS[1], _payloads(1, version=2)) == ["ok"] * 4
        r = requests.post(
            f"http://{kserve_server.endpoints.rest}/v2/models/{MODEL}/infer",
            data=_payloads(1).body(Encoding.oip, 0),
            timeout=10,
            headers={"Content-Type": "application/json"},
        )
        assert r.json()["model_version"] == "2"
    finally:  # back to v1 for the other tests
        (model_dir / "2" / "model.pt").unlink(missing_ok=True)
        kserve_server.reload_model()
    assert outcomes(kserve_server, TARGETS[0], _payloads(1)) == ["ok"] * 4


@needs_venv
@pytest.mark.slow
def test_kill_hard_then_restart_recovers(kserve_server: KServeServer) -> None:
    tree = kserve_server.process.tree() if kserve_server.process else []
    kserve_server.kill_hard()
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    with pytest.raises(requests.ConnectionError):
        kserve_server.is_ready()
    kserve_server.start()
    kserve_server.wait_ready(timeout_s=120)
    for target in TARGETS:
        assert outcomes(kserve_server, target, _payloads(1)) == ["ok"] * 4


@needs_venv
@pytest.mark.slow
def test_two_workers_are_two_rest_processes_and_stop_leaves_nothing(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from servecmp.run.standalone import start_server

    server = start_server(
        "kserve",
        MODEL,
        tmp_path_factory.mktemp("kserve two workers"),
        model_root,
        resources={"cpus": 2},
        tuning={"workers": 2},
    )
    try:
        assert server.process is not None
        tree = server.process.tree()
        spawned = [p for p in tree if "spawn_main" in " ".join(p.cmdline())]
        assert len(spawned) == 2  # one uvicorn process per worker, each with its own model
        for target in TARGETS:
            assert outcomes(server, target, _payloads(4)) == ["ok"] * 4
    finally:
        server.stop()
    assert not [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@needs_venv
def test_runtime_probe_reports_the_installed_versions() -> None:
    from servecmp.servers.kserve import RUNTIME_PROBE

    out = subprocess.run(
        [str(venv_python()), "-c", RUNTIME_PROBE], capture_output=True, text=True, timeout=60
    )
    found = ADAPTER.parse_runtime([out.stdout])
    assert found["version"] == "0.21.0" and found["torch"].startswith("2.13.0")
    assert ADAPTER.parse_runtime(["garbage"])["version"] == "unknown"


def test_oip_json_decoder_names_what_is_wrong() -> None:
    from servecmp.load.clients.base import TransportError
    from servecmp.load.clients.oip_rest import decode_oip_json

    ok = json.dumps(
        {"outputs": [{"name": "logits", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    )
    assert np.array_equal(decode_oip_json(ok.encode(), "logits"), np.array([[1, 2]], np.float32))
    with pytest.raises(TransportError, match="not FP32"):
        decode_oip_json(ok.replace("FP32", "INT64").encode())
    with pytest.raises(TransportError, match="bad v2 inference JSON"):
        decode_oip_json(b'{"error": "x"}')


def test_setup_installs_the_pinned_kserve_in_its_own_venv() -> None:
    from servecmp.versions import KSERVE_VERSION

    root = Path(__file__).resolve().parents[1]
    setup = (root / "scripts/setup.sh").read_text()
    assert f"kserve=={KSERVE_VERSION}" in setup and "torch==2.13.0" in setup
    assert ".venv-kserve" in setup and "servecmp/versions.py" in setup  # re-runs when the pin moves
    # a renamed or moved Dockerfile must fail here, not drop the check
    dockerfile = root / "deploy/kind/kserve.Dockerfile"
    assert dockerfile.is_file(), (
        f"{dockerfile} missing: the kind path builds KServe's image from it"
    )
    text = dockerfile.read_text()
    assert f"kserve=={KSERVE_VERSION}" in text and "servecmp/servers/kserve/model_server.py" in text


@needs_venv
@pytest.mark.slow
@pytest.mark.parametrize("target", [TARGETS[0], TARGETS[2]], ids=lambda t: t.name)
def test_an_engine_step_measures_kserve(
    kserve_server: KServeServer, target: Target, tmp_path: Path
) -> None:
    """The load engine's step process (Locust users, gevent; gRPC patched for gevent) drives the
    OIP clients and checks every answer."""
    from servecmp.experiment import Load, Stability
    from servecmp.load.engine.runner import run_step
    from servecmp.load.engine.spec import make_spec

    payloads_path = str(_payloads(1).save(tmp_path))
    load = Load(
        warmup_s=0.5,
        request_timeout_s=10,
        stability=Stability(window_s=1.0, windows=2, max_windows=2),
    )
    spec = make_spec(
        run_id="t",
        index=0,
        target=target,
        address=kserve_server.address(target.protocol),
        load=load,
        param=("concurrency", 2),
        payloads_path=payloads_path,
        model=MODEL,
    )
    result = run_step(spec, tmp_path)
    assert result.ok > 0 and result.wrong_answers == 0 and not result.transport_errors, result.error


def test_oip_clients_check_the_protocol_not_the_server() -> None:
    from servecmp.load.clients.oip_grpc import OipGrpcClient
    from servecmp.load.clients.oip_rest import OipRestClient

    ps = _payloads(1)
    with pytest.raises(ValueError, match="speaks grpc, not rest"):
        OipGrpcClient(TARGETS[1], "127.0.0.1:1", ps, 1.0)
    with pytest.raises(ValueError, match="speaks rest, not grpc"):
        OipRestClient(TARGETS[2], "127.0.0.1:1", ps, 1.0)


@needs_venv
@pytest.mark.slow
def test_native_metrics_probe_sees_kserve_histograms(kserve_server: KServeServer) -> None:
    """The friction probe counts KServe's request_*_seconds histograms as latency quantiles
    (they are: ``_bucket`` series), which a name-contains-'latency' rule missed."""
    from servecmp.run.probes import probe_native_metrics

    m = probe_native_metrics(kserve_server.endpoints.metrics_url)
    assert m.error is None and kmetrics.PREDICT in m.names
    assert m.latency_quantiles is True


def test_update_probe_records_that_it_measures_our_reload(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """KServe's repository load is a no-op upstream: the update_s record says what was measured
    instead and what a KServe user does (a new InferenceService revision)."""
    from servecmp.results.friction import read_friction
    from servecmp.run import friction

    class Load:
        rate = 20.0
        senders = 1

        def __init__(self, *a: Any, **k: Any) -> None:
            self.t = 0.0
            self.samples: list[Any] = []

        def hold(self, seconds: float) -> None:
            self.t += max(0.0, seconds)

        def start(self) -> Load:
            return self

        def wait_for(self, pred: Any, timeout: float) -> Any:
            from servecmp.run.underload import Sample

            self.t += 1.0
            return Sample(t=self.t, ok=True, version="v2", error=None, done=self.t)

        def now(self) -> float:
            return self.t

        def stop(self) -> None: ...

        def failures_between(self, a: float, b: float) -> int:
            return 0

        def summary(self) -> dict[str, Any]:
            return {"sent": 3}

    monkeypatch.setattr(friction, "TrickleLoad", Load)
    monkeypatch.setattr(friction.time, "sleep", lambda s: None)
    server = KServeServer.__new__(KServeServer)
    monkeypatch.setattr(KServeServer, "workers", lambda self: 1)
    friction.model_update(
        tmp_path,
        server,
        lambda: None,
        {},
        1e-3,
        lambda: None,  # type: ignore[arg-type]
        how=ADAPTER.update_how(server),
    )
    recs, _ = read_friction(tmp_path)
    how = next(r for r in recs if r.metric == "update_s").details["how"]
    assert "no-op upstream" in how and "InferenceService revision" in how
    monkeypatch.setattr(KServeServer, "workers", lambda self: 2)
    assert "restarted the server" in ADAPTER.update_how(server)


def test_metric_family_count_is_the_servers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KServe scrape as prometheus_client writes it: the default process_/python_ families and
    a ``_created`` gauge per histogram are not KServe's metrics and are not counted."""
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        Histogram,
        PlatformCollector,
        ProcessCollector,
    )
    from prometheus_client.exposition import generate_latest

    from servecmp.run import probes

    reg = CollectorRegistry()
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    for name in (kmetrics.PREPROCESS, kmetrics.PREDICT, kmetrics.POSTPROCESS):
        Histogram(name, "time", ["model_name"], registry=reg).labels(MODEL).observe(0.01)
    text = generate_latest(reg).decode()

    class Reply:
        def __init__(self, text: str) -> None:
            self.text = text

    monkeypatch.setattr(probes.requests, "get", lambda url, timeout: Reply(text))
    m = probes.probe_native_metrics("http://127.0.0.1:1/metrics")
    assert "process_resident_memory_bytes" in text and f"{kmetrics.PREDICT}_created" in text
    assert (
        m.names == sorted([kmetrics.PREPROCESS, kmetrics.PREDICT, kmetrics.POSTPROCESS])
        and m.families == 3
    )


def test_local_scrape_config_takes_the_kserve_metrics_url() -> None:
    """The orchestrator passes {server: metrics URL} for every server it runs; KServe's job is
    named after its Wire and scrapes its metrics path."""
    from servecmp.observability.scrape_config import local_scrape_config

    cfg = local_scrape_config(run_id="r", metrics_urls={"kserve": "http://127.0.0.1:18080/metrics"})
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == WIRE.service]
    assert job["metrics_path"] == WIRE.metrics_path
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:18080"]


@needs_venv
@pytest.mark.slow
@pytest.mark.parametrize("target", [TARGETS[0], TARGETS[2]], ids=lambda t: t.name)
def test_breakdown_parts_add_up_to_the_clients_mean(
    kserve_server: KServeServer, target: Target, tmp_path: Path
) -> None:
    """A real step reads KServe's stage histograms at its window edges: outside, pre/post and
    predict add up to the client's mean within noise; the queue is not reported (no metric)."""
    from breakdown_util import assert_parts_add_up, breakdown_step, parts_of

    path = str(_payloads(1).save(tmp_path))
    address = kserve_server.address(target.protocol)
    r = breakdown_step(target, address, kserve_server.endpoints.metrics_url, path, tmp_path)
    assert_parts_add_up(r)
    parts = parts_of(r)
    assert parts["compute"].ms is not None and parts["compute"].ms > 0
    assert parts["pre_post"].ms is not None
    assert parts["queue"].ms is None and parts["queue"].why.startswith("not reported by KServe")
