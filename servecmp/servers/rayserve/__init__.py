"""Ray Serve 2.60 (PyPI ``ray[serve]``) serving the TorchScript model KServe serves.

Runs from its own venv ``.venv-ray`` (scripts/setup-ray.sh) with
``servecmp/servers/rayserve/serve_app.py``: the launcher (``ray.init`` + what ``serve run
<config>`` does) and the deployment (also the cluster image's entrypoint). Protocols: Open
Inference Protocol v2 over REST (Ray Serve's HTTP proxy, the deployment routes
``/v2/models/<m>/infer``) and over gRPC (Ray Serve's gRPC proxy with the OIP
``GRPCInferenceService`` servicer), so the OIP clients work unchanged. Importing this package
stays cheap (no ray, torch or grpc stubs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from servecmp.load.clients.oip_spec import OIP_PROTOCOLS
from servecmp.servers.base import (
    FairnessRow,
    Port,
    ProtocolSpec,
    RenderedConfig,
    SearchSpace,
    ServerAdapter,
    ServerMetrics,
    Wire,
)

if TYPE_CHECKING:
    from servecmp.configgen.placement import Placement
    from servecmp.experiment import Experiment
    from servecmp.run.server import LocalServer

# ray 2.60.0 ray/serve/_private/constants.py: DEFAULT_HTTP_PORT 8000, DEFAULT_GRPC_PORT 9000.
# Ray has no default metrics export port (ray/scripts/scripts.py --metrics-export-port: None):
# 8080 is ours. /mnt/models as KServe's model mount; the config dir holds serve_config.yaml.
WIRE = Wire(
    service="rayserve",
    ports=(
        Port("http", 8000, "rest"),
        Port("grpc", 9000, "grpc", app_protocol="grpc"),
        Port("metrics", 8080, "metrics"),
    ),
    metrics_path="/metrics",
    ready_path="/v2/models/{model}/ready",
    paths={"models": "/mnt/models", "config": "/config/rayserve"},
)

from servecmp.servers.rayserve.metrics import METRICS  # noqa: E402 - cheap: names and PromQL
from servecmp.servers.rayserve.search import SEARCH_SPACE  # noqa: E402

# Where the cluster image puts the script and the OIP stubs (deploy/kind/rayserve.Dockerfile).
IMAGE_SCRIPT = "/opt/servecmp/serve_app.py"

RUNTIME_PROBE = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({p: m.version(p) for p in ('ray', 'torch', 'grpcio', 'protobuf')}))"
)


class RayServeAdapter(ServerAdapter):
    name: ClassVar[str] = "rayserve"
    label: ClassVar[str] = "Ray Serve 2.60"
    short_label: ClassVar[str] = "Ray Serve"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "pytorch"
    protocols: ClassVar[tuple[ProtocolSpec, ...]] = OIP_PROTOCOLS
    baseline: ClassVar[str | None] = "pytorch-inprocess"
    chart: ClassVar[str | None] = "rayserve"
    wire: ClassVar[Wire | None] = WIRE
    metrics: ClassVar[ServerMetrics | None] = METRICS
    search_space: ClassVar[SearchSpace | None] = SEARCH_SPACE
    # several (or integer) inputs: serve_app.py takes every input of model_spec.json by name (OIP REST and gRPC)
    multi_input: ClassVar[bool] = True
    # an ONNX card publishes model.onnx (from the .mar), run in ONNX Runtime by our model code
    onnx_source: ClassVar[bool] = True
    fairness: ClassVar[tuple[FairnessRow, ...]] = (
        FairnessRow(
            "resources.cpus",
            "CPU set (local) / CPU limit (k8s); ray.init(num_cpus); ray_actor_options.num_cpus",
            "the whole Ray process tree (GCS, raylet, agents, controller, proxy, replicas) on "
            "the CPU set; ray.init num_cpus = ceil(cpus); each replica reserves cpus / workers",
        ),
        FairnessRow("resources.memory_mib", "memory limit (k8s); no server knob", "= memory_mib"),
        FairnessRow(
            "tuning.workers",
            "num_replicas",
            "= tuning.workers replica actors (processes), each with its own model copy, behind "
            "one proxy for REST and gRPC alike",
        ),
        FairnessRow(
            "tuning.intra_op_threads",
            "torch.set_num_threads in each replica, OMP_NUM_THREADS",
            "per replica: cpus / workers (or tuning.intra_op_threads)",
        ),
        FairnessRow(
            "tuning.intra_op_threads",
            "ONNX source: onnxruntime session in each replica (intra_op_num_threads, inter_op_num_threads)",
            "per replica: the torch threads above; inter-op 1",
        ),
        FairnessRow(
            "tuning.io_threads",
            "none",
            "no I/O thread knob: one proxy actor serves HTTP and gRPC on one asyncio event loop "
            "(ray/serve/_private/proxy.py); not searched",
        ),
        FairnessRow(
            "tuning.batching.enabled",
            "@serve.batch (user_config batching)",
            "on: requests go through the replica's @serve.batch queue; off: each request runs "
            "alone (no batch queue)",
        ),
        FairnessRow(
            "tuning.batching.max_batch_size",
            "@serve.batch max_batch_size; max_ongoing_requests",
            "= max_batch_size, counted in requests (not rows) as TorchServe does; "
            "max_ongoing_requests = max(5, max_batch_size) so a batch can fill",
        ),
        FairnessRow(
            "tuning.batching.batch_timeout_ms",
            "@serve.batch batch_wait_timeout_s",
            "= batch_timeout_ms / 1000",
        ),
        FairnessRow(
            "tuning.batching.max_enqueued_batches",
            "none (max_queued_requests left at -1)",
            "no queue bound: requests wait in the proxy's router (Ray's default)",
        ),
        FairnessRow(
            "tuning.logging",
            "logging_config.log_level",
            "default: INFO (an access line per request in the proxy and the replica); quiet: "
            "WARNING",
        ),
    )
    # Helm: generated files passed with --set-file.
    chart_files: ClassVar[dict[str, str]] = {
        "config.serve": "serve_config.yaml",
        "config.flags": "flags.txt",
    }
    runtime_commands: ClassVar[tuple[tuple[str, ...], ...]] = (("python", "-c", RUNTIME_PROBE),)

    def parse_runtime(self, outputs: Any) -> dict[str, Any]:
        import json

        try:
            found = json.loads(outputs[0].strip().splitlines()[-1])
            return {"version": found.get("ray", "unknown"), **found}
        except (ValueError, IndexError, AttributeError):
            return {"version": "unknown", "outputs": [str(o).strip()[-300:] for o in outputs]}

    def render(self, exp: Experiment, placement: Placement) -> RenderedConfig:
        from servecmp.servers.rayserve.config import render

        return render(exp, placement)

    def launcher(self) -> type[LocalServer]:
        from servecmp.servers.rayserve.local import RayServeServer

        return RayServeServer

    def publish(self, artifacts: Any, model_root: Path, version: int) -> None:
        """``<model_root>/<model>/<version>/model.pt`` from the exported .mar."""
        from servecmp.servers.rayserve.local import publish_model

        model = Path(artifacts.export_json).parent.name
        publish_model(Path(artifacts.mar), Path(model_root) / model, version)

    def update_action(
        self, server: LocalServer, artifacts_v2: Any, model_root: Path
    ) -> Callable[[], None]:
        """v2 is published beside v1, then the Serve config is redeployed with
        ``user_config.model_version: 2``: every replica reloads in place (``reconfigure``)."""
        from servecmp.servers.rayserve.local import RayServeServer

        assert isinstance(server, RayServeServer)

        def update() -> None:
            self.publish(artifacts_v2, model_root, 2)
            server.redeploy(2)

        return update

    def update_how(self, server: LocalServer) -> str:
        return (
            "a redeploy of the Serve config with user_config.model_version 2 (what `serve "
            "deploy` of the edited file does, without the dashboard's REST hop): Ray Serve "
            "calls each replica's reconfigure, which loads v2 in place (Ray's 'lightweight "
            "config update'; no replica restarts)"
        )

    def predict_urls(self, rest_address: str, model: str) -> tuple[str, str]:
        base = rest_address if "://" in rest_address else f"http://{rest_address}"
        return f"{base}/v2/models/{model}/infer", f"{base}/v2/models/{model}-missing/infer"

    def provenance(self, server: LocalServer) -> dict[str, Any] | None:
        from servecmp.servers.rayserve.local import RayServeServer

        return server.provenance() if isinstance(server, RayServeServer) else None

    def run_notes(self, prov: dict[str, Any]) -> list[str]:
        return [
            "Ray Serve: every request crosses Ray's proxy actor and an actor call to a replica "
            "process; the proxy's own cost is part of each number (REST and gRPC alike). "
            "Resources are the whole Ray process tree (GCS, raylet, agents, controller, proxy, "
            "replicas).",
        ]


ADAPTER = RayServeAdapter()
