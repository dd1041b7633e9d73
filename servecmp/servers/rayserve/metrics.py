"""Ray Serve 2.60's own Prometheus metrics: Ray's metrics export port (``ray.init``
``_metrics_export_port``), any path (``/metrics`` used), every series prefixed ``ray_``.

Names (ray 2.60.0 wheel): ``ray/serve/_private/replica.py`` (per replica, labels ``deployment``,
``replica``, ``application``, ``route``): counters ``serve_deployment_request_counter``,
``serve_deployment_error_counter``, histogram ``serve_deployment_processing_latency_ms`` (the
user method only: REST and gRPC together); ``ray/serve/_private/request_ingress_metrics.py``
(per proxy and protocol, labels ``route``, ``method``, ``application``, ``status_code``):
counters ``serve_num_http_requests``/``serve_num_grpc_requests``, histograms
``serve_http_request_latency_ms``/``serve_grpc_request_latency_ms`` (proxy in to proxy out).
Counters are exported with ``_total`` (Prometheus client naming); tests/test_rayserve.py checks
the names against a live scrape of the installed version.

Export lag: a Ray process pushes its metrics to the node's agent every
``max(metrics_report_interval_ms, 1000)`` ms (default 10000; the floor mirrors ``stats.h``, ray
2.60.0 ``ray/_private/telemetry/open_telemetry_metric_recorder.py``), and a replica first caches
its own series for ``RAY_SERVE_METRICS_EXPORT_INTERVAL_MS`` (default 100,
``ray/serve/_private/constants.py``, ``replica.py`` ``_report_cached_metrics``). serve_app.py
sets the interval to its 1000 ms floor, so a read is at most about 1.1 s old, each process on its
own phase: fine for 1-minute rates; a step's window-edge reads cannot be made exact (see
``breakdown`` below).

Ray labels a model by ``application`` (servecmp names the application after the model): the
queries copy it into ``model_name`` (``label_replace``) and return one series per
``namespace, model_name``. ``{sel}`` is a label-selector body filled in by
servecmp.observability.
"""

from __future__ import annotations

from servecmp.servers.base import PartSource, Series, ServerMetrics

PREFIX = "ray_"
REQUESTS = "ray_serve_deployment_request_counter_total"
ERRORS = "ray_serve_deployment_error_counter_total"
PROCESSING_MS = "ray_serve_deployment_processing_latency_ms"
HTTP_REQUESTS = "ray_serve_num_http_requests_total"
HTTP_LATENCY_MS = "ray_serve_http_request_latency_ms"
GRPC_REQUESTS = "ray_serve_num_grpc_requests_total"
GRPC_LATENCY_MS = "ray_serve_grpc_request_latency_ms"
NAMES = (
    REQUESTS,
    ERRORS,
    PROCESSING_MS,
    HTTP_REQUESTS,
    HTTP_LATENCY_MS,
    GRPC_REQUESTS,
    GRPC_LATENCY_MS,
)

SEL = "{sel}"
BY = "namespace, model_name"


def _rate(series: str) -> str:
    return (
        "label_replace(rate(" + series + "{" + SEL + '}[1m]), "model_name", "$1", '
        '"application", "(.+)")'
    )


def _sum_rate(series: str, by: str = BY) -> str:
    return "sum by (" + by + ") (" + _rate(series) + ")"


def _quantile_s(histogram_ms: str, match: str = "") -> str:
    """``match``: one more matcher, e.g. ``method="POST"`` (it opens the selector ``{sel}``
    closes; an empty ``{sel}`` leaves no stray comma: servecmp.observability.rules.server_query)."""
    series = histogram_ms + "_bucket" + ("{" + match + "," if match else "")
    if match:  # "X_bucket{m,{sel}}": _rate's own "{" + SEL + "}" would open a second selector
        inner = "rate(" + series + SEL + "}[1m])"
        lr = "label_replace(" + inner + ', "model_name", "$1", "application", "(.+)")'
        return "histogram_quantile({q}, sum by (" + BY + ", le) (" + lr + ")) / 1000"
    return "histogram_quantile({q}, " + _sum_rate(series, BY + ", le") + ") / 1000"


# Breakdown series (window-edge reads). The proxy also times readiness calls: POSTs (REST) and
# ModelInfer (gRPC) only; ``method`` is the HTTP verb or the gRPC service method
# (ray/serve/_private/proxy_request_response.py).
_POST = (("method", "POST"),)
_INFER = (("method", ".*/ModelInfer"),)
MS = 1e-3


def _proxy_total(
    histogram_ms: str, match: tuple[tuple[str, str], ...], protocol: str
) -> PartSource:
    return PartSource(
        metric=histogram_ms,
        time=(Series(histogram_ms + "_sum", match),),
        count=Series(histogram_ms + "_count", match),
        scale_s=MS,
        kind="quantile",
        protocols=(protocol,),
        # proxy.py proxy_request: start after the front end parsed the request, end after the
        # last response message; its own request count is what the step's self-check compares
        note="the proxy's own time, routing to a replica and the reply included; each process "
        "exports about once a second on its own phase, so the reads may cover a window shifted "
        "by up to ~1.1 s: where that shows (request count, or a server mean above the "
        "client's) the self-check flags the step",
    )


BREAKDOWN = {
    "total": _proxy_total(HTTP_LATENCY_MS, _POST, "rest"),
    # replica.py handle_request: _handle_errors_and_metrics times the replica's slot
    # (_start_request) and the deployment method; serve_app.py's methods
    # decode the body, await the @serve.batch queue (batching.py: the batch's wait and run are
    # per batch, serve_batch_wait_time_ms/serve_batch_execution_time_ms, so no per-request split)
    # and encode the reply inside it. Its own count: the replica exports on its own phase.
    "compute": PartSource(
        metric=PROCESSING_MS,
        time=(Series(PROCESSING_MS + "_sum"),),
        count=Series(PROCESSING_MS + "_count"),
        scale_s=MS,
        kind="quantile",
        note="the replica: its slot, then the deployment method: body decoding, the "
        "@serve.batch queue wait (batching on), the model and the reply's encoding",
    ),
    # request_router.py _record_queue_wait_time observes the router's queue once per assignment
    # (a replica's rejection re-queues the request and observes it again from its creation), so
    # serve_request_router_fulfillment_time_ms is not a per-request queue: it stays in here.
    "pre_post": PartSource(
        metric=f"proxy latency - {PROCESSING_MS}",
        remainder=True,
        note="the proxy around the replica: routing (its queue for a replica included), the "
        "actor call to the replica and back, the request's and reply's (de)serialization",
    ),
}

METRICS = ServerMetrics(
    names={
        "requests": REQUESTS,
        "errors": ERRORS,
        "processing_latency": PROCESSING_MS,
        "http_requests": HTTP_REQUESTS,
        "http_latency": HTTP_LATENCY_MS,
        "grpc_requests": GRPC_REQUESTS,
        "grpc_latency": GRPC_LATENCY_MS,
    },
    requests_rate=_sum_rate(REQUESTS),
    latency_mean_s=f"{_sum_rate(PROCESSING_MS + '_sum')} / {_sum_rate(PROCESSING_MS + '_count')} / 1000",
    latency_quantile_s=_quantile_s(PROCESSING_MS),
    queue_mean_s=None,
    error_ratio=f"{_sum_rate(ERRORS)} / {_sum_rate(REQUESTS)}",
    note="replica method time only (batch queue wait included, proxy hop excluded); histogram "
    "buckets (quantiles coarse); REST and gRPC together; the proxy's own latency per protocol "
    "is in the http/grpc extra series",
    extra={
        # POSTs only: the proxy also times readiness GETs
        "proxy_http_seconds:p99": _quantile_s(HTTP_LATENCY_MS, 'method="POST"').replace(
            "{q}", "0.99"
        ),
        "proxy_grpc_seconds:p99": _quantile_s(GRPC_LATENCY_MS).replace("{q}", "0.99"),
    },
    breakdown=BREAKDOWN,
    breakdown_by_protocol={"grpc": {"total": _proxy_total(GRPC_LATENCY_MS, _INFER, "grpc")}},
)
