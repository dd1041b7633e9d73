"""Builds tests/promtool/rules_test.yaml: promtool unit tests of the recording rules.

    .venv/bin/python tests/promtool/make_rules_test.py          # rewrite rules_test.yaml
    promtool test rules tests/promtool/rules_test.yaml             # run it by hand

Input series copy each source's REAL exposition format:
- TorchServe 0.12.0: names and labels as captured in torchserve-0.12.0-metrics.txt
  (counters ts_* with model_name, model_version="default", hostname).
- TF Serving: tensorflow_serving/util/prometheus_exporter.cc (names ``/a/b`` -> ``:a:b``, histogram
  bucket limits printed by absl::StrCat(double), i.e. 6 significant digits like ``%g``, last bucket
  ``+Inf``) with the samplers of servables/tensorflow/util.cc (request_latency: model_name, API,
  entrypoint; buckets 10*1.8**i, i<33) and batching/batching_session.cc (queuing_latency:
  thread_pool_name; buckets 100*1.2**i, i<52). REST records API="predict", gRPC API="Predict";
  readiness GETs record API="" (must be filtered out).
- Ray Serve 2.60.0: the proxy's latency histograms as a live scrape of the installed version
  shows them (OpenTelemetry exporter: le="1.0", labels route, method, application, status_code
  plus Component/SessionName/...; buckets ray/serve/_private/constants.py
  DEFAULT_LATENCY_BUCKET_MS; readiness GETs must be filtered out of the HTTP one).
- the generator: prometheus-client's own formatting of servecmp_* (le="1.0", "+Inf").
- CPU / memory from the local process exporter AND from cAdvisor (kubelet job).

Expected values are computed here with Prometheus' own histogram_quantile interpolation, from
linear counters (rate over 1m of ``0+kx40`` at 10 s is exactly k/10 per second).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from prometheus_client.utils import floatToGoString

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from servecmp.observability import names as n  # noqa: E402
from servecmp.observability.generator_metrics import LATENCY_BUCKETS  # noqa: E402
from servecmp.servers.rayserve import metrics as ray_m  # noqa: E402
from servecmp.servers.tfserving import metrics as tfs_m  # noqa: E402
from servecmp.servers.torchserve import metrics as ts_m  # noqa: E402
from servecmp.servers.triton import metrics as tr_m  # noqa: E402

OUT = HERE / "rules_test.yaml"
INTERVAL_S = 10
STEPS = 40
EVAL = "5m"

TFS_LATENCY_LIMITS = [float(f"{10 * 1.8**i:g}") for i in range(33)]
TFS_QUEUE_LIMITS = [float(f"{100 * 1.2**i:g}") for i in range(52)]


def tf_le(x: float) -> str:
    """absl::StrCat(double): shortest of 6 significant digits, like printf %g."""
    return f"{x:g}"


def labels(d: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in d.items()) + "}"


def counter(per_step: float) -> str:
    return f"0+{per_step:g}x{STEPS}"


def gauge(value: float) -> str:
    return f"{value:g}+0x{STEPS}"


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus histogram_quantile over (upper bound, cumulative rate) sorted, +Inf last."""
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for i, (le, c) in enumerate(buckets):
        if c >= rank:
            if le == float("inf"):
                return buckets[i - 1][0]
            if i == 0 and le <= 0:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    raise AssertionError("unreachable")


class Histogram:
    """Per-step observations per bucket index -> input series + per-second cumulative rates."""

    def __init__(
        self,
        name: str,
        lbls: dict[str, str],
        limits: list[float],
        le_fmt,
        per_step: dict[int, int],
        sum_per_step: float,
    ):
        self.name, self.lbls, self.limits, self.le_fmt = name, lbls, limits, le_fmt
        self.per_step, self.sum_per_step = per_step, sum_per_step

    def series(self) -> list[dict[str, str]]:
        out = []
        cum = 0
        for i, le in enumerate([*self.limits, float("inf")]):
            cum += self.per_step.get(i, 0)
            le_s = "+Inf" if le == float("inf") else self.le_fmt(le)
            out.append(
                {
                    "series": f"{self.name}_bucket{labels({**self.lbls, 'le': le_s})}",
                    "values": counter(cum),
                }
            )
        out.append(
            {"series": f"{self.name}_sum{labels(self.lbls)}", "values": counter(self.sum_per_step)}
        )
        out.append({"series": f"{self.name}_count{labels(self.lbls)}", "values": counter(cum)})
        return out

    def rates(self) -> list[tuple[float, float]]:
        cum = 0.0
        out = []
        for i, le in enumerate([*self.limits, float("inf")]):
            cum += self.per_step.get(i, 0) / INTERVAL_S
            out.append((le, cum))
        return out


SCALE = 1e9  # float seconds/ratios are compared as round(x * 1e9): promtool 2.42 compares exactly


def sample(record: str, value: float, **lbl: str) -> dict[str, object]:
    if record.endswith("_rate1m") and any(k in record for k in ("seconds", "ratio")):
        return {"labels": labels(lbl), "value": round(value * SCALE)}
    return {"labels": f"{record}{labels(lbl)}", "value": value}


def build() -> dict[str, object]:
    series: list[dict[str, str]] = []
    tests: list[dict[str, object]] = []

    def expect(record: str, *samples: dict[str, object]) -> None:
        name = record.split("{")[0]
        scaled = name.endswith("_rate1m") and any(k in name for k in ("seconds", "ratio"))
        expr = f"round({record} * {SCALE:g})" if scaled else record
        tests.append({"expr": expr, "eval_time": EVAL, "exp_samples": list(samples)})

    # ---------------- generator (prometheus-client format) ----------------------------------
    gen = {"job": n.JOB_GENERATOR, "instance": "127.0.0.1:9646", "namespace": "local", "run": "r1"}
    tgt = {
        "target": "torchserve-rest-json",
        "server": "torchserve",
        "protocol": "rest",
        "encoding": "json",
    }
    tgt2 = {
        "target": "tfserving-grpc-tensorproto",
        "server": "tfserving",
        "protocol": "grpc",
        "encoding": "tensorproto",
    }
    outcomes = {"ok": 480, "transport_error": 12, "wrong_answer": 8}  # per 10 s -> 50 req/s
    for o, k in outcomes.items():
        series.append(
            {
                "series": f"{n.GEN_REQUESTS}{labels({**gen, **tgt, 'outcome': o})}",
                "values": counter(k),
            }
        )
    # second target: never an error -> series pre-created at 0 by register_target()
    for o, k in {"ok": 300, "transport_error": 0, "wrong_answer": 0}.items():
        series.append(
            {
                "series": f"{n.GEN_REQUESTS}{labels({**gen, **tgt2, 'outcome': o})}",
                "values": counter(k),
            }
        )
    gen_le = list(LATENCY_BUCKETS)
    idx = {b: i for i, b in enumerate(gen_le)}
    h_ok = Histogram(
        n.GEN_REQUEST_DURATION,
        {**gen, **tgt, "outcome": "ok"},
        gen_le,
        floatToGoString,
        {idx[0.01]: 240, idx[0.0125]: 192, idx[0.02]: 48},
        480 * 0.011,
    )
    h_err = Histogram(
        n.GEN_REQUEST_DURATION,
        {**gen, **tgt, "outcome": "transport_error"},
        gen_le,
        floatToGoString,
        {len(gen_le): 12},
        12 * 10.0,
    )  # timeouts: must not move client quantiles
    h2 = Histogram(
        n.GEN_REQUEST_DURATION,
        {**gen, **tgt2, "outcome": "ok"},
        gen_le,
        floatToGoString,
        {idx[0.005]: 300},
        300 * 0.0045,
    )
    for h in (h_ok, h_err, h2):
        series += h.series()
    series.append({"series": f"{n.GEN_LATE_SENDS}{labels({**gen, **tgt})}", "values": counter(5)})
    series.append({"series": f"{n.GEN_LATE_SENDS}{labels({**gen, **tgt2})}", "values": counter(0)})
    series.append({"series": f"{n.GEN_CPU}{labels({**gen, 'pid': '4242'})}", "values": counter(4)})

    g_out = {"namespace": "local", "run": "r1"}
    expect(
        n.R_REQUESTS,
        sample(n.R_REQUESTS, 50, **g_out, **tgt),
        sample(n.R_REQUESTS, 30, **g_out, **tgt2),
    )
    expect(
        f'{n.R_OUTCOMES}{{target="torchserve-rest-json",outcome="wrong_answer"}}',
        sample(n.R_OUTCOMES, 0.8, **g_out, **tgt, outcome="wrong_answer"),
    )
    expect(
        n.R_ERROR_RATIO,
        sample(n.R_ERROR_RATIO, 12 / 500, **g_out, **tgt),
        sample(n.R_ERROR_RATIO, 0, **g_out, **tgt2),
    )
    expect(
        n.R_WRONG_RATIO,
        sample(n.R_WRONG_RATIO, 8 / 500, **g_out, **tgt),
        sample(n.R_WRONG_RATIO, 0, **g_out, **tgt2),
    )
    for q, rec in n.R_CLIENT_P.items():
        expect(
            rec,
            sample(rec, quantile(q / 100, h_ok.rates()), **g_out, **tgt),
            sample(rec, quantile(q / 100, h2.rates()), **g_out, **tgt2),
        )
    expect(
        n.R_LATE_RATIO,
        sample(n.R_LATE_RATIO, 5 / 500, **g_out, **tgt),
        sample(n.R_LATE_RATIO, 0, **g_out, **tgt2),
    )
    expect(n.R_GEN_CPU, sample(n.R_GEN_CPU, 0.4, **g_out, instance=gen["instance"], pid="4242"))

    # ---------------- TorchServe 0.12 (real names/labels, two replicas) ---------------------
    for pod, ip in (("torchserve-0", "10.244.1.5"), ("torchserve-1", "10.244.1.6")):
        ts = {
            "model_name": "resnet",
            "model_version": "default",
            "hostname": pod,
            "job": "servecmp-torchserve",
            "instance": f"{ip}:8082",
            "namespace": "servecmp",
            "pod": pod,
        }
        series.append({"series": f"{ts_m.REQUESTS}{labels(ts)}", "values": counter(300)})
        series.append({"series": f"{ts_m.LATENCY_US}{labels(ts)}", "values": counter(300 * 15000)})
        series.append({"series": f"{ts_m.QUEUE_US}{labels(ts)}", "values": counter(300 * 200)})
        host = {
            "Level": "Host",
            "Hostname": pod,
            "job": "servecmp-torchserve",
            "instance": f"{ip}:8082",
            "namespace": "servecmp",
        }
        series.append({"series": f"QueueTime{labels(host)}", "values": gauge(0)})
        series.append({"series": f"Requests2XX{labels(host)}", "values": counter(300)})
        series.append({"series": f"CPUUtilization{labels(host)}", "values": gauge(50)})
    ts_out = {"namespace": "servecmp", "model_name": "resnet", "server": "torchserve"}
    # the server-neutral records hold one series per server: both servers' samples are expected
    # together below (a record's expectation lists every series it has)
    srv: dict[str, list[dict[str, object]]] = {}

    def server_expect(record: str, *samples: dict[str, object]) -> None:
        srv.setdefault(record, []).extend(samples)

    server_expect(n.R_SERVER_REQUESTS, sample(n.R_SERVER_REQUESTS, 60, **ts_out))
    server_expect(n.R_SERVER_LATENCY_MEAN, sample(n.R_SERVER_LATENCY_MEAN, 0.015, **ts_out))
    server_expect(n.R_SERVER_QUEUE_MEAN, sample(n.R_SERVER_QUEUE_MEAN, 0.0002, **ts_out))

    # ---------------- TF Serving (prometheus_exporter.cc format) -----------------------------
    tfs = {"job": "servecmp-tfserving", "instance": "10.244.1.7:8501", "namespace": "servecmp"}
    series.append(
        {
            "series": f"{tfs_m.REQUEST_COUNT}{labels({'model_name': 'resnet', 'status': 'OK', **tfs})}",
            "values": counter(450),
        }
    )
    series.append(
        {
            "series": f"{tfs_m.REQUEST_COUNT}{labels({'model_name': 'resnet', 'status': 'UNAVAILABLE', **tfs})}",
            "values": counter(50),
        }
    )
    series.append(
        {
            "series": f"{tfs_m.REQUEST_COUNT}{labels({'model_name': 'tiny', 'status': 'OK', **tfs})}",
            "values": counter(20),
        }
    )
    lim = TFS_LATENCY_LIMITS
    rest = Histogram(
        tfs_m.REQUEST_LATENCY,
        {"model_name": "resnet", "API": "predict", "entrypoint": "REST", **tfs},
        lim,
        tf_le,
        {9: 100, 10: 150, 11: 50},
        300 * 2500,
    )
    grpc = Histogram(
        tfs_m.REQUEST_LATENCY,
        {"model_name": "resnet", "API": "Predict", "entrypoint": "GRPC", **tfs},
        lim,
        tf_le,
        {8: 200},
        200 * 900,
    )
    status_get = Histogram(
        tfs_m.REQUEST_LATENCY,
        {"model_name": "resnet", "API": "", "entrypoint": "REST", **tfs},
        lim,
        tf_le,
        {20: 100},
        100 * 1e6,
    )  # readiness polls: excluded by API=~"(?i)predict"
    runtime = Histogram(
        tfs_m.RUNTIME_LATENCY,
        {"model_name": "resnet", "API": "Predict", "runtime": "TF1", **tfs},
        lim,
        tf_le,
        {7: 400, 8: 100},
        500 * 500,
    )
    queue = Histogram(
        tfs_m.QUEUING_LATENCY,
        {"thread_pool_name": "model_server_batch_threads", **tfs},
        TFS_QUEUE_LIMITS,
        tf_le,
        {10: 500},
        500 * 600,
    )
    for h in (rest, grpc, status_get, runtime, queue):
        series += h.series()
    tf_out = {"namespace": "servecmp", "model_name": "resnet", "server": "tfserving"}
    server_expect(
        n.R_SERVER_REQUESTS,
        sample(n.R_SERVER_REQUESTS, 50, **tf_out),
        sample(n.R_SERVER_REQUESTS, 2, namespace="servecmp", model_name="tiny", server="tfserving"),
    )
    server_expect(
        n.R_SERVER_ERROR_RATIO,
        sample(n.R_SERVER_ERROR_RATIO, 0.1, **tf_out),
        sample(
            n.R_SERVER_ERROR_RATIO, 0, namespace="servecmp", model_name="tiny", server="tfserving"
        ),
    )
    for q, rec in n.R_SERVER_LATENCY_P.items():
        server_expect(
            rec,
            sample(rec, quantile(q / 100, rest.rates()) / 1e6, **tf_out, protocol="rest"),
            sample(rec, quantile(q / 100, grpc.rates()) / 1e6, **tf_out, protocol="grpc"),
        )
    server_expect(
        n.R_SERVER_LATENCY_MEAN,
        sample(n.R_SERVER_LATENCY_MEAN, 0.0025, **tf_out, protocol="rest"),
        sample(n.R_SERVER_LATENCY_MEAN, 0.0009, **tf_out, protocol="grpc"),
    )
    for q in (50, 99):
        rec = n.r_server_extra(f"runtime_seconds:p{q}")
        server_expect(rec, sample(rec, quantile(q / 100, runtime.rates()) / 1e6, **tf_out))
    server_expect(
        n.R_SERVER_QUEUE_MEAN,
        sample(n.R_SERVER_QUEUE_MEAN, 0.0006, namespace="servecmp", server="tfserving"),
    )
    rec = n.r_server_extra("queue_seconds:p99")
    server_expect(
        rec,
        sample(rec, quantile(0.99, queue.rates()) / 1e6, namespace="servecmp", server="tfserving"),
    )

    # ---------------- Triton 2.51 (docs/user_guide/metrics.md: labels model, version) ---------
    tr = {"model": "resnet", "version": "1", "job": "servecmp-triton"}
    tr |= {"instance": "10.244.1.8:8002", "namespace": "servecmp"}
    for name, per_step in (
        (tr_m.SUCCESS, 200),  # 20 req/s
        (tr_m.INFERENCES, 800),  # batch 4 per request
        (tr_m.EXECUTIONS, 200),
        (tr_m.REQUEST_US, 200 * 8000),  # 8 ms per request
        (tr_m.QUEUE_US, 200 * 500),
        (tr_m.COMPUTE_INFER_US, 200 * 6000),
    ):
        series.append({"series": f"{name}{labels(tr)}", "values": counter(per_step)})
    for reason, per_step in (("BACKEND", 10), ("REJECTED", 0), ("CANCELED", 0), ("OTHER", 0)):
        series.append(
            {
                "series": f"{tr_m.FAILURE}{labels({**tr, 'reason': reason})}",
                "values": counter(per_step),
            }
        )
    tr_out = {"namespace": "servecmp", "model_name": "resnet", "server": "triton"}
    server_expect(n.R_SERVER_REQUESTS, sample(n.R_SERVER_REQUESTS, 20, **tr_out))
    server_expect(n.R_SERVER_LATENCY_MEAN, sample(n.R_SERVER_LATENCY_MEAN, 0.008, **tr_out))
    server_expect(n.R_SERVER_QUEUE_MEAN, sample(n.R_SERVER_QUEUE_MEAN, 0.0005, **tr_out))
    server_expect(n.R_SERVER_ERROR_RATIO, sample(n.R_SERVER_ERROR_RATIO, 1 / 21, **tr_out))
    rec = n.r_server_extra("compute_seconds:mean")
    server_expect(rec, sample(rec, 0.006, **tr_out))
    rec = n.r_server_extra("batch_size:mean")
    server_expect(rec, sample(rec, 4, **tr_out))
    # ---------------- Ray Serve 2.60 (proxy latency histograms, OpenTelemetry format) -----------
    ray = {
        "Component": "core_worker",
        "SessionName": "session_2026-12-07_16-05-46_862262_758",
        "Version": "2.60.0",
        "job": "servecmp-rayserve",
        "instance": "10.244.1.8:8080",
        "namespace": "servecmp",
        "application": "resnet",
        "route": "/",
    }
    ray_le = [1, 2, 5, 10, 20, 50, 100, 200, 300, 400, 500, 1000, 2000, 5000, 10000, 60000]
    ray_http = Histogram(
        ray_m.HTTP_LATENCY_MS,
        {**ray, "method": "POST", "status_code": "200"},
        [float(x) for x in ray_le],
        lambda x: f"{x:.1f}",
        {3: 200, 4: 100},
        300 * 9.0,
    )
    ray_ready = Histogram(
        ray_m.HTTP_LATENCY_MS,
        {**ray, "method": "GET", "status_code": "200"},
        [float(x) for x in ray_le],
        lambda x: f"{x:.1f}",
        {10: 50},
        50 * 450.0,
    )  # readiness polls: excluded by method="POST"
    ray_grpc = Histogram(
        ray_m.GRPC_LATENCY_MS,
        {**ray, "method": "/inference.GRPCInferenceService/ModelInfer", "status_code": "0"},
        [float(x) for x in ray_le],
        lambda x: f"{x:.1f}",
        {2: 300},
        300 * 4.0,
    )
    for h in (ray_http, ray_ready, ray_grpc):
        series += h.series()
    ray_out = {"namespace": "servecmp", "model_name": "resnet", "server": "rayserve"}
    for key, h in (("proxy_http_seconds:p99", ray_http), ("proxy_grpc_seconds:p99", ray_grpc)):
        rec = n.r_server_extra(key)
        server_expect(rec, sample(rec, quantile(0.99, h.rates()) / 1e3, **ray_out))

    for record, samples in srv.items():
        expect(record, *samples)

    # ---------------- CPU / memory: local process exporter + cAdvisor ------------------------
    proc = {"job": n.JOB_PROCESSES, "instance": "127.0.0.1:9647", "namespace": "local", "run": "r1"}
    for server, cpu, rss in (("torchserve", 5, 400e6), ("tfserving", 3, 250e6)):
        series.append(
            {"series": f"{n.PROC_CPU}{labels({**proc, 'server': server})}", "values": counter(cpu)}
        )
        series.append(
            {"series": f"{n.PROC_RSS}{labels({**proc, 'server': server})}", "values": gauge(rss)}
        )
    kube = {
        "job": "kubelet",
        "metrics_path": "/metrics/cadvisor",
        "namespace": "servecmp",
        "node": "servecmp-worker",
    }
    for pod, container, cpu, mem in (
        ("torchserve-0", "torchserve", 8, 500e6),
        ("torchserve-1", "torchserve", 2, 300e6),
        ("tfserving-0", "tfserving", 6, 350e6),
        ("torchserve-0", "", 11, 900e6),  # pod cgroup (container=""): must not be counted
        ("torchserve-0", "model-artifacts", 1, 10e6),  # init/sidecar container: not a server
    ):
        c = {
            **kube,
            "pod": pod,
            "container": container,
            "id": f"/kubepods/{pod}/{container or 'pod'}",
            "image": "" if not container else f"{container}:x",
        }
        series.append({"series": f"{n.CADVISOR_CPU}{labels(c)}", "values": counter(cpu)})
        series.append({"series": f"{n.CADVISOR_MEM}{labels(c)}", "values": gauge(mem)})
    expect(
        n.R_SERVER_CPU,
        sample(n.R_SERVER_CPU, 0.5, namespace="local", server="torchserve", source="psutil"),
        sample(n.R_SERVER_CPU, 0.3, namespace="local", server="tfserving", source="psutil"),
        sample(n.R_SERVER_CPU, 1.0, namespace="servecmp", server="torchserve", source="cadvisor"),
        sample(n.R_SERVER_CPU, 0.6, namespace="servecmp", server="tfserving", source="cadvisor"),
    )
    expect(
        n.R_SERVER_MEM,
        sample(n.R_SERVER_MEM, 400e6, namespace="local", server="torchserve", source="psutil"),
        sample(n.R_SERVER_MEM, 250e6, namespace="local", server="tfserving", source="psutil"),
        sample(n.R_SERVER_MEM, 800e6, namespace="servecmp", server="torchserve", source="cadvisor"),
        sample(n.R_SERVER_MEM, 350e6, namespace="servecmp", server="tfserving", source="cadvisor"),
    )

    return {
        "rule_files": ["../../helm/servecmp/files/recording-rules.yaml"],
        "evaluation_interval": f"{INTERVAL_S}s",
        "tests": [
            {
                "name": "recording rules on both servers' real formats, the generator, psutil and cAdvisor",
                "interval": f"{INTERVAL_S}s",
                "input_series": series,
                "promql_expr_test": tests,
            }
        ],
    }


HEADER = "# GENERATED by tests/promtool/make_rules_test.py; run it again after changing rules or names.\n"


def render() -> str:
    return HEADER + yaml.safe_dump(build(), sort_keys=False, width=1000)


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(REPO)}")
