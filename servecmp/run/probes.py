"""Friction probes that talk to a running server: bad payloads, native metrics, memory and CPU.

Each probe measures both servers the same way and returns plain data; the orchestrator stores
it as typed friction metrics (``friction.jsonl``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

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


CASES = (
    BadPayloadCase("wrong_shape", ("shape", "dimension", "dim", "size")),
    BadPayloadCase("wrong_dtype", ("dtype", "type", "float", "string", "convert")),
    BadPayloadCase("garbage_bytes", ("json", "parse", "decode", "invalid", "malformed", "syntax")),
    BadPayloadCase("oversize_body", ("size", "large", "length", "limit", "exceed")),
    BadPayloadCase("unknown_model", ("not found", "not exist", "unknown", "servable", "model")),
)


@dataclass
class BadPayloadResult:
    case: str
    status: int | None
    message: str
    names_problem: bool
    error: str | None = None


def _bodies(shape: tuple[int, ...], oversize_bytes: int) -> dict[str, bytes]:
    c, h, w = shape
    wrong = np.zeros((1, c, h + 1, w), dtype=np.float32).tolist()
    return {
        "wrong_shape": json.dumps({"instances": wrong}).encode(),
        "wrong_dtype": json.dumps({"instances": [[["a"] * w] * h] * c}).encode(),
        "garbage_bytes": bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)),
        "oversize_body": _oversize_instances(shape, oversize_bytes),
    }


def _oversize_instances(shape: tuple[int, ...], min_bytes: int) -> bytes:
    """A *valid* predict body, ``{"instances": [...]}`` of correctly shaped rows, just larger
    than ``min_bytes``: what is tested is the size, not the format (a bare JSON array fails as
    "Is not object" on TF Serving, util/json_tensor.cc, before any size matters)."""
    row = json.dumps(np.zeros(shape, dtype=np.int8).tolist(), separators=(",", ":")).encode()
    n = min_bytes // (len(row) + 1) + 1
    return b'{"instances":[' + b",".join([row] * n) + b"]}"


def probe_bad_payloads(
    predict_url: str, unknown_model_url: str, input_shape: tuple[int, ...], oversize_bytes: int
) -> list[BadPayloadResult]:
    """POST each bad payload over REST; record status, message and whether it names the problem.

    ``oversize_bytes`` is just above the server's configured body limit (TorchServe's
    max_request_size; TF Serving has no body limit of its own, so its answer is what it is).
    """
    bodies = _bodies(tuple(input_shape[-3:]), oversize_bytes)
    out: list[BadPayloadResult] = []
    for case in CASES:
        url = unknown_model_url if case.name == "unknown_model" else predict_url
        body = bodies.get(case.name) or json.dumps(
            {"instances": np.zeros((1, *input_shape[-3:]), dtype=np.float32).tolist()}
        ).encode()
        try:
            r = requests.post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=60
            )
            msg = r.text[:500]
            named = r.status_code >= 400 and any(k in msg.lower() for k in case.keywords)
            out.append(BadPayloadResult(case.name, r.status_code, msg, named))
        except requests.RequestException as err:
            out.append(BadPayloadResult(case.name, None, "", False, f"{type(err).__name__}: {err}"))
    return out


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
    return [f for f in fams if not f.name.startswith(RUNTIME_FAMILY_PREFIXES)
            and not (f.name.endswith("_created") and f.name.removesuffix("_created") in names)]


def probe_native_metrics(url: str) -> NativeMetrics:
    try:
        text = requests.get(url, timeout=10).text
    except requests.RequestException as err:
        return NativeMetrics(0, [], False, f"{type(err).__name__}: {err}")
    fams = server_families(list(text_string_to_metric_families(text)))
    # A request-time histogram or summary: named for latency (TF Serving's request_latency) or in
    # the base unit (KServe 0.21's request_predict_seconds, Prometheus naming convention).
    quantiles = any(
        f.type in ("histogram", "summary") and ("latency" in f.name.lower() or f.name.endswith("_seconds"))
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
