"""Friction probes that talk to a running server: bad payloads, native metrics, memory and CPU.

Each probe measures both servers the same way and returns plain data; the orchestrator stores
it as typed friction metrics (``friction.jsonl``).
"""

from __future__ import annotations

import http.client
import json
import select
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psutil
import requests
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

# ---- bad payloads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadPayloadCase:
    name: str
    # words of which at least one must appear in the error message for it to "name the problem"
    keywords: tuple[str, ...]


# Harmless cases: small bodies every server must refuse without running the model.
CASES = (
    BadPayloadCase("wrong_shape", ("shape", "dimension", "dim", "size")),
    BadPayloadCase("wrong_dtype", ("dtype", "type", "float", "string", "convert")),
    BadPayloadCase("garbage_bytes", ("json", "parse", "decode", "invalid", "malformed", "syntax")),
    BadPayloadCase("unknown_model", ("not found", "not exist", "unknown", "servable", "model")),
)
# Risky: a body over the server's request-size limit; it may take the server down, so it runs
# after every other probe (friction.oversize_body).
OVERSIZE = BadPayloadCase("oversize_body", ("size", "large", "length", "limit", "exceed"))
ALL_CASES = (*CASES, OVERSIZE)

# Body size sent to a server without a documented request-size limit. TF Serving 2.20.0:
# util/net_http/server/internal/evhttp_server.cc never calls evhttp_set_max_body_size, and the
# libevent it pins (workspace.bzl: release-2.1.12-stable) starts every evhttp at EV_SIZE_MAX
# (http.c evhttp_new_object). KServe 0.21.0 (PyPI wheel): protocol/rest/v1_endpoints.py reads the
# whole body, and uvicorn sets no body limit. As large as the largest limit our generated configs
# set (TorchServe's max_request_size), so every server is asked the same question.
NO_LIMIT_PROBE_BYTES = 64 * 1024 * 1024
OVER_LIMIT_BY = 1024


@dataclass
class BadPayloadResult:
    case: str
    status: int | None
    message: str
    names_problem: bool
    error: str | None = None
    # oversize_body only: "rejected" (an error status, or the connection closed while the
    # server stayed up), "accepted" (2xx) or "crashed" (the server was down afterwards)
    outcome: str | None = None
    sent_bytes: int | None = None
    limit_bytes: int | None = None  # the server's request-size limit; None: it has none


# The Open Inference Protocol's REST infer route (KServe, Triton, ...) ends with "/infer" and takes
# {"inputs": [{name, shape, datatype, data}]}; every other predict route here takes {"instances"}.
OIP_INFER_SUFFIX = "/infer"


def is_oip(predict_url: str) -> bool:
    return urlsplit(predict_url).path.endswith(OIP_INFER_SUFFIX)


def _oip(shape: list[int], data: list[Any], name: str = "input") -> bytes:
    tensor = {"name": name, "shape": shape, "datatype": "FP32", "data": data}
    return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()


def _bodies(shape: tuple[int, ...], oip: bool = False) -> dict[str, bytes]:
    """The harmless bad bodies, in the route's own format (``oip``: the OIP v2 JSON tensor, so a
    wrong shape is a wrong shape and not a missing field)."""
    c, h, w = shape
    garbage = bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8))
    if oip:
        n = c * h * w
        return {
            "wrong_shape": _oip([1, c, h + 1, w], [0.0] * (c * (h + 1) * w)),
            "wrong_dtype": _oip([1, c, h, w], ["a"] * n),
            "garbage_bytes": garbage,
        }
    wrong = np.zeros((1, c, h + 1, w), dtype=np.float32).tolist()
    return {
        "wrong_shape": json.dumps({"instances": wrong}).encode(),
        "wrong_dtype": json.dumps({"instances": [[["a"] * w] * h] * c}).encode(),
        "garbage_bytes": garbage,
    }


def valid_body(shape: tuple[int, ...], oip: bool = False) -> bytes:
    if oip:
        return _oip([1, *shape], [0.0] * int(np.prod(shape)))
    return json.dumps({"instances": np.zeros((1, *shape), dtype=np.float32).tolist()}).encode()


def oversize_instances(shape: tuple[int, ...], nbytes: int, oip: bool = False) -> bytes:
    """A *valid* predict body of ONE correctly shaped row, ``{"instances": [row]}``, padded with
    JSON whitespace to ``nbytes`` (at least the row's own size). What is tested is the byte limit, not the
    format (a bare JSON array fails as "Is not object" on TF Serving, util/json_tensor.cc,
    before any size matters) and not the memory budget: a server without a limit parses the
    padding and runs the model on one row, where thousands of rows of a real model would need
    more memory than the server is given."""
    if oip:  # the same one row as an OIP tensor
        head, tail = _oip([1, *shape], [0.0] * int(np.prod(shape)))[:-1], b"}"
    else:
        row = json.dumps(np.zeros(shape, dtype=np.int8).tolist(), separators=(",", ":")).encode()
        head, tail = b'{"instances":[' + row + b"]", b"}"
    pad = max(0, nbytes - len(head) - len(tail))
    return head + b" " * pad + tail


def oversize_size(limit_bytes: int | None) -> int:
    """Bytes of the oversize body for a server with this request-size limit."""
    return (limit_bytes if limit_bytes is not None else NO_LIMIT_PROBE_BYTES) + OVER_LIMIT_BY


def _post(url: str, body: bytes, timeout_s: float) -> requests.Response:
    return requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=timeout_s
    )


def _result(case: BadPayloadCase, send: Callable[[], tuple[int, str]]) -> BadPayloadResult:
    try:
        status, msg = send()
    except (requests.RequestException, http.client.HTTPException, OSError) as err:
        return BadPayloadResult(case.name, None, "", False, f"{type(err).__name__}: {err}")
    named = status >= 400 and any(k in msg.lower() for k in case.keywords)
    return BadPayloadResult(case.name, status, msg, named)


def probe_bad_payloads(
    predict_url: str, unknown_model_url: str, input_shape: tuple[int, ...], timeout_s: float = 30.0
) -> list[BadPayloadResult]:
    """POST each harmless bad payload over REST; record status, message and whether it names
    the problem."""
    shape = tuple(input_shape[-3:])
    bodies = _bodies(shape, is_oip(predict_url))
    valid = valid_body(shape, is_oip(predict_url))

    out = []
    for case in CASES:
        url = unknown_model_url if case.name == "unknown_model" else predict_url
        body = bodies.get(case.name, valid)

        def send(url: str = url, body: bytes = body) -> tuple[int, str]:
            r = _post(url, body, timeout_s)
            return r.status_code, r.text[:500]

        out.append(_result(case, send))
    return out


def post_early_answer(
    url: str, body: bytes, timeout_s: float, chunk: int = 1 << 20
) -> tuple[int, str]:
    """POST ``body`` (Content-Length set) and read the answer even when the server sends it
    before the whole body arrived and may close the connection (TorchServe's REST pipeline
    aggregates bodies with netty's HttpObjectAggregator(max_request_size), pytorch/serve v0.12.0
    ServerInitializer.java): a plain client would see a reset while still sending."""
    deadline = time.monotonic() + timeout_s  # for the whole exchange, not per socket call
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=timeout_s)
    try:
        conn.putrequest("POST", u.path + (f"?{u.query}" if u.query else ""))
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        assert conn.sock is not None
        view = memoryview(body)
        for i in range(0, len(body), chunk):
            if select.select([conn.sock], [], [], 0)[0]:
                break  # the server has answered (or closed): stop sending, read it
            if time.monotonic() >= deadline:
                raise TimeoutError(f"body not sent within {timeout_s:.0f} s")
            try:
                conn.sock.sendall(view[i : i + chunk])
            except (BrokenPipeError, ConnectionResetError):
                break
        conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
        r = conn.getresponse()
        return r.status, r.read(500).decode(errors="replace")
    finally:
        conn.close()


def probe_oversize(
    predict_url: str,
    input_shape: tuple[int, ...],
    limit_bytes: int | None,
    server_up: Callable[[], bool],
    timeout_s: float = 60.0,
) -> BadPayloadResult:
    """POST a body just over ``limit_bytes`` (the server's request-size limit) and say what the
    server did with it: rejected it, accepted it, or crashed (``server_up()`` false afterwards)."""
    size = oversize_size(limit_bytes)
    body = oversize_instances(tuple(input_shape[-3:]), size, is_oip(predict_url))
    res = _result(OVERSIZE, lambda: post_early_answer(predict_url, body, timeout_s))
    res.sent_bytes, res.limit_bytes = len(body), limit_bytes
    if not server_up():
        res.outcome, res.names_problem = "crashed", False
    elif res.status is not None and res.status < 400:
        res.outcome = "accepted"
    else:
        res.outcome = "rejected"
    return res


# ---- native observability --------------------------------------------------------------------


@dataclass
class NativeMetrics:
    families: int
    names: list[str]
    latency_quantiles: bool  # a histogram or summary of request latency is exposed
    error: str | None = None


# Families prometheus_client's default collectors add to every Python process (ProcessCollector,
# PlatformCollector, GCCollector): the client library's, not the server's.
RUNTIME_FAMILY_PREFIXES = ("process_", "python_gc_", "python_info")


def server_families(fams: list[Metric]) -> list[Metric]:
    """The families a server exposes about itself: without the client library's runtime families
    and without the ``<family>_created`` gauges prometheus_client writes beside each counter,
    histogram and summary in the text format (one series, not another metric)."""
    names = {f.name for f in fams}
    return [
        f
        for f in fams
        if not f.name.startswith(RUNTIME_FAMILY_PREFIXES)
        and not (f.name.endswith("_created") and f.name.removesuffix("_created") in names)
    ]


def probe_native_metrics(url: str) -> NativeMetrics:
    try:
        text = requests.get(url, timeout=10).text
    except requests.RequestException as err:
        return NativeMetrics(0, [], False, f"{type(err).__name__}: {err}")
    fams = server_families(list(text_string_to_metric_families(text)))
    # A request-time histogram or summary: named for latency (TF Serving's request_latency) or in
    # the base unit (KServe 0.21's request_predict_seconds, Prometheus naming convention).
    quantiles = any(
        f.type in ("histogram", "summary")
        and ("latency" in f.name.lower() or f.name.endswith("_seconds"))
        for f in fams
    )
    return NativeMetrics(len(fams), sorted(f.name for f in fams), quantiles)


# ---- memory and CPU of a process tree -------------------------------------------------------


def _tree_sum(root_pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """Sum ``measure`` over a process and its descendants (the JVM and workers of TorchServe);
    processes that vanish while we walk are skipped."""
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            total += measure(p)
        except psutil.Error:
            continue
    return total


def tree(root_pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(root_pid: int) -> int:
    return int(_tree_sum(root_pid, lambda p: p.memory_info().rss))


def tree_cpu_seconds(root_pid: int) -> float:
    return _tree_sum(root_pid, lambda p: sum(p.cpu_times()[:2]))  # user + system


def idle_cpu_cores(root_pid: int, seconds: float = 3.0) -> float:
    """Average CPU cores the server tree uses while nobody sends it anything."""
    a = tree_cpu_seconds(root_pid)
    time.sleep(seconds)
    return max(0.0, (tree_cpu_seconds(root_pid) - a) / seconds)


@dataclass
class ResourceSampler:
    """Samples a process tree's RSS and CPU in the background (bounded by ``stop()``)."""

    root_pid: int
    interval_s: float = 0.5
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # (t, rss, cpu_s)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ResourceSampler:
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(
                (time.time(), tree_rss(self.root_pid), tree_cpu_seconds(self.root_pid))
            )
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    @property
    def peak_rss(self) -> int:
        return max((s[1] for s in self.samples), default=0)

    def as_dict(self) -> dict[str, object]:
        return {"interval_s": self.interval_s, "samples": [list(s) for s in self.samples]}


def result_dicts(items: list[BadPayloadResult]) -> list[dict[str, object]]:
    return [asdict(i) for i in items]
