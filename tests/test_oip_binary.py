"""The OIP REST client's binary tensor extension without a server: the body it sends, and how
it reads (or refuses) answers (Triton v2.51.0 docs/protocol/extension_binary_data.md)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.clients.base import TransportError, execute, make_client
from servecmp.load.clients.oip_rest import decode_oip_binary
from servecmp.load.payloads import PayloadSet


def _answer(outputs: list[tuple[str, np.ndarray]], *, as_json: bool = False) -> tuple[bytes, int]:
    head = {
        "model_name": "m",
        "outputs": [
            {"name": n, "shape": list(a.shape), "datatype": "FP32"}
            | (
                {"data": a.ravel().tolist()}
                if as_json
                else {"parameters": {"binary_data_size": a.nbytes}}
            )
            for n, a in outputs
        ],
    }
    text = json.dumps(head).encode()
    return text + (
        b"" if as_json else b"".join(a.astype("<f4").tobytes() for _, a in outputs)
    ), len(text)


def test_the_named_output_is_read_at_its_offset() -> None:
    first = np.arange(6, dtype=np.float32).reshape(2, 3)
    logits = np.array([[0.5, -1.25]], dtype=np.float32)
    body, n = _answer([("other", first), ("logits", logits)])
    np.testing.assert_array_equal(decode_oip_binary(body, n, "logits"), logits)
    np.testing.assert_array_equal(decode_oip_binary(body, n, "missing"), first)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no header", "no Inference-Header-Content-Length"),
        ("json outputs", "came as JSON, not binary data"),
        ("short", "16 B declared, 12 B left"),
        ("not json", "bad v2 binary inference header"),
    ],
)
def test_answers_that_are_not_binary_outputs_are_decode_errors(case: str, message: str) -> None:
    logits = np.zeros((1, 4), np.float32)
    body, n = _answer([("logits", logits)], as_json=case == "json outputs")
    length: int | None = n
    if case == "no header":
        length = None
    elif case == "short":
        body = body[:-4]
    elif case == "not json":
        body, length = b"\xff" * 20, 10
    with pytest.raises(TransportError, match=message) as info:
        decode_oip_binary(body, length, "logits")
    assert info.value.kind == "decode"


class _Double(BaseHTTPRequestHandler):
    """Answers the binary extension like an OIP server: the logits the request's data sums to."""

    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        _Double.seen.append(dict(self.headers))
        n = int(self.headers["Inference-Header-Content-Length"])
        (inp,) = json.loads(data[:n])["inputs"]
        x = np.frombuffer(data[n:], dtype="<f4").reshape(inp["shape"])
        body, m = _answer([("logits", x.reshape(len(x), -1).sum(1, keepdims=True))])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("inference-header-content-length", str(m))  # any case, per HTTP
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def double() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Double)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_client_sends_the_header_length_and_reads_the_binary_answer(double: str) -> None:
    inputs = (np.arange(2 * 1 * 3 * 2 * 2, dtype=np.float32) / 256).reshape(2, 1, 3, 2, 2)
    expected = inputs.reshape(2, 1, -1).sum(2, keepdims=True)
    ps = PayloadSet(model="m", seed=0, inputs=inputs, expected=expected)
    target = Target(server="triton", protocol=Protocol.rest, encoding=Encoding.oip_binary)
    _Double.seen.clear()
    with make_client(target, double, ps, 5.0) as client:
        results = [execute(client, i) for i in range(2)]
    assert [r.outcome.value for r in results] == ["ok", "ok"], results
    body = ps.body(Encoding.oip_binary, 0)
    sent = _Double.seen[0]
    assert sent["Inference-Header-Content-Length"] == str(body.header_length)
    assert sent["Content-Type"] == "application/octet-stream"
    assert sent["Content-Length"] == str(len(body))
