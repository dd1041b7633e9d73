"""Ray Serve: the experiment's budget as a Serve config file and the launcher's flags.

Two generated files:
- ``serve_config.yaml``: Ray Serve's own config format (``ServeDeploySchema``, ray 2.60.0
  ``ray/serve/schema.py``; what ``serve run``/``serve deploy`` take), so a Ray user reads what
  ran: ``http_options`` (host, port), ``grpc_options`` (port, the OIP servicer function),
  one application (name = the model, ``route_prefix: /``, ``import_path: serve_app:app``) with
  one deployment ``TorchScriptModel``.
- ``flags.txt``: the launcher's ``ray.init`` arguments (``--num_cpus``, ``--metrics_export_port``).

Fairness mapping (README table; ray 2.60.0 sources):
- ``tuning.workers`` -> ``num_replicas``: replica actors, each a process with its own model copy
  (``ray/serve/config.py`` DeploymentConfig).
- ``resources.cpus`` -> ``ray.init(num_cpus=ceil(cpus))`` and each replica's
  ``ray_actor_options.num_cpus`` = cpus / workers, so the replicas' reservations sum to the
  budget (a logical resource: Ray schedules by it, the CPU set enforces it).
- ``intra_op_threads`` -> ``torch.set_num_threads`` in each replica and ``OMP_NUM_THREADS``.
- ``io_threads`` -> none: HTTP and gRPC are served by one proxy actor on one asyncio loop
  (``ray/serve/_private/proxy.py``); Ray has no I/O thread knob.
- ``batching`` -> ``@serve.batch(max_batch_size, batch_wait_timeout_s)`` through
  ``user_config`` (``ray/serve/batching.py``: ``set_max_batch_size``,
  ``set_batch_wait_timeout_s``); Ray counts requests, not rows. ``max_ongoing_requests`` (Ray's
  default 5, ``ray/serve/_private/constants.py`` DEFAULT_MAX_ONGOING_REQUESTS) is raised to
  ``max_batch_size`` when that is larger, else a batch could never fill (Ray warns the same,
  ``batching.py`` ``_warn_if_max_batch_size_exceeds_max_ongoing_requests``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import yaml

from servecmp.servers.base import RenderedConfig

if TYPE_CHECKING:
    from servecmp.configgen.placement import Placement
    from servecmp.experiment import Experiment

NAME = "rayserve"
SERVE_CONFIG = "serve_config.yaml"
FLAGS_FILE = "flags.txt"
DEPLOYMENT = "TorchScriptModel"
IMPORT_PATH = "serve_app:app"  # servecmp/servers/rayserve/serve_app.py, on PYTHONPATH
# grpc_options.grpc_servicer_functions: import paths the proxy calls to register services
# (ray 2.60.0 ray/serve/config.py gRPCOptions); the OIP stubs compiled by
# servecmp/load/clients/protos.py ("oip" set, package servecmp_oip_grpc_stubs).
OIP_SERVICER = (
    "servecmp_oip_grpc_stubs.grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"
)
DEFAULT_MAX_ONGOING_REQUESTS = 5  # ray 2.60.0 ray/serve/_private/constants.py


def port(placement: Placement, role: str) -> int:
    return placement.port(NAME, role)


def path(placement: Placement, role: str) -> str:
    return placement.path(NAME, role)


def ray_num_cpus(exp: Experiment) -> int:
    """``ray.init(num_cpus=...)``: whole CPUs (Ray's node resource is an int), at least 1."""
    return max(1, math.ceil(exp.resources.cpus))


def replica_num_cpus(exp: Experiment) -> float:
    """Each replica's reservation: the budget shared by the replicas (sums to ``cpus``)."""
    return round(exp.resources.cpus / exp.tuning.workers, 4)


def user_config(exp: Experiment, model_version: int = 1) -> dict[str, Any]:
    b = exp.tuning.batching
    cfg: dict[str, Any] = {"model_version": model_version, "batching": b.enabled}
    if b.enabled:
        cfg["max_batch_size"] = b.max_batch_size
        cfg["batch_wait_timeout_s"] = b.batch_timeout_ms / 1000.0
    return cfg


def serve_config(exp: Experiment, placement: Placement) -> dict[str, Any]:
    b = exp.tuning.batching
    ongoing = DEFAULT_MAX_ONGOING_REQUESTS
    if b.enabled:
        ongoing = max(ongoing, b.max_batch_size)
    return {
        "proxy_location": "HeadOnly",  # one node: one proxy
        "http_options": {"host": placement.bind_host, "port": port(placement, "rest")},
        "grpc_options": {
            "port": port(placement, "grpc"),
            "grpc_servicer_functions": [OIP_SERVICER],
        },
        "logging_config": {"log_level": "WARNING" if exp.tuning.logging == "quiet" else "INFO"},
        "applications": [
            {
                "name": exp.model,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": {
                    "model_name": exp.model,
                    "model_dir": f"{path(placement, 'models').rstrip('/')}/{exp.model}",
                    "intra_op_threads": exp.intra_op_threads,
                },
                "deployments": [
                    {
                        "name": DEPLOYMENT,
                        "num_replicas": exp.tuning.workers,
                        "max_ongoing_requests": ongoing,
                        "ray_actor_options": {"num_cpus": replica_num_cpus(exp)},
                        "user_config": user_config(exp),
                    }
                ],
            }
        ],
    }


def flags(exp: Experiment, placement: Placement) -> list[str]:
    return [
        f"--config={path(placement, 'config').rstrip('/')}/{SERVE_CONFIG}",
        f"--num_cpus={ray_num_cpus(exp)}",
        f"--metrics_export_port={port(placement, 'metrics')}",
    ]


def render(exp: Experiment, placement: Placement) -> RenderedConfig:
    head = (
        f"# Generated by servecmp from experiment {exp.name!r} ({exp.digest()}); do not edit: "
        "change the experiment file.\n"
    )
    serve = head + "# Ray Serve config (ServeDeploySchema, ray 2.60.0 ray/serve/schema.py).\n"
    serve += yaml.safe_dump(serve_config(exp, placement), sort_keys=False)
    flag_text = head + "# Arguments of servecmp/servers/rayserve/serve_app.py (its ray.init).\n"
    flag_text += "\n".join(flags(exp, placement)) + "\n"
    n = str(exp.intra_op_threads)
    return RenderedConfig(
        files={SERVE_CONFIG: serve, FLAGS_FILE: flag_text},
        env={"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "PYTHONUNBUFFERED": "1"},
    )


def read_flags(text: str) -> list[str]:
    """The argv lines of a rendered ``flags.txt`` (comments and blanks dropped)."""
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def with_model_version(text: str, version: int) -> str:
    """A rendered ``serve_config.yaml`` whose deployment loads ``version`` (user_config)."""
    doc = yaml.safe_load(text)
    for application in doc["applications"]:
        for dep in application["deployments"]:
            dep.setdefault("user_config", {})["model_version"] = version
    return yaml.safe_dump(doc, sort_keys=False)
