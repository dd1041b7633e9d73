"""TorchServe 0.12 behind the ServerAdapter seam: config.py renders ``config.properties`` and the
worker env, local.py starts it as local processes, the clients are servecmp/load/clients/torchserve_*.

Importing this module stays cheap (no torch, no gRPC stubs): the launcher, the clients and the
config renderer load only when called.
"""

from __future__ import annotations

import json
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
from servecmp.servers.torchserve.metrics import METRICS
from servecmp.servers.torchserve.search import SEARCH_SPACE

if TYPE_CHECKING:
    from servecmp.configgen.placement import Placement
    from servecmp.configgen.surface import Surface
    from servecmp.experiment import Experiment
    from servecmp.models.card import ModelCard
    from servecmp.models.export import Artifacts, PackagingRecord
    from servecmp.run.server import LocalServer

# Ports: TorchServe's defaults (pytorch/serve v0.12.0 docs/configuration.md: inference 8080,
# management 8081, metrics 8082, gRPC inference 7070, gRPC management 7071); names are the
# chart's Service port names. Paths: the pytorch/torchserve image's model store
# (/home/model-server/model-store, docker/Dockerfile at v0.12.0) and the generated config's
# mount. Readiness: GET /ping answers 500 while fewer workers are healthy than minWorkers
# (frontend/.../util/ApiUtils.java isModelHealthy at v0.12.0) but 200 before the model is
# registered, so the local runtime also waits for a READY worker on the management API.
WIRE = Wire(
    service="torchserve",
    ports=(
        Port("http", 8080, "rest"),
        Port("grpc", 7070, "grpc", "grpc"),
        Port("management", 8081, "management"),
        Port("grpc-mgmt", 7071, "grpc-management", "grpc"),
        Port("metrics", 8082, "metrics"),
    ),
    metrics_path="/metrics",
    ready_path="/ping",
    paths={"models": "/home/model-server/model-store", "config": "/config/torchserve"},
)

# What the server's container reports on the cluster path (kubectl exec): its Python packages
# and the JVM (java -version prints to stderr).
RUNTIME_PROBE = (
    "import json, platform, sys\n"
    "from importlib import metadata as m\n"
    "print(json.dumps({'python': platform.python_version(), 'torch': m.version('torch'),"
    " 'torchserve': m.version('torchserve'), 'torch-model-archiver': m.version('torch-model-archiver')}))"
)


def parse_java_version(text: str) -> str | None:
    m = re.search(r'version "([^"]+)"', text)
    return m.group(1) if m else None


class TorchServeAdapter(ServerAdapter):
    name = "torchserve"
    label = "TorchServe"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "pytorch"
    artifact = "torchserve_mar"
    multi_input = True  # servecmp/models/handler.py reads every input of the spec
    onnx_source = True  # the .mar carries model.onnx; the handler runs it in ONNX Runtime
    protocols = (
        # JSON {"instances": ...} is the body every REST server takes: the fair default; raw
        # float32 bytes (TorchServe's native best) is a labelled extra.
        ProtocolSpec(
            Protocol.rest,
            (Encoding.json, Encoding.raw),
            "servecmp.load.clients.torchserve_rest:TorchServeRestClient",
        ),
        ProtocolSpec(
            Protocol.grpc,
            (Encoding.bytes,),
            "servecmp.load.clients.torchserve_grpc:TorchServeGrpcClient",
        ),
    )
    baseline = "pytorch-inprocess"
    chart = "torchserve"
    wire = WIRE
    metrics = METRICS
    search_space = SEARCH_SPACE
    fairness = (
        FairnessRow("resources.cpus", "CPU set (local) / CPU limit (k8s)", "= resources.cpus"),
        FairnessRow(
            "resources.memory_mib", "memory limit (k8s); JVM -Xmx", "-Xmx = memory_mib / 4"
        ),
        FairnessRow(
            "tuning.workers",
            "default_workers_per_model, minWorkers = maxWorkers",
            "= tuning.workers",
        ),
        FairnessRow(
            "tuning.intra_op_threads",
            "OMP_NUM_THREADS, torch.set_num_threads in the handler",
            "per worker: cpus / workers (or tuning.intra_op_threads)",
        ),
        FairnessRow(
            "tuning.intra_op_threads",
            "ONNX source: the handler's onnxruntime session (intra_op_num_threads, inter_op_num_threads)",
            "per worker: the torch threads above (not BaseHandler's all host cores); inter-op 1",
        ),
        FairnessRow(
            "tuning.io_threads",
            "number_of_netty_threads, netty_client_threads",
            "= cpus (or tuning.io_threads)",
        ),
        FairnessRow("tuning.batching.enabled", "batchSize", "off: batchSize 1"),
        FairnessRow(
            "tuning.batching.max_batch_size", "batchSize (counts requests)", "= max_batch_size"
        ),
        FairnessRow("tuning.batching.batch_timeout_ms", "maxBatchDelay (ms)", "= batch_timeout_ms"),
        FairnessRow(
            "tuning.batching.max_enqueued_batches",
            "job_queue_size",
            "= batches x batch size (>= 100)",
        ),
        FairnessRow(
            "tuning.logging",
            "log4j2.xml (vmargs -Dlog4j.configurationFile)",
            "default: TorchServe's own log4j2.xml (org.pytorch.serve at DEBUG, written twice to "
            "ts_log.log; an access line and 'Backend response time' per request); quiet: a "
            "generated copy at warn",
        ),
    )

    chart_files = {"config.properties": "config.properties"}
    runtime_commands = (("python", "-c", RUNTIME_PROBE), ("java", "-version"))

    def parse_runtime(self, outputs: Sequence[str]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        try:
            data.update(json.loads(outputs[0].strip().splitlines()[-1]))
        except (IndexError, ValueError):
            data["error"] = f"unreadable: {outputs[0][-300:] if outputs else ''}"
        if len(outputs) > 1:
            data["java"] = parse_java_version(outputs[1])
        return data

    def render(self, exp: Experiment, placement: Placement) -> RenderedConfig:
        from servecmp.servers.torchserve import config

        return config.render(exp, placement)

    def config_surface(self, rendered: RenderedConfig) -> Surface:
        from servecmp.servers.torchserve import config

        return config.surface(rendered)

    def launcher(self) -> type[LocalServer]:
        from servecmp.servers.torchserve.local import TorchServeServer

        return TorchServeServer

    def package(self, card: ModelCard, art: Artifacts, version: int) -> PackagingRecord | None:
        from servecmp.servers.torchserve.package import package_mar

        return package_mar(card, art, version)

    def local_paths(self, artifacts: Any, model_root: Path, config_dir: Path) -> dict[str, str]:
        # The export's own model store (v1 and v2 .mar side by side): nothing is copied.
        return {"models": str(artifacts.model_store), "config": str(config_dir)}

    def update_action(
        self, server: LocalServer, artifacts_v2: Any, model_root: Path
    ) -> Callable[[], None]:
        from servecmp.servers.torchserve.local import TorchServeServer

        assert isinstance(server, TorchServeServer)

        def update() -> None:  # register v2 through the management API and make it the default
            server.register_version(artifacts_v2.mar.name, "2.0")

        return update

    def predict_urls(self, rest_address: str, model: str) -> tuple[str, str]:
        return (
            f"http://{rest_address}/predictions/{model}",
            f"http://{rest_address}/predictions/no-such-model",
        )

    def request_body_limit(self, files: dict[str, str]) -> int | None:
        """``max_request_size`` of the generated config.properties, else TorchServe's default
        6553500 (pytorch/serve v0.12.0 ConfigManager.getMaxRequestSize; the REST pipeline's
        HttpObjectAggregator and the gRPC maxInboundMessageSize both use it)."""
        from servecmp.servers.torchserve.config import parse_properties

        return int(
            parse_properties(files.get("config.properties", "")).get("max_request_size", "6553500")
        )


ADAPTER = TorchServeAdapter()
