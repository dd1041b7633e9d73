"""Clients against their servers: TF Serving clients against the test double (real SavedModel
in-process), in-process baselines, error classification, the fire() contract."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from doubles.tiny_artifacts import TinySpec, TinyWeights, write_savedmodel, write_torchscript

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients import Outcome, TransportError, call, execute, make_client
from servecmp.load.payloads import PayloadSet

SPEC = TinySpec()
WEIGHTS = TinyWeights.seeded()

TF_REST_JSON = Target(server="tfserving", protocol=Protocol.rest)
TF_REST_B64 = Target(server="tfserving", protocol=Protocol.rest, encoding=Encoding.b64)
TF_GRPC = Target(server="tfserving", protocol=Protocol.grpc)
TS_REST_JSON = Target(server="torchserve", protocol=Protocol.rest)
TS_REST_RAW = Target(server="torchserve", protocol=Protocol.rest, encoding=Encoding.raw)
TS_GRPC = Target(server="torchserve", protocol=Protocol.grpc)
PT_INPROC = Target(server="pytorch", protocol=Protocol.inprocess)
TF_INPROC = Target(server="tensorflow", protocol=Protocol.inprocess)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        "torchscript": write_torchscript(WEIGHTS, root / "tiny.pt"),
        "savedmodel": write_savedmodel(WEIGHTS, root / "tiny_tf" / "1"),
    }


@pytest.fixture(scope="module")
def payloads() -> PayloadSet:
    return PayloadSet.build(SPEC, 1234, 2, 3, expected=WEIGHTS.logits)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def double(artifacts: dict[str, Path]) -> Iterator[Any]:
    from doubles.tfserving_double import TFServingDouble

    with TFServingDouble({"tiny": artifacts["savedmodel"]}) as d:
        yield d


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, **kw: Any) -> None:
        self.events.append(kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _address(double: Any, target: Target) -> str:
    return double.grpc_address if target.protocol is Protocol.grpc else double.rest_address


# ---- TF Serving clients against the double ---------------------------------------------------
@pytest.mark.parametrize("target", [TF_REST_JSON, TF_REST_B64, TF_GRPC], ids=lambda t: t.name)
def test_tfserving_clients_ok_and_fire_fields(
    double: Any, payloads: PayloadSet, target: Target
) -> None:
    rec = Recorder()
    with make_client(target, _address(double, target), payloads, 5.0) as client:
        for i in range(len(payloads) + 1):  # wraps around the distinct inputs
            assert call(client, i, fire=rec) is Outcome.ok
        logits = client.send(1)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, payloads.expected[1], atol=1e-4)
    ev = rec.events[0]
    assert set(ev) == {
        "request_type",
        "name",
        "response_time",
        "response_length",
        "exception",
        "context",
    }
    assert ev["request_type"] == target.protocol.value and ev["name"] == target.name
    assert ev["exception"] is None and ev["response_time"] > 0 and ev["response_length"] > 0
    assert ev["context"] == {
        "outcome": "ok",
        "late_ms": 0.0,
        "server": "tfserving",
        "protocol": target.protocol.value,
        "encoding": target.effective_encoding.value,
        "error_kind": None,
    }


def test_double_rest_status_endpoint(double: Any) -> None:
    from servecmp.load.clients._http import HttpConnection

    http = HttpConnection(double.rest_address, 5.0)
    status, body = http.request("GET", "/v1/models/tiny")
    assert status == 200 and b'"AVAILABLE"' in body
    assert http.request("GET", "/v1/models/nope")[0] == 404
    http.close()


@pytest.mark.parametrize("target", [TF_REST_JSON, TF_GRPC], ids=lambda t: t.name)
def test_wrong_logits_are_wrong_answers_not_transport_errors(
    double: Any, payloads: PayloadSet, target: Target
) -> None:
    rec = Recorder()
    with make_client(target, _address(double, target), payloads, 5.0) as client:
        double.perturb = 0.01  # > atol 1e-3
        try:
            assert call(client, 0, fire=rec) is Outcome.wrong_answer
        finally:
            double.perturb = 0.0
        assert call(client, 0, fire=rec) is Outcome.ok
    ev = rec.events[0]
    assert ev["context"]["outcome"] == "wrong_answer"
    assert ev["context"]["error_kind"] == "wrong_answer"
    assert ev["exception"] is not None and "atol" in str(ev["exception"])
    assert ev["response_length"] > 0


@pytest.mark.parametrize(
    ("target", "kind"),
    [(TF_REST_JSON, "http_4xx"), (TF_REST_B64, "http_4xx"), (TF_GRPC, "grpc_NOT_FOUND")],
    ids=lambda v: getattr(v, "name", v),
)
def test_unknown_model_is_a_client_error(double: Any, target: Target, kind: str) -> None:
    other = PayloadSet.build(  # same tensor, a model name the server does not serve
        TinySpec(name="missing"),
        1234,
        2,
        3,
        expected=WEIGHTS.logits,  # type: ignore[arg-type]
    )
    rec = Recorder()
    with make_client(target, _address(double, target), other, 5.0) as client:
        assert call(client, 0, fire=rec) is Outcome.transport_error
        with pytest.raises(TransportError) as err:
            client.send(0)
    assert err.value.kind == kind
    assert rec.events[0]["context"]["error_kind"] == kind
    assert isinstance(rec.events[0]["exception"], TransportError)


ALL_NETWORK = [TF_REST_JSON, TF_GRPC, TS_REST_JSON, TS_REST_RAW, TS_GRPC]


@pytest.mark.parametrize("target", ALL_NETWORK, ids=lambda t: t.name)
def test_dead_port_is_connect_error(payloads: PayloadSet, target: Target) -> None:
    rec = Recorder()
    with make_client(target, f"127.0.0.1:{free_port()}", payloads, 2.0) as client:
        assert call(client, 0, fire=rec) is Outcome.transport_error
    assert rec.events[0]["context"]["error_kind"] == "connect"
    assert rec.events[0]["context"]["outcome"] == "transport_error"


@pytest.mark.parametrize(
    "target", [TF_REST_JSON, TF_GRPC, TS_REST_RAW, TS_GRPC], ids=lambda t: t.name
)
def test_silent_server_is_timeout(payloads: PayloadSet, target: Target) -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        with make_client(target, address, payloads, 0.5) as client:
            result = execute(client, 0)
    assert result.outcome is Outcome.transport_error
    assert result.error_kind == "timeout"
    assert 400 <= result.response_time_ms < 5000


def test_latency_counts_from_scheduled_time(double: Any, payloads: PayloadSet) -> None:
    rec = Recorder()
    with make_client(TF_REST_JSON, double.rest_address, payloads, 5.0) as client:
        scheduled = time.perf_counter() - 0.2  # the send is 200 ms late
        assert call(client, 0, scheduled_at=scheduled, fire=rec) is Outcome.ok
    ev = rec.events[0]
    assert ev["context"]["late_ms"] >= 200
    assert ev["response_time"] >= ev["context"]["late_ms"]


# ---- in-process baselines ---------------------------------------------------------------------
@pytest.mark.parametrize("target", [PT_INPROC, TF_INPROC], ids=lambda t: t.name)
def test_inprocess_clients(
    artifacts: dict[str, Path], payloads: PayloadSet, target: Target
) -> None:
    path = (
        artifacts["torchscript"] if target.server == "pytorch" else artifacts["savedmodel"].parent
    )
    rec = Recorder()
    # TF's runtime is already up in this process (the double): thread budget checked below in a
    # fresh process instead.
    opts = {"strict_threads": False} if target.server == "tensorflow" else {}
    with make_client(target, str(path), payloads, 5.0, intra_op_threads=1, **opts) as client:
        for i in range(len(payloads)):
            assert call(client, i, fire=rec) is Outcome.ok
        if target.server == "pytorch":
            assert client.threads_effective == 1  # type: ignore[attr-defined]
    ev = rec.events[0]
    assert ev["request_type"] == "inprocess" and ev["name"] == target.name
    assert ev["context"]["encoding"] == "ndarray" and ev["response_length"] == 2 * 10 * 4


def test_same_tensor_same_answer_on_every_target(
    double: Any, artifacts: dict[str, Path], payloads: PayloadSet
) -> None:
    """Payload identity across targets: every client gets the same logits for input i."""
    answers = {}
    for target, address in [
        (TF_REST_JSON, double.rest_address),
        (TF_REST_B64, double.rest_address),
        (TF_GRPC, double.grpc_address),
        (PT_INPROC, str(artifacts["torchscript"])),
        (TF_INPROC, str(artifacts["savedmodel"])),
    ]:
        with make_client(target, address, payloads, 5.0) as client:
            answers[target.name] = client.send(2)
    for name, logits in answers.items():
        np.testing.assert_allclose(logits, payloads.expected[2], atol=1e-4, err_msg=name)


def test_client_rejects_foreign_encoding(payloads: PayloadSet) -> None:
    from servecmp.load.clients.tfserving_rest import TFServingRestClient

    with pytest.raises(ValueError):
        TFServingRestClient(TS_REST_RAW, "127.0.0.1:1", payloads, 1.0)


@pytest.mark.heavy
def test_tensorflow_inprocess_thread_budget_in_fresh_process(
    artifacts: dict[str, Path], payloads: PayloadSet, tmp_path: Path
) -> None:
    payloads.save(tmp_path)
    code = f"""
from servecmp.experiment import Protocol, Target
from servecmp.load.clients import Outcome, call, make_client
from servecmp.load.payloads import PayloadSet
ps = PayloadSet.load({str(tmp_path)!r})
t = Target(server="tensorflow", protocol=Protocol.inprocess)
c = make_client(t, {str(artifacts["savedmodel"])!r}, ps, 5.0, intra_op_threads=1)
assert c.threads_effective == 1, c.threads_effective
assert call(c, 0) is Outcome.ok
print("OK")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]
    with pytest.raises(RuntimeError, match="fresh process"):  # here TF is already initialised
        make_client(TF_INPROC, str(artifacts["savedmodel"]), payloads, 5.0, intra_op_threads=7)


def test_grpc_round_robin_dials_every_pod_behind_a_headless_service() -> None:
    from servecmp.load.clients._grpc import channel_target

    target, options = channel_target("ts-grpc.servecmp.svc:7070", lb="round_robin")
    assert target == "dns:///ts-grpc.servecmp.svc:7070"
    assert ("grpc.lb_policy_name", "round_robin") in options
    plain, opts = channel_target("127.0.0.1:7070", lb="")
    assert plain == "127.0.0.1:7070" and not any(k == "grpc.lb_policy_name" for k, _ in opts)
    with pytest.raises(ValueError, match="round_robin"):
        channel_target("x:1", lb="pick_first_please")


# ---- what the clock measures ------------------------------------------------------------------
def test_decoding_and_checking_are_outside_the_measured_time(
    double: Any, payloads: PayloadSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Latency ends when the answer's bytes are in (as for wrk): a slow JSON decode is not in
    it, and the decoded answer is still checked (a wrong answer is still caught)."""
    import servecmp.load.clients.tfserving_rest as mod

    real = mod.decode_predictions_json
    corrupt = {"on": False}

    def slow_decode(data: bytes, output_name: str = "logits") -> np.ndarray:
        time.sleep(0.3)
        flat = real(data, output_name)
        return flat + 1.0 if corrupt["on"] else flat

    monkeypatch.setattr(mod, "decode_predictions_json", slow_decode)
    with make_client(TF_REST_JSON, double.rest_address, payloads, 5.0) as client:
        execute(client, 0)  # connection set up
        ok = execute(client, 0)
        corrupt["on"] = True
        wrong = execute(client, 1)
    assert ok.outcome is Outcome.ok
    assert ok.response_time_ms < 300, (
        f"decode time counted in the latency: {ok.response_time_ms:.1f} ms"
    )
    assert wrong.outcome is Outcome.wrong_answer and wrong.response_time_ms < 300


def test_known_good_bytes_skip_decoding_but_changed_bytes_are_checked(payloads: PayloadSet) -> None:
    """Checking is never sampled: an answer whose bytes differ from the verified ones is decoded
    and checked again, so a server that starts answering wrongly is caught at once."""
    from servecmp.load.clients.base import TargetClient

    good = payloads.expected[0].astype("<f4").tobytes()
    bad = (payloads.expected[0] + 1.0).astype("<f4").tobytes()

    class Scripted(TargetClient):
        def __init__(self, answers: list[bytes]) -> None:
            super().__init__(TS_REST_RAW, "127.0.0.1:1", payloads, 1.0)
            self.answers, self.decoded = answers, 0

        def _transfer(self, index: int) -> tuple[bytes, int]:
            data = self.answers.pop(0)
            return data, len(data)

        def _decode(self, answer: bytes) -> np.ndarray:
            self.decoded += 1
            return self._logits_from_flat(np.frombuffer(answer, dtype="<f4"))

    client = Scripted([good, good, good, bad, good])
    outcomes = [execute(client, 0).outcome for _ in range(5)]
    assert outcomes == [Outcome.ok, Outcome.ok, Outcome.ok, Outcome.wrong_answer, Outcome.ok]
    assert client.decoded == 2  # the first good answer and the changed (bad) one
