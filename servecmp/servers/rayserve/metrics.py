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
the names against a live scrape of the installed version. Ray's export lags requests by its
report interval (seconds), fine for 1-minute rates.

Ray labels a model by ``application`` (servecmp names the application after the model): the
queries copy it into ``model_name`` (``label_replace``) and return one series per
``namespace, model_name``. ``{sel}`` is a label-selector body filled in by
servecmp.observability.
"""

from __future__ import annotations

from servecmp.servers.base import ServerMetrics

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
)
