"""TF Serving: ``models.config``, ``monitoring.config``, ``batching.config``, command-line flags
(``flags.txt``, one a line) and its configuration surface."""

from __future__ import annotations

from typing import TYPE_CHECKING

from servecmp.servers.base import RenderedConfig

if TYPE_CHECKING:
    from servecmp.configgen.placement import Placement
    from servecmp.configgen.surface import Surface
    from servecmp.experiment import Experiment

NAME = "tfserving"
# util/prometheus_exporter.cc (2.20.0): kPrometheusPath = "/monitoring/prometheus/metrics".
METRICS_PATH = "/monitoring/prometheus/metrics"
# Threads kept free for Prometheus scrapes and model-status probes on a saturated pool.
PROBE_RESERVE = 4
# util/net_http/server/internal/evhttp_server.cc (2.20.0) StartAcceptingRequests schedules
# ``event_base_loop`` itself on the REST executor, so one pool thread never serves a request.
REST_LOOP_THREADS = 1
# grpc src/cpp/thread_manager/thread_manager.cc (the sync server TF Serving builds, server.cc
# 2.20.0): one thread always polls (min_pollers 1) and a call that finds no thread left in the
# ResourceQuota gets RESOURCE_EXHAUSTED before any service sees it: at most max - 1 calls run.
GRPC_POLLER_THREADS = 1


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
    from servecmp.load.engine.spec import StepSpec

    if exp.load.profile.value == "closed_loop":
        return max(exp.load.concurrency)
    return int(StepSpec.model_fields["max_in_flight"].default)  # open loop / rate sweep bound


def rest_api_num_threads(exp: Experiment) -> int:
    """TF Serving's REST pool runs each request to completion, ``Session::Run`` included, and the
    same pool answers ``/monitoring/prometheus/metrics`` and model-status GETs
    (model_servers/http_server.cc at 2.20.0: ``RequestExecutor`` schedules the whole
    ``ProcessRequest``; util/net_http/server/internal/evhttp_server.cc: every handler, the
    metrics one included, goes through ``executor()->Schedule``, and so does the event loop,
    which holds one thread for good). So it must not cap the measured concurrency and must keep
    threads for probes: max(the server's own default 4 x CPUs (model_servers/server.h:
    ``http_num_threads = 4.0 * NumSchedulableCPUs()``), peak in-flight requests + the loop's
    thread + a reserve). It is not the I/O-thread count TorchServe's netty event loops get."""
    cpus = max(1, int(exp.resources.cpus))
    return max(4 * cpus, peak_in_flight(exp) + REST_LOOP_THREADS + PROBE_RESERVE)


def grpc_max_threads(exp: Experiment) -> int:
    """The gRPC server's thread quota (model_servers/server.cc at 2.20.0:
    ``ResourceQuota::SetMaxThreads(grpc_max_threads)``, default ``4.0 * NumSchedulableCPUs()`` in
    server.h). One thread keeps polling, so with the default on 1 CPU only 3 calls run and the
    4th is refused with RESOURCE_EXHAUSTED, uncounted by the server's metrics. Like the REST pool
    it must never cap the measured in-flight requests: peak + the poller + a reserve for
    model-status probes, and never below the server's own default."""
    cpus = max(1, int(exp.resources.cpus))
    return max(4 * cpus, peak_in_flight(exp) + GRPC_POLLER_THREADS + PROBE_RESERVE)


def models_config(exp: Experiment, placement: Placement) -> str:
    # Serve only the newest version: a new <version>/ directory under base_path replaces the
    # old one, which is how a model update happens on TF Serving.
    return (
        "model_config_list {\n"
        "  config {\n"
        f'    name: "{exp.model}"\n'
        f'    base_path: "{placement.path(NAME, "models")}/{exp.model}"\n'
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
    cfg = placement.path(NAME, "config")
    out = [
        f"--port={placement.port(NAME, 'grpc')}",
        f"--rest_api_port={placement.port(NAME, 'rest')}",
        f"--model_config_file={cfg}/models.config",
        f"--monitoring_config_file={cfg}/monitoring.config",
        # One process-wide math pool for all concurrent runs = the whole CPU budget
        # (TorchServe: workers x threads per worker).
        f"--tensorflow_intra_op_parallelism={intra_op_threads(exp)}",
        # Concurrent ops across session runs = TorchServe's worker count.
        f"--tensorflow_inter_op_parallelism={exp.tuning.workers}",
        # Request-to-completion threads: never the cap on measured concurrency (see above).
        f"--rest_api_num_threads={rest_api_num_threads(exp)}",
        # gRPC's thread quota, likewise never the cap on measured concurrency (see above).
        f"--grpc_max_threads={grpc_max_threads(exp)}",
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


def render(exp: Experiment, placement: Placement) -> RenderedConfig:
    return RenderedConfig(
        files={
            "models.config": models_config(exp, placement),
            "monitoring.config": monitoring_config(),
            "batching.config": batching_config(exp),
            "flags.txt": "\n".join(flags(exp, placement)) + "\n",
        },
        env=worker_env(exp),
    )


def flag_lines(files: dict[str, str]) -> list[str]:
    """The command line in a rendered ``flags.txt`` (one flag a line; blank lines skipped)."""
    return [ln for ln in files["flags.txt"].splitlines() if ln.strip()]


# tensorflow_model_server flag defaults: tensorflow_serving/model_servers/server.h (2.20.0),
# ``Server::Options``. rest_api_num_threads and grpc_max_threads default to 4 x NumSchedulableCPUs()
# (machine-dependent: setting them at all is our choice, so they count as changed).
FLAG_DEFAULTS: dict[str, str | None] = {
    "--port": "8500",
    "--rest_api_port": "0",  # REST is off unless a port is given
    "--model_config_file": None,
    "--monitoring_config_file": None,
    "--tensorflow_intra_op_parallelism": "0",
    "--tensorflow_inter_op_parallelism": "0",
    "--rest_api_num_threads": None,
    "--grpc_max_threads": None,
    "--rest_api_timeout_in_ms": "30000",
    "--file_system_poll_wait_seconds": "1",
    "--enable_batching": "false",
    "--batching_parameters_file": None,
}

# Config-file fields whose value equals the server's default (``<file>:<field>`` -> text value).
PROTO_DEFAULTS: dict[str, str] = {
    # config/file_system_storage_path_source.proto (2.20.0): "This is the default policy, with
    # the default number of versions as 1."
    "models.config:model_version_policy": "{ latest { num_versions: 1 } }",
    # util/prometheus_exporter.cc (2.20.0): kPrometheusPath = "/monitoring/prometheus/metrics".
    "monitoring.config:path": '"/monitoring/prometheus/metrics"',
}


def surface(rendered: RenderedConfig) -> Surface:
    from servecmp.configgen.surface import Surface, content_lines

    files, env = rendered.files, rendered.env
    flags_ = flag_lines(files)
    flag_pairs = [f.split("=", 1) if "=" in f else [f, "true"] for f in flags_]
    changed = [k for k, v in flag_pairs if FLAG_DEFAULTS.get(k) != v]
    # Count the proto fields set in the config files (each is a knob).
    used = ["models.config", "monitoring.config"]
    if any(k == "--batching_parameters_file" for k, _ in flag_pairs):
        used.append("batching.config")
    proto_set = [
        (f"{name}:{ln.strip().split()[0].rstrip(':')}", ln.strip().split(None, 1)[1].lstrip(": "))
        for name in used
        for ln in files[name].splitlines()
        if ln.strip() and ("{" not in ln or ln.strip().endswith("}")) and ln.strip() != "}"
    ]
    proto_knobs = [k for k, _ in proto_set]
    proto_changed = [k for k, v in proto_set if PROTO_DEFAULTS.get(k) != v]
    return Surface(
        server=NAME,
        files=len(used) + 1 + (1 if env else 0),  # + the command line itself
        lines=sum(content_lines(files[n]) for n in used) + len(flags_) + len(env),
        knobs_set=len(flag_pairs) + len(proto_knobs) + len(env),
        knobs_changed=len(changed) + len(proto_changed) + len(env),
        changed=tuple(sorted([*changed, *proto_changed, *(f"env.{k}" for k in env)])),
    )
