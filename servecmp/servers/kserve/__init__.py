"""KServe's Python model server (PyPI ``kserve`` 0.21.0) serving the TorchScript model.

Runs from its own venv ``.venv-kserve`` (kserve 0.21 requires protobuf<7; ours is 7.x) with
``servecmp/servers/kserve/model_server.py`` (a ``kserve.Model`` subclass; also the cluster image's
entrypoint). Protocols: v1 predict (``json``, TF Serving's body) and OIP v2 (``oip``, and
``oip-binary``: the binary tensor extension) over REST,
OIP v2 ``ModelInfer`` over gRPC. Importing this package stays cheap (no torch, no grpc stubs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from servecmp.experiment import Encoding
from servecmp.load.clients.oip_spec import oip_protocols
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

# KServe 0.21.0 kserve/constants/constants.py: DEFAULT_HTTP_PORT 8080, DEFAULT_GRPC_PORT 8081;
# /metrics is served on the HTTP port (kserve/protocol/rest/server.py), so "metrics" is the same
# socket as "rest". /mnt/models is KServe's model mount (kserve/model_repository.py).
WIRE = Wire(
    service="kserve",
    ports=(
        Port("http", 8080, "rest"),
        Port("grpc", 8081, "grpc", app_protocol="grpc"),
        Port("metrics", 8080, "metrics"),
    ),
    metrics_path="/metrics",
    ready_path="/v2/models/{model}/ready",
    paths={"models": "/mnt/models", "config": "/config/kserve"},
)

from servecmp.servers.kserve.metrics import METRICS  # noqa: E402 - cheap: names and PromQL only
from servecmp.servers.kserve.search import SEARCH_SPACE  # noqa: E402

# Where the cluster image puts the script (deploy/kind/kserve.Dockerfile).
IMAGE_SCRIPT = "/opt/servecmp/model_server.py"


RUNTIME_PROBE = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({p: m.version(p) for p in ('kserve', 'torch', 'protobuf')}))"
)


class KServeAdapter(ServerAdapter):
    name: ClassVar[str] = "kserve"
    label: ClassVar[str] = "KServe 0.21 (Python model server)"
    short_label: ClassVar[str] = "KServe"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "pytorch"
    # v1 predict JSON (TF Serving's body) first: its fair default over REST
    protocols: ClassVar[tuple[ProtocolSpec, ...]] = oip_protocols(Encoding.json)
    baseline: ClassVar[str | None] = "pytorch-inprocess"
    chart: ClassVar[str | None] = "kserve"
    wire: ClassVar[Wire | None] = WIRE
    metrics: ClassVar[ServerMetrics | None] = METRICS
    search_space: ClassVar[SearchSpace | None] = SEARCH_SPACE
    server_batching: ClassVar[bool] = False  # config.NO_BATCHING
    # several (or integer) inputs: model_server.py takes every input of model_spec.json by name (OIP) or per row (v1)
    multi_input: ClassVar[bool] = True
    # an ONNX card publishes model.onnx (from the .mar), run in ONNX Runtime by our model code
    onnx_source: ClassVar[bool] = True
    fairness: ClassVar[tuple[FairnessRow, ...]] = (
        FairnessRow("resources.cpus", "CPU set (local) / CPU limit (k8s)", "= resources.cpus"),
        FairnessRow("resources.memory_mib", "memory limit (k8s); no server knob", "= memory_mib"),
        FairnessRow(
            "tuning.workers",
            "--workers",
            "= tuning.workers uvicorn REST processes, each with its own model copy; gRPC is "
            "served by the parent process alone (one more copy, one request at a time), so "
            "workers do not multiply gRPC: kserve-grpc rows are one process whatever workers says",
        ),
        FairnessRow(
            "tuning.intra_op_threads",
            "--intra_op_threads (torch.set_num_threads), OMP_NUM_THREADS; "
            "--parent_intra_op_threads",
            "per REST process: cpus / workers (or tuning.intra_op_threads); with workers > 1 the "
            "gRPC parent gets intra_op_threads x workers (the whole budget, as TF Serving's pool)",
        ),
        FairnessRow(
            "tuning.intra_op_threads",
            "ONNX source: onnxruntime session per process (intra_op_num_threads, "
            "inter_op_num_threads)",
            "per process: the torch threads above; inter-op 1",
        ),
        FairnessRow(
            "tuning.io_threads",
            "--max_threads (no effect)",
            "= cpus (or tuning.io_threads), for the record only: it sizes the pool grpc.aio runs "
            "synchronous handlers on, and every KServe servicer method is async "
            "(kserve/protocol/grpc/servicer.py), so it changes nothing; not searched. REST has "
            "no I/O pool",
        ),
        FairnessRow(
            "tuning.batching.enabled",
            "none",
            "refused: experiment validation rejects batching on with a kserve target (no "
            "server-side dynamic batching in the Python model server; the KServe batcher is the "
            "Go agent sidecar of an InferenceService)",
        ),
        FairnessRow("tuning.batching.max_batch_size", "none", "not applicable (no batching)"),
        FairnessRow("tuning.batching.batch_timeout_ms", "none", "not applicable (no batching)"),
        FairnessRow(
            "tuning.batching.max_enqueued_batches",
            "none",
            "no queue bound: requests wait on the event loop",
        ),
        FairnessRow(
            "tuning.logging",
            "--log_config_file",
            "default: KServe's own logging (uvicorn access line and PrintTimings line per REST "
            "request, 'grpc method' line per gRPC call); quiet: those loggers at WARNING",
        ),
    )
    # Helm: the chart's config.flags value gets the generated flags.txt (--set-file).
    chart_files: ClassVar[dict[str, str]] = {"config.flags": "flags.txt"}
    # Cluster path: what the running container reports (kubectl exec).
    runtime_commands: ClassVar[tuple[tuple[str, ...], ...]] = (("python", "-c", RUNTIME_PROBE),)

    def parse_runtime(self, outputs: Any) -> dict[str, Any]:
        import json

        try:
            found = json.loads(outputs[0].strip().splitlines()[-1])
            return {"version": found.get("kserve", "unknown"), **found}
        except (ValueError, IndexError, AttributeError):
            return {"version": "unknown", "outputs": [str(o).strip()[-300:] for o in outputs]}

    def render(self, exp: Experiment, placement: Placement) -> RenderedConfig:
        from servecmp.servers.kserve.config import render

        return render(exp, placement)

    def launcher(self) -> type[LocalServer]:
        from servecmp.servers.kserve.local import KServeServer

        return KServeServer

    def publish(self, artifacts: Any, model_root: Path, version: int) -> None:
        """``<model_root>/<model>/<version>/model.pt`` from the exported .mar (the flags'
        ``--model_dir`` is ``<models role>/<model>``)."""
        from servecmp.servers.kserve.local import publish_model

        model = Path(artifacts.export_json).parent.name
        publish_model(Path(artifacts.mar), Path(model_root) / model, version)

    def update_action(
        self, server: LocalServer, artifacts_v2: Any, model_root: Path
    ) -> Callable[[], None]:
        """v2 is published beside v1, then KServe's model repository extension
        ``POST /v2/repository/models/<m>/load`` reloads the newest version in place. With
        ``--workers`` > 1 only the REST process answering that call would reload, so the server
        is restarted on v2 instead (stop, start, wait ready: requests fail meanwhile)."""
        from servecmp.servers.kserve.local import KServeServer

        assert isinstance(server, KServeServer)

        def update() -> None:
            self.publish(artifacts_v2, model_root, 2)
            if server.workers() > 1:
                server.stop()
                server.start()
                server.wait_ready()
            else:
                server.reload_model()

        return update

    def update_how(self, server: LocalServer) -> str:
        from servecmp.servers.kserve.local import KServeServer

        assert isinstance(server, KServeServer)
        did = (
            "servecmp restarted the server on v2 (stop, start, wait ready)"
            if server.workers() > 1
            else "POST /v2/repository/models/<m>/load, with servecmp's own reload behind it (KServe's "
            "ModelRepository.load is a no-op upstream, kserve/model_repository.py 0.21.0)"
        )
        return (
            f"measures servecmp's update path, not KServe's: {did}. A KServe user updates a model "
            "by rolling out a new InferenceService revision (new storageUri; Knative or the "
            "Deployment shifts traffic to new pods)"
        )

    def predict_urls(self, rest_address: str, model: str) -> tuple[str, str]:
        base = rest_address if "://" in rest_address else f"http://{rest_address}"
        return f"{base}/v1/models/{model}:predict", f"{base}/v1/models/{model}-missing:predict"

    def provenance(self, server: LocalServer) -> dict[str, Any] | None:
        from servecmp.servers.kserve.local import KServeServer

        return server.provenance() if isinstance(server, KServeServer) else None

    def run_notes(self, prov: dict[str, Any]) -> list[str]:
        return [
            "KServe: no server-side dynamic batching in the Python model server; its /metrics time "
            "the model call only; it listens on all interfaces (no bind-address flag in 0.21).",
        ]


ADAPTER = KServeAdapter()
