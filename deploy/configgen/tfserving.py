"""TF Serving: ``models.config``, ``monitoring.config``, ``batching.config`` and command-line flags."""

from __future__ import annotations

from servecmp.deploy.configgen.placement import Placement
from servecmp.experiment import Experiment

METRICS_PATH = "/monitoring/prometheus/metrics"
# Threads kept free for Prometheus scrapes and model-status probes on a saturated REST pool.
REST_PROBE_RESERVE = 4


def max_examples_per_batch(exp: Experiment) -> int:
    """TF Serving's ``max_batch_size`` counts *examples*: a task's size is its 0th dimension
    (tensorflow_serving/batching/batching_session.h at 2.20.0: ``size()`` returns
    ``zeroth_dim_size``), while TorchServe's ``batchSize`` counts requests. A request carries
    ``payload.batch_size`` examples, so the same batch of requests is ``max_batch_size x B``."""
    return exp.tuning.batching.max_batch_size * exp.payload.batch_size


def intra_op_threads(exp: Experiment) -> int:
    """TF's intra-op pool is process-wide, shared by every concurrent session run, so it gets the
    whole CPU budget (TorchServe's workers x threads per worker), not ``cpus / workers``."""
    if exp.tuning.intra_op_threads is not None:
        return exp.tuning.intra_op_threads * exp.tuning.workers
    return max(1, int(exp.resources.cpus))


def peak_in_flight(exp: Experiment) -> int:
    """The most requests the load generator keeps in flight in any step of this experiment."""
    from servecmp.loadtests.engine.spec import StepSpec

    if exp.load.profile.value == "closed_loop":
        return max(exp.load.concurrency)
    return int(StepSpec.model_fields["max_in_flight"].default)  # open loop / rate sweep bound


def rest_api_num_threads(exp: Experiment) -> int:
    """TF Serving's REST pool runs each request to completion, ``Session::Run`` included, and the
    same pool answers ``/monitoring/prometheus/metrics`` and model-status GETs
    (model_servers/http_server.cc at 2.20.0: ``RequestExecutor`` schedules the whole
    ``ProcessRequest``; util/net_http/server/internal/evhttp_server.cc: every handler, the
    metrics one included, goes through ``executor()->Schedule``). So it must not cap the measured
    concurrency and must keep threads for probes: max(the server's own default 4 x CPUs
    (model_servers/server.h: ``http_num_threads = 4.0 * NumSchedulableCPUs()``), peak in-flight
    requests + a reserve). It is not the I/O-thread count TorchServe's netty event loops get."""
    cpus = max(1, int(exp.resources.cpus))
    return max(4 * cpus, peak_in_flight(exp) + REST_PROBE_RESERVE)


def models_config(exp: Experiment, placement: Placement) -> str:
    # Serve only the newest version: a new <version>/ directory under base_path replaces the
    # old one, which is how a model update happens on TF Serving.
    return (
        "model_config_list {\n"
        "  config {\n"
        f'    name: "{exp.model}"\n'
        f'    base_path: "{placement.tfs_model_root}/{exp.model}"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy { latest { num_versions: 1 } }\n"
        "  }\n"
        "}\n"
    )


def monitoring_config() -> str:
    return f'prometheus_config {{\n  enable: true\n  path: "{METRICS_PATH}"\n}}\n'


def batching_config(exp: Experiment) -> str:
    b = exp.tuning.batching
    return (
        f"max_batch_size {{ value: {max_examples_per_batch(exp)} }}\n"
        f"batch_timeout_micros {{ value: {round(b.batch_timeout_ms * 1000)} }}\n"
        f"max_enqueued_batches {{ value: {b.max_enqueued_batches} }}\n"
        # One batch thread per model instance: the same parallelism TorchServe's workers get.
        f"num_batch_threads {{ value: {exp.tuning.workers} }}\n"
    )


def flags(exp: Experiment, placement: Placement) -> list[str]:
    p, cfg = placement.ports, placement.tfs_config_dir
    out = [
        f"--port={p.tfs_grpc}",
        f"--rest_api_port={p.tfs_rest}",
        f"--model_config_file={cfg}/models.config",
        f"--monitoring_config_file={cfg}/monitoring.config",
        # One process-wide math pool for all concurrent runs = the whole CPU budget
        # (TorchServe: workers x threads per worker).
        f"--tensorflow_intra_op_parallelism={intra_op_threads(exp)}",
        # Concurrent ops across session runs = TorchServe's worker count.
        f"--tensorflow_inter_op_parallelism={exp.tuning.workers}",
        # Request-to-completion threads: never the cap on measured concurrency (see above).
        f"--rest_api_num_threads={rest_api_num_threads(exp)}",
        "--rest_api_timeout_in_ms=120000",
        # Poll for new version directories every second (model update measurement).
        "--file_system_poll_wait_seconds=1",
    ]
    # No listen-address flag exists in tensorflow_model_server: locally it binds all interfaces
    # on these ports; the load generator only ever addresses it on 127.0.0.1.
    if exp.tuning.batching.enabled:
        out += ["--enable_batching=true", f"--batching_parameters_file={cfg}/batching.config"]
    return out


def worker_env(exp: Experiment) -> dict[str, str]:
    n = str(intra_op_threads(exp))  # the same process-wide pool size as the intra-op flag
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
