"""TorchServe 0.12's own Prometheus metrics (``metrics_mode=prometheus``, metrics port, ``/metrics``).

Names and labels: pytorch/serve v0.12.0 ``ts/configs/metrics.yaml`` (``ts_metrics``: counters
``ts_inference_requests_total``, ``ts_inference_latency_microseconds``,
``ts_queue_latency_microseconds`` with labels model_name, model_version, hostname), and the
captured exposition tests/promtool/torchserve-0.12.0-metrics.txt. The latencies are cumulative
microsecond sums: a mean per request is all they give (no quantiles). ``Requests4XX/5XX`` carry
no model_name label, so no per-model error ratio exists.

``{sel}`` is a label-selector body filled in by servecmp.observability (empty in the recording
rules); queries return one series per ``namespace, model_name``.
"""

from __future__ import annotations

from servecmp.servers.base import ServerMetrics

REQUESTS = "ts_inference_requests_total"
LATENCY_US = "ts_inference_latency_microseconds"
QUEUE_US = "ts_queue_latency_microseconds"

SEL = "{sel}"
BY = "namespace, model_name"


def _sum_rate(metric: str) -> str:
    return "sum by (" + BY + ") (rate(" + metric + "{" + SEL + "}[1m]))"


METRICS = ServerMetrics(
    names={"requests": REQUESTS, "latency_us": LATENCY_US, "queue_us": QUEUE_US},
    requests_rate=_sum_rate(REQUESTS),
    # microseconds summed per request -> mean seconds per request
    latency_mean_s=f"{_sum_rate(LATENCY_US)} / {_sum_rate(REQUESTS)} / 1e6",
    latency_quantile_s=None,
    queue_mean_s=f"{_sum_rate(QUEUE_US)} / {_sum_rate(REQUESTS)} / 1e6",
    error_ratio=None,
    note="mean only (cumulative microsecond sums, no histogram); includes queueing; REST and gRPC "
    "counted together",
)
