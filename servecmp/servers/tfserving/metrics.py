"""TF Serving 2.20's own Prometheus metrics (monitoring_config ``prometheus_config``, REST port).

Names: tensorflow/serving 2.20.0 ``tensorflow_serving/servables/tensorflow/util.cc``
(``/tensorflow/serving/request_count`` labels model_name, status; ``request_latency`` and
``runtime_latency`` samplers, labels model_name, API, entrypoint | runtime, buckets
``Exponential(10, 1.8, 33)`` microseconds) and ``tensorflow_serving/batching/batching_session.cc``
(``batching_session/queuing_latency``, label thread_pool_name; present only with batching on);
``util/prometheus_exporter.cc`` turns ``/a/b`` into ``:a:b``. REST records API="predict", gRPC
API="Predict"; readiness GETs record API="" and are filtered out.

``{sel}`` is a label-selector body filled in by servecmp.observability (empty in the recording
rules); ``{q}`` a quantile (0.5, 0.95, 0.99). Queries return one series per ``namespace,
model_name`` (request latency also per ``protocol``, from the ``entrypoint`` label).
"""

from __future__ import annotations

from servecmp.servers.base import PartSource, Series, ServerMetrics

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"
QUEUING_LATENCY = ":tensorflow:serving:batching_session:queuing_latency"

SEL = "{sel}"
BY = "namespace, model_name"
BY_P = BY + ", protocol"
PREDICT = 'API=~"(?i)predict"'  # REST "predict", gRPC "Predict"; GETs record ""
_PREDICT_MATCH = (("API", "(?i)predict"),)


def _rate(metric: str, *matchers: str) -> str:
    return "rate(" + metric + "{" + ",".join([*matchers, SEL]) + "}[1m])"


def _protocol(expr: str) -> str:
    """TF Serving's ``entrypoint`` (REST | GRPC) -> servecmp's ``protocol`` (rest | grpc)."""
    inner = f'label_replace({expr}, "protocol", "rest", "entrypoint", "REST")'
    return f'label_replace({inner}, "protocol", "grpc", "entrypoint", "GRPC")'


def _latency(part: str) -> str:
    return _protocol(_rate(f"{REQUEST_LATENCY}_{part}", PREDICT))


TOTAL = f"sum by ({BY}) ({_rate(REQUEST_COUNT)})"
ERRORS = f"sum by ({BY}) ({_rate(REQUEST_COUNT, 'status!=' + chr(34) + 'OK' + chr(34))})"

METRICS = ServerMetrics(
    names={
        "requests": REQUEST_COUNT,
        "request_latency_us": REQUEST_LATENCY,
        "runtime_latency_us": RUNTIME_LATENCY,
        "queuing_latency_us": QUEUING_LATENCY,
    },
    requests_rate=TOTAL,
    latency_mean_s=f"sum by ({BY_P}) ({_latency('sum')}) / sum by ({BY_P}) ({_latency('count')}) / 1e6",
    latency_quantile_s="histogram_quantile({q}, sum by ("
    + BY_P
    + ", le) ("
    + _latency("bucket")
    + ")) / 1e6",
    queue_mean_s=(
        f"sum by (namespace) ({_rate(QUEUING_LATENCY + '_sum')}) / "
        f"sum by (namespace) ({_rate(QUEUING_LATENCY + '_count')}) / 1e6"
    ),
    # the error counter is absent until an error happens: 0 wherever requests exist
    error_ratio=f"({ERRORS} or ({TOTAL}) * 0) / {TOTAL}",
    extra={
        "runtime_seconds:p50": f"histogram_quantile(0.5, sum by ({BY}, le) ({_rate(RUNTIME_LATENCY + '_bucket')})) / 1e6",
        "runtime_seconds:p99": f"histogram_quantile(0.99, sum by ({BY}, le) ({_rate(RUNTIME_LATENCY + '_bucket')})) / 1e6",
        "queue_seconds:p99": f"histogram_quantile(0.99, sum by (namespace, le) ({_rate(QUEUING_LATENCY + '_bucket')})) / 1e6",
    },
    note="successful Predict calls per protocol (p50/p95/p99 from its histogram, and mean); model "
    "runtime p50/p99 (both protocols); batching queue mean and p99 only with batching on",
    breakdown={
        "total": PartSource(
            metric=REQUEST_LATENCY,
            time=(Series(REQUEST_LATENCY + "_sum", _PREDICT_MATCH),),
            count=Series(REQUEST_LATENCY + "_count", _PREDICT_MATCH),
            scale_s=1e-6,
            kind="quantile",
            note="a successful Predict call inside the server (REST: http_server.cc; gRPC: "
            "prediction_service_impl.cc)",
        ),
        "queue": PartSource(
            metric=QUEUING_LATENCY,
            time=(Series(QUEUING_LATENCY + "_sum"),),
            count=Series(QUEUING_LATENCY + "_count"),
            scale_s=1e-6,
            kind="quantile",
            note="the batching queue (batching_session.cc); exposed only with batching on",
        ),
        # predict_util.cc times session->Run; with batching on that is BatchingSession::Run,
        # which waits in the batch queue first (batching_session.cc ProcessBatch records
        # queuing_latency at dequeue): the model's own time is runtime - queue.
        "compute": PartSource(
            metric=f"{RUNTIME_LATENCY} - queue",
            time=(Series(RUNTIME_LATENCY + "_sum", _PREDICT_MATCH),),
            count=Series(RUNTIME_LATENCY + "_count", _PREDICT_MATCH),
            minus_parts=("queue",),
            scale_s=1e-6,
            kind="quantile",
            note="Session::Run of the model (predict_util.cc RecordRuntimeLatency), batch queue "
            "excluded",
        ),
        "pre_post": PartSource(
            metric=f"{REQUEST_LATENCY} - {RUNTIME_LATENCY}",
            remainder=True,
            note="request parsing into tensors and the reply's serialization inside the server "
            "(http_server.cc / prediction_service_impl.cc time the whole call)",
        ),
    },
)
