"""Names that cross the observability boundary: metrics, labels, jobs, recorded series.

Every module (generator metrics, scrape config, rules, dashboards, report queries) takes its names
from here so a rename happens in one place.

Label conventions
  target     ``Target.name`` (``torchserve-rest-json``); generator series only
  server     ``torchserve`` | ``tfserving`` | ``pytorch`` | ``tensorflow`` (``Server`` values)
  protocol   ``rest`` | ``grpc`` | ``inprocess`` (``Protocol`` values)
  encoding   ``Encoding`` values
  outcome    ``ok`` | ``transport_error`` | ``wrong_answer``
  namespace  Kubernetes namespace; the local scrape config sets ``local``
  run        run id; set by the scraper on the generator's series (local: scrape config label;
             kind: PodMonitor relabeling), never by the generator itself
"""

from __future__ import annotations

PREFIX = "servecmp_"

# ---- load generator (servecmp/observability/generator_metrics.py) -----------------------------
GEN_REQUEST_DURATION = "servecmp_request_duration_seconds"  # histogram
GEN_REQUESTS = "servecmp_requests_total"  # counter, label outcome
GEN_LATE_SENDS = "servecmp_late_sends_total"  # counter
GEN_SEND_LATENESS = "servecmp_send_lateness_seconds_total"  # counter: summed lateness
GEN_IN_FLIGHT = "servecmp_in_flight_requests"  # gauge (livesum across processes)
GEN_CPU = "servecmp_generator_cpu_seconds_total"  # counter, label pid
GEN_RSS = "servecmp_generator_resident_memory_bytes"  # gauge, label pid

GEN_LABELS = ("target", "server", "protocol", "encoding")
OUTCOMES = ("ok", "transport_error", "wrong_answer")

# ---- local process exporter (servecmp/observability/process_exporter.py) ---------------------
PROC_CPU = "servecmp_process_cpu_seconds_total"
PROC_RSS = "servecmp_process_resident_memory_bytes"
PROC_COUNT = "servecmp_process_count"

# ---- TorchServe 0.12 (metrics_mode=prometheus, :8082/metrics) --------------------------------
# Counters carry labels model_name, model_version ("default" unless a version is requested),
# hostname. Latencies are cumulative microsecond sums: mean only, no quantiles.
TS_REQUESTS = "ts_inference_requests_total"
TS_LATENCY_US = "ts_inference_latency_microseconds"
TS_QUEUE_US = "ts_queue_latency_microseconds"

# ---- TF Serving (monitoring_config prometheus_config, REST port) -----------------------------
# Histograms in microseconds, buckets 10 * 1.8**i (i < 33) then +Inf.
TFS_REQUEST_COUNT = ":tensorflow:serving:request_count"  # labels model_name, status
TFS_REQUEST_LATENCY = ":tensorflow:serving:request_latency"  # model_name, API, entrypoint
TFS_RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"  # model_name, API, runtime
TFS_QUEUING_LATENCY = ":tensorflow:serving:batching_session:queuing_latency"  # thread_pool_name
TFS_METRICS_PATH = "/monitoring/prometheus/metrics"

# ---- cAdvisor (kind, kube-prometheus-stack kubelet job) --------------------------------------
CADVISOR_CPU = "container_cpu_usage_seconds_total"
CADVISOR_MEM = "container_memory_working_set_bytes"
# The server containers MUST be named after Server values (helm charts honour this).
SERVER_CONTAINERS = ("torchserve", "tfserving")

# ---- scrape jobs (local) ---------------------------------------------------------------------
JOB_TORCHSERVE = "torchserve"
JOB_TFSERVING = "tfserving"
JOB_KSERVE = "kserve"
JOB_GENERATOR = "servecmp-generator"
JOB_PROCESSES = "servecmp-processes"

# ---- recorded series (servecmp/observability/rules.py) ---------------------------------------
W = "rate1m"  # every recorded rate uses a 1m window (kind scrapes every 5 s, local every 1 s)
R_REQUESTS = f"servecmp:requests:{W}"  # by target..., all outcomes
R_ERROR_RATIO = f"servecmp:error_ratio:{W}"
R_WRONG_RATIO = f"servecmp:wrong_answer_ratio:{W}"
R_OUTCOMES = f"servecmp:requests_by_outcome:{W}"
R_CLIENT_P = {q: f"servecmp:client_latency_seconds:p{q}_{W}" for q in (50, 95, 99)}
R_LATE_RATIO = f"servecmp:late_send_ratio:{W}"
R_GEN_CPU = f"servecmp:generator_cpu_cores:{W}"
R_TS_REQUESTS = f"servecmp:torchserve_requests:{W}"
R_TS_LATENCY_MEAN = f"servecmp:torchserve_latency_seconds:mean_{W}"
R_TS_QUEUE_MEAN = f"servecmp:torchserve_queue_seconds:mean_{W}"
R_TFS_REQUESTS = f"servecmp:tfserving_requests:{W}"
R_TFS_ERROR_RATIO = f"servecmp:tfserving_error_ratio:{W}"
R_TFS_LATENCY_P = {q: f"servecmp:tfserving_latency_seconds:p{q}_{W}" for q in (50, 95, 99)}
R_TFS_LATENCY_MEAN = f"servecmp:tfserving_latency_seconds:mean_{W}"
R_TFS_RUNTIME_P = {q: f"servecmp:tfserving_runtime_seconds:p{q}_{W}" for q in (50, 99)}
R_TFS_QUEUE_MEAN = f"servecmp:tfserving_queue_seconds:mean_{W}"
R_TFS_QUEUE_P99 = f"servecmp:tfserving_queue_seconds:p99_{W}"
R_SERVER_CPU = f"servecmp:server_cpu_cores:{W}"
R_SERVER_MEM = "servecmp:server_memory_bytes"
