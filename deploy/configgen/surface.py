"""Configuration surface: how much configuration each server needed for the same experiment.

Counted from the generated files themselves (so the figure cannot drift from what we run):
files, non-comment lines, and knobs set away from the server's documented default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from servecmp.deploy.configgen.render import GeneratedConfigs
from servecmp.deploy.configgen.torchserve import parse_properties

# TorchServe 0.12 defaults (docs/configuration.md). Values that depend on the machine
# (e.g. netty threads = number of cores) are None: setting them at all is a choice we made.
TORCHSERVE_DEFAULTS: dict[str, str | None] = {
    "inference_address": "http://127.0.0.1:8080",
    "management_address": "http://127.0.0.1:8081",
    "metrics_address": "http://127.0.0.1:8082",
    "grpc_inference_address": None,
    "grpc_inference_port": "7070",
    "grpc_management_address": None,
    "grpc_management_port": "7071",
    "model_store": None,
    "load_models": None,
    "models": None,
    "disable_token_authorization": "false",
    "enable_model_api": "false",
    "metrics_mode": "log",
    "default_workers_per_model": None,
    "number_of_netty_threads": None,
    "netty_client_threads": None,
    "job_queue_size": "100",
    "install_py_dep_per_model": "false",
    "max_request_size": "6553500",
    "max_response_size": "6553500",
    "vmargs": None,
}

# tensorflow_model_server flag defaults: tensorflow_serving/model_servers/server.h (2.20.0),
# ``Server::Options``. rest_api_num_threads defaults to 4 x NumSchedulableCPUs() (machine-dependent:
# setting it at all is our choice, so it counts as changed).
TFSERVING_FLAG_DEFAULTS: dict[str, str | None] = {
    "--port": "8500",
    "--rest_api_port": "0",  # REST is off unless a port is given
    "--model_config_file": None,
    "--monitoring_config_file": None,
    "--tensorflow_intra_op_parallelism": "0",
    "--tensorflow_inter_op_parallelism": "0",
    "--rest_api_num_threads": None,
    "--rest_api_timeout_in_ms": "30000",
    "--file_system_poll_wait_seconds": "1",
    "--enable_batching": "false",
    "--batching_parameters_file": None,
}

# Config-file fields whose value equals the server's default (``<file>:<field>`` → text value).
TFSERVING_PROTO_DEFAULTS: dict[str, str] = {
    # config/file_system_storage_path_source.proto (2.20.0): "This is the default policy, with
    # the default number of versions as 1."
    "models.config:model_version_policy": "{ latest { num_versions: 1 } }",
    # util/prometheus_exporter.cc (2.20.0): kPrometheusPath = "/monitoring/prometheus/metrics".
    "monitoring.config:path": '"/monitoring/prometheus/metrics"',
}


@dataclass(frozen=True)
class Surface:
    server: str
    files: int
    lines: int
    knobs_set: int  # settings we wrote at all
    knobs_changed: int  # of those, away from the documented default
    changed: tuple[str, ...]


def _content_lines(text: str) -> int:
    return sum(1 for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))


def config_surface(configs: GeneratedConfigs) -> dict[str, Surface]:
    out: dict[str, Surface] = {}

    ts_files = configs.files["torchserve"]
    props = parse_properties(ts_files["config.properties"])
    changed = [k for k, v in props.items() if TORCHSERVE_DEFAULTS.get(k) != v]
    # Per-model settings inside the models= JSON are knobs of their own.
    model_knobs = [
        f"models.{m}.{ver}.{key}"
        for m, versions in json.loads(props.get("models", "{}")).items()
        for ver, settings in versions.items()
        for key in settings
    ]
    env = configs.env.get("torchserve", {})
    out["torchserve"] = Surface(
        server="torchserve",
        files=len(ts_files) + (1 if env else 0),
        lines=sum(_content_lines(t) for t in ts_files.values()) + len(env),
        knobs_set=len(props) + len(model_knobs) + len(env),
        knobs_changed=len(changed) + len(model_knobs) + len(env),
        changed=tuple(sorted([*changed, *model_knobs, *(f"env.{k}" for k in env)])),
    )

    tfs_files = {k: v for k, v in configs.files["tfserving"].items()}
    flags = configs.tfserving_flags()
    flag_pairs = [f.split("=", 1) if "=" in f else [f, "true"] for f in flags]
    tfs_changed = [k for k, v in flag_pairs if TFSERVING_FLAG_DEFAULTS.get(k) != v]
    # Count the proto fields set in the config files (each is a knob).
    used = ["models.config", "monitoring.config"]
    if any(k == "--batching_parameters_file" for k, _ in flag_pairs):
        used.append("batching.config")
    proto_set = [
        (f"{name}:{ln.strip().split()[0].rstrip(':')}", ln.strip().split(None, 1)[1].lstrip(": "))
        for name in used
        for ln in tfs_files[name].splitlines()
        if ln.strip() and ("{" not in ln or ln.strip().endswith("}")) and ln.strip() != "}"
    ]
    proto_knobs = [k for k, _ in proto_set]
    proto_changed = [k for k, v in proto_set if TFSERVING_PROTO_DEFAULTS.get(k) != v]
    env = configs.env.get("tfserving", {})
    out["tfserving"] = Surface(
        server="tfserving",
        files=len(used) + 1 + (1 if env else 0),  # + the command line itself
        lines=sum(_content_lines(tfs_files[n]) for n in used) + len(flags) + len(env),
        knobs_set=len(flag_pairs) + len(proto_knobs) + len(env),
        knobs_changed=len(tfs_changed) + len(proto_changed) + len(env),
        changed=tuple(sorted([*tfs_changed, *proto_changed, *(f"env.{k}" for k in env)])),
    )
    return out
