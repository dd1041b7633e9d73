"""Names that cross the observability boundary: metrics, labels, jobs, recorded series.

Every module (generator metrics, scrape config, rules, dashboards, report queries) takes its names
from here so a rename happens in one place.

Label conventions
  target     ``Target.name`` (``torchserve-rest-json``); generator series only
  server     a registry name (``servecmp.servers.registry``: ``torchserve``, ``tfserving``, ...)
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

# ---- the servers' own metrics: names and PromQL live in each adapter (servecmp/servers/<name>/metrics.py,
# ``ServerAdapter.metrics``); the rules record them under the server-neutral names below.

# ---- cAdvisor (kind, kube-prometheus-stack kubelet job) --------------------------------------
# A server's container is named ``Wire.service`` of its adapter (the charts honour this).
CADVISOR_CPU = "container_cpu_usage_seconds_total"
CADVISOR_MEM = "container_memory_working_set_bytes"

# ---- scrape jobs (local) ---------------------------------------------------------------------
# each server's job is its adapter's ``Wire.service``
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
# every server (one rule group each, label server=<adapter name>), from its ServerMetrics
R_SERVER_REQUESTS = f"servecmp:server_requests:{W}"
R_SERVER_LATENCY_MEAN = f"servecmp:server_latency_seconds:mean_{W}"
R_SERVER_LATENCY_P = {q: f"servecmp:server_latency_seconds:p{q}_{W}" for q in (50, 95, 99)}
R_SERVER_QUEUE_MEAN = f"servecmp:server_queue_seconds:mean_{W}"
R_SERVER_ERROR_RATIO = f"servecmp:server_error_ratio:{W}"


def r_server_extra(key: str) -> str:
    """Record name of a ``ServerMetrics.extra`` series."""
    return f"servecmp:server_{key}_{W}"


R_SERVER_CPU = f"servecmp:server_cpu_cores:{W}"
R_SERVER_MEM = "servecmp:server_memory_bytes"
