"""KServe 0.21's own Prometheus metrics: ``GET /metrics`` on the HTTP port
(``kserve/protocol/rest/server.py`` ``metrics_handler`` exposes prometheus_client's REGISTRY).

Names (``kserve/metrics.py``, kserve 0.21.0): histograms ``request_preprocess_seconds``,
``request_predict_seconds``, ``request_postprocess_seconds``, ``request_explain_seconds``,
label ``model_name`` only; ``InferenceModel.__call__`` (``kserve/model.py``) times each stage of
a request, REST and gRPC alike. No request counter, error counter or queue time exists: the
predict histogram's ``_count`` counts predict calls (failed ones too), and its time is the
model call only (no JSON/protobuf decoding, no event-loop wait). With ``--workers`` > 1 every
REST process has its own registry and a scrape sees one of them.

``{sel}`` is a label-selector body filled in by servecmp.observability; queries return one
series per ``namespace, model_name``.
"""

from __future__ import annotations

from servecmp.servers.base import PartSource, Series, ServerMetrics

PREDICT = "request_predict_seconds"
PREPROCESS = "request_preprocess_seconds"
POSTPROCESS = "request_postprocess_seconds"
EXPLAIN = "request_explain_seconds"
NAMES = (PREPROCESS, PREDICT, POSTPROCESS, EXPLAIN)

SEL = "{sel}"
BY = "namespace, model_name"


def _sum_rate(series: str, by: str = BY) -> str:
    return "sum by (" + by + ") (rate(" + series + "{" + SEL + "}[1m]))"


METRICS = ServerMetrics(
    names={
        "requests": PREDICT + "_count",
        "predict_latency": PREDICT,
        "preprocess_latency": PREPROCESS,
        "postprocess_latency": POSTPROCESS,
    },
    requests_rate=_sum_rate(PREDICT + "_count"),
    latency_mean_s=f"{_sum_rate(PREDICT + '_sum')} / {_sum_rate(PREDICT + '_count')}",
    latency_quantile_s="histogram_quantile({q}, "
    + _sum_rate(PREDICT + "_bucket", BY + ", le")
    + ")",
    queue_mean_s=None,
    error_ratio=None,
    note="model predict() time only (no decoding, no event-loop wait); histogram buckets (quantiles "
    "coarse); failed predicts counted; REST and gRPC together; one REST process per scrape "
    "when workers > 1",
    breakdown={
        # kserve 0.21.0 model.py InferenceModel.__call__: three timed stages, nothing around them
        "total": PartSource(
            metric=f"{PREPROCESS} + {PREDICT} + {POSTPROCESS}",
            time=tuple(Series(m + "_sum") for m in (PREPROCESS, PREDICT, POSTPROCESS)),
            count=Series(PREDICT + "_count"),
            kind="quantile",
            note="the model's three stages; body decoding and the event-loop wait are outside",
        ),
        "pre_post": PartSource(
            metric=f"{PREPROCESS} + {POSTPROCESS}",
            time=(Series(PREPROCESS + "_sum"), Series(POSTPROCESS + "_sum")),
            count=Series(PREDICT + "_count"),
            kind="quantile",
        ),
        "compute": PartSource(
            metric=PREDICT,
            time=(Series(PREDICT + "_sum"),),
            count=Series(PREDICT + "_count"),
            kind="quantile",
            note="predict(): the array conversion and the model",
        ),
    },
)
