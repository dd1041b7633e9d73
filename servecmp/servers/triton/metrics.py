"""Triton 2.51's own Prometheus metrics: ``GET /metrics`` on the metrics port (8002).

Names (triton-inference-server/server v2.51.0 ``docs/user_guide/metrics.md``, "Inference Request
Metrics"; checked against the running binary in tests/test_triton.py), labels ``model``,
``version`` (failures also ``reason``): counters ``nv_inference_request_success``,
``nv_inference_request_failure``, ``nv_inference_count`` (examples: a batch of n counts n),
``nv_inference_exec_count`` (batch executions), and cumulative microsecond sums
``nv_inference_request_duration_us`` (end to end inside Triton, queue included),
``nv_inference_queue_duration_us``, ``nv_inference_compute_{input,infer,output}_duration_us``;
gauge ``nv_inference_pending_request_count``. Means only: the summaries with quantiles are off by
default (``--metrics-config summary_latencies=true``). REST and gRPC are counted together.

Triton labels the model ``model``; the queries rename it ``model_name`` (label_replace) so every
server's series line up. ``{sel}`` is a label-selector body filled in by servecmp.observability;
queries return one series per ``namespace, model_name``.
"""

from __future__ import annotations

from servecmp.servers.base import PartSource, Series, ServerMetrics

SUCCESS = "nv_inference_request_success"
FAILURE = "nv_inference_request_failure"
INFERENCES = "nv_inference_count"
EXECUTIONS = "nv_inference_exec_count"
REQUEST_US = "nv_inference_request_duration_us"
QUEUE_US = "nv_inference_queue_duration_us"
COMPUTE_INPUT_US = "nv_inference_compute_input_duration_us"
COMPUTE_INFER_US = "nv_inference_compute_infer_duration_us"
COMPUTE_OUTPUT_US = "nv_inference_compute_output_duration_us"
PENDING = "nv_inference_pending_request_count"
COUNTERS = (
    SUCCESS,
    FAILURE,
    INFERENCES,
    EXECUTIONS,
    REQUEST_US,
    QUEUE_US,
    COMPUTE_INPUT_US,
    COMPUTE_INFER_US,
    COMPUTE_OUTPUT_US,
)
NAMES = (*COUNTERS, PENDING)

SEL = "{sel}"
BY = "namespace, model_name"


def _sum_rate(metric: str) -> str:
    rate = "rate(" + metric + "{" + SEL + "}[1m])"
    return f'sum by ({BY}) (label_replace({rate}, "model_name", "$1", "model", "(.*)"))'


def _per_request(metric: str) -> str:
    """A cumulative microsecond sum per successful request, in seconds."""
    return f"{_sum_rate(metric)} / {_sum_rate(SUCCESS)} / 1e6"


TOTAL = f"({_sum_rate(SUCCESS)} + {_sum_rate(FAILURE)})"

METRICS = ServerMetrics(
    names={
        "requests": SUCCESS,
        "failures": FAILURE,
        "inferences": INFERENCES,
        "executions": EXECUTIONS,
        "request_latency_us": REQUEST_US,
        "queue_us": QUEUE_US,
        "compute_infer_us": COMPUTE_INFER_US,
    },
    requests_rate=_sum_rate(SUCCESS),
    latency_mean_s=_per_request(REQUEST_US),
    latency_quantile_s=None,
    queue_mean_s=_per_request(QUEUE_US),
    error_ratio=f"{_sum_rate(FAILURE)} / {TOTAL}",
    note="means only (cumulative microsecond sums; summaries are off by default); request time "
    "from arrival in Triton's core to the response, queue included; REST and gRPC together",
    extra={
        "compute_seconds:mean": _per_request(COMPUTE_INFER_US),
        "batch_size:mean": f"{_sum_rate(INFERENCES)} / {_sum_rate(EXECUTIONS)}",
    },
    # v2.51.0 docs/user_guide/metrics.md: the duration counters are cumulative per request (a
    # request in a batch of n is charged the batch's compute), so each divides by the requests.
    breakdown={
        "total": PartSource(
            metric=REQUEST_US,
            time=(Series(REQUEST_US),),
            count=Series(SUCCESS),
            scale_s=1e-6,
            note="from arrival in Triton's core to the response, queue included; the HTTP/gRPC "
            "front end's parsing is outside",
        ),
        "queue": PartSource(
            metric=QUEUE_US,
            time=(Series(QUEUE_US),),
            count=Series(SUCCESS),
            scale_s=1e-6,
        ),
        "pre_post": PartSource(
            metric=f"{COMPUTE_INPUT_US} + {COMPUTE_OUTPUT_US}",
            time=(Series(COMPUTE_INPUT_US), Series(COMPUTE_OUTPUT_US)),
            count=Series(SUCCESS),
            scale_s=1e-6,
            note="tensors into and out of the Python backend's stub (shared memory)",
        ),
        "compute": PartSource(
            metric=COMPUTE_INFER_US,
            time=(Series(COMPUTE_INFER_US),),
            count=Series(SUCCESS),
            scale_s=1e-6,
            note="the stub's execute(): torch on the batch",
        ),
    },
)
