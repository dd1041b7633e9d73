"""TensorFlow Serving behind the ServerAdapter seam: config.py renders models/monitoring/batching
configs and the flags, local.py starts the binary (or the pinned image under Docker), protos.py
parses the generated files, the clients are servecmp/load/clients/tfserving_*.

Importing this module stays cheap (no tensorflow, no gRPC stubs).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from servecmp.experiment import Encoding, Protocol
from servecmp.servers.base import (
    FairnessRow,
    Port,
    ProtocolSpec,
    RenderedConfig,
    ServerAdapter,
    Wire,
)
from servecmp.servers.tfserving.metrics import METRICS
from servecmp.servers.tfserving.search import SEARCH_SPACE

if TYPE_CHECKING:
    from servecmp.configgen.placement import Placement
    from servecmp.configgen.surface import Surface
    from servecmp.experiment import Experiment
    from servecmp.run.server import LocalServer

# tensorflow/serving 2.20.0 tensorflow_serving/tools/docker/Dockerfile: EXPOSE 8500 (gRPC) and
# 8501 (REST), MODEL_BASE_PATH=/models. Metrics are served on the REST port at the path set in
# monitoring.config (util/prometheus_exporter.cc: kPrometheusPath) -- the "metrics" port below is
# the REST socket in a second role (same number). Readiness: GET /v1/models/<m> (model status,
# model_servers/http_rest_api_handler.cc) lists a version AVAILABLE once it can serve.
WIRE = Wire(
    service="tfserving",
    ports=(
        Port("http", 8501, "rest"),
        Port("grpc", 8500, "grpc", "grpc"),
        Port("metrics", 8501, "metrics"),
    ),
    metrics_path="/monitoring/prometheus/metrics",
    ready_path="/v1/models/{model}",
    paths={"models": "/models", "config": "/config/tfserving"},
)


def parse_version(text: str) -> dict[str, str]:
    """``tensorflow_model_server --version`` prints 'TensorFlow ModelServer: X' and
    'TensorFlow Library: Y' (tensorflow/serving 2.20.0 tensorflow_serving/model_servers/main.cc)."""
    out = {}
    for key, label in (
        ("tensorflow_model_server", "TensorFlow ModelServer"),
        ("tensorflow", "TensorFlow Library"),
    ):
        m = re.search(rf"{label}:\s*(\S+)", text)
        if m:
            out[key] = m.group(1)
    return out


class TFServingAdapter(ServerAdapter):
    name = "tfserving"
    label = "TF Serving"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "tensorflow"
    # json row objects and one TensorProto per input, named as the signature's inputs
    # (load/clients/tfserving_*.py); b64 stays one float32 tensor
    multi_input = True
    protocols = (
        # JSON {"instances": ...}: the fair common body; {"b64": ...} is a labelled extra.
        ProtocolSpec(
            Protocol.rest,
            (Encoding.json, Encoding.b64),
            "servecmp.load.clients.tfserving_rest:TFServingRestClient",
        ),
        ProtocolSpec(
            Protocol.grpc,
            (Encoding.tensorproto,),
            "servecmp.load.clients.tfserving_grpc:TFServingGrpcClient",
        ),
    )
    baseline = "tensorflow-inprocess"
    chart = "tfserving"
    wire = WIRE
    metrics = METRICS
    search_space = SEARCH_SPACE
    fairness = (
        FairnessRow("resources.cpus", "CPU set (local) / CPU limit (k8s)", "= resources.cpus"),
        FairnessRow(
            "resources.memory_mib", "memory limit (k8s; local Docker --memory)", "= memory_mib"
        ),
        FairnessRow(
            "tuning.workers",
            "--tensorflow_inter_op_parallelism; num_batch_threads",
            "= tuning.workers (concurrent ops across session runs)",
        ),
        FairnessRow(
            "tuning.intra_op_threads",
            "--tensorflow_intra_op_parallelism, OMP_NUM_THREADS",
            "one process-wide pool: = cpus (or intra_op_threads x workers)",
        ),
        FairnessRow(
            "tuning.io_threads",
            "not mapped (--rest_api_num_threads runs requests to completion)",
            "--rest_api_num_threads = max(4 x cpus, peak in-flight + 1 event loop + 4); "
            "--grpc_max_threads = max(4 x cpus, peak in-flight + 1 poller + 4)",
        ),
        FairnessRow("tuning.batching.enabled", "--enable_batching", "off: flag absent"),
        FairnessRow(
            "tuning.batching.max_batch_size",
            "max_batch_size (counts examples)",
            "= max_batch_size x payload.batch_size",
        ),
        FairnessRow(
            "tuning.batching.batch_timeout_ms",
            "batch_timeout_micros (us)",
            "= batch_timeout_ms x 1000",
        ),
        FairnessRow(
            "tuning.batching.max_enqueued_batches", "max_enqueued_batches", "= max_enqueued_batches"
        ),
    )

    chart_files = {
        "config.models": "models.config",
        "config.monitoring": "monitoring.config",
        "config.batching": "batching.config",
        "config.flags": "flags.txt",
    }
    runtime_commands = (("tensorflow_model_server", "--version"),)

    def parse_runtime(self, outputs: Sequence[str]) -> dict[str, Any]:
        return parse_version(outputs[0] if outputs else "") or {"error": "no version printed"}

    def render(self, exp: Experiment, placement: Placement) -> RenderedConfig:
        from servecmp.servers.tfserving import config

        return config.render(exp, placement)

    def config_surface(self, rendered: RenderedConfig) -> Surface:
        from servecmp.servers.tfserving import config

        return config.surface(rendered)

    def launcher(self) -> type[LocalServer]:
        from servecmp.servers.tfserving.local import TFServingServer

        return TFServingServer

    def publish(self, artifacts: Any, model_root: Path, version: int) -> None:
        """TF Serving serves the newest ``<model_root>/<model>/<version>/`` (models.config:
        latest { num_versions: 1 }): a version directory appears atomically (copy, rename)."""
        from servecmp.run.friction import copy_version

        base = model_root / artifacts.tfserving_base.name
        base.mkdir(parents=True, exist_ok=True)
        if not (base / str(version)).exists():
            copy_version(artifacts.savedmodel, base, version)

    def update_action(
        self, server: LocalServer, artifacts_v2: Any, model_root: Path
    ) -> Callable[[], None]:
        def update() -> None:  # a new version directory: the server polls and switches to it
            self.publish(artifacts_v2, model_root, 2)

        return update

    def predict_urls(self, rest_address: str, model: str) -> tuple[str, str]:
        return (
            f"http://{rest_address}/v1/models/{model}:predict",
            f"http://{rest_address}/v1/models/no-such-model:predict",
        )

    def provenance(self, server: LocalServer) -> dict[str, Any] | None:
        from servecmp.servers.tfserving.local import TFServingServer

        assert isinstance(server, TFServingServer)
        return server.provenance()

    def provenance_label(self, prov: dict[str, Any]) -> str:
        from servecmp.servers.tfserving.local import provenance_label

        return provenance_label(prov)

    def run_notes(self, prov: dict[str, Any]) -> list[str]:
        from servecmp.servers.tfserving.local import (
            REQUEST_COUNT_NOTE,
            docker_start_note,
            mismatch_note,
            unpinned_note,
        )

        notes = [
            REQUEST_COUNT_NOTE,
            mismatch_note(prov),
            unpinned_note(prov),
            docker_start_note(prov),
        ]
        return [n for n in notes if n]


ADAPTER = TFServingAdapter()
