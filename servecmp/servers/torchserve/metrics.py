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

from servecmp.servers.base import PartSource, Series, ServerMetrics

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
    breakdown={
        # v0.12.0 job/RestJob.java: inference = now - job begin (request parsed) at the response,
        # queue = scheduled - begin; GRPCJob.java updates neither (only QueueTime, a gauge), so
        # gRPC requests have no breakdown. HandlerTime/PredictionTime are last-value gauges
        # (ts/configs/metrics.yaml model_metrics): no per-window mean of pre/post-processing.
        "total": PartSource(
            metric=LATENCY_US,
            time=(Series(LATENCY_US),),
            count=Series(REQUESTS),
            scale_s=1e-6,
            protocols=("rest",),
            note="from the parsed request to the written response (frontend queue + worker)",
        ),
        "queue": PartSource(
            metric=QUEUE_US,
            time=(Series(QUEUE_US),),
            count=Series(REQUESTS),
            scale_s=1e-6,
            protocols=("rest",),
            note="waiting for a free worker",
        ),
        "compute": PartSource(
            metric=f"{LATENCY_US} - {QUEUE_US}",
            remainder=True,
            protocols=("rest",),
            note="the worker: frontend-worker socket, the handler's pre/post-processing and the "
            "model (TorchServe 0.12 does not split them per request)",
        ),
    },
)
