"""TF Serving: ``models.config``, ``monitoring.config``, ``batching.config`` and command-line flags."""

from __future__ import annotations

from servecmp.deploy.configgen.placement import Placement
from servecmp.experiment import Experiment

METRICS_PATH = "/monitoring/prometheus/metrics"


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
        f"max_batch_size {{ value: {b.max_batch_size} }}\n"
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
        # Math threads per session run = TorchServe's per-worker torch threads.
        f"--tensorflow_intra_op_parallelism={exp.intra_op_threads}",
        # Concurrent session runs = TorchServe's worker count.
        f"--tensorflow_inter_op_parallelism={exp.tuning.workers}",
        # HTTP threads = TorchServe's netty threads.
        f"--rest_api_num_threads={exp.io_threads}",
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
    n = str(exp.intra_op_threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
