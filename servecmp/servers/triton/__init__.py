"""Triton Inference Server 2.51.0 with its Python backend, serving the TorchScript model.

The binary is the one bundled in the ``nvidia-pytriton`` 0.7.0 wheel (PyPI's ``tritonserver`` is
a placeholder), run directly from ``.venv-triton`` with a generated model repository
(``config.pbtxt`` + ``servecmp/servers/triton/model.py``, which runs the TorchScript through
torch). Most Triton users serve PyTorch through the libtorch (PyTorch) or ONNX Runtime backends,
which are not obtainable here: every figure is "Triton (Python backend)", the Python stub and
its shared-memory hop included. Protocols: Open Inference Protocol v2 REST (JSON tensors, and
the binary tensor extension as a native extra) and gRPC.
Importing this package stays cheap (no torch, no grpc stubs).
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
    from servecmp.configgen.surface import Surface
    from servecmp.experiment import Experiment
    from servecmp.run.server import LocalServer

# triton-inference-server/server v2.51.0 src/command_line_parser.h: http_port_ 8000, gRPC 8001
# (command_line_parser.cc --grpc-port "Default is 8001"), metrics_port_ 8002 with /metrics
# (docs/user_guide/metrics.md); readiness GET /v2/models/<m>/ready answers 200 only when the model
# is ready (docs/protocol/README.md -> KServe v2 "Model Ready"). /models is the repository mount.
WIRE = Wire(
    service="triton",
    ports=(
        Port("http", 8000, "rest"),
        Port("grpc", 8001, "grpc", app_protocol="grpc"),
        Port("metrics", 8002, "metrics"),
    ),
    metrics_path="/metrics",
    ready_path="/v2/models/{model}/ready",
    paths={"models": "/models", "config": "/config/triton"},
)

from servecmp.servers.triton.metrics import METRICS  # noqa: E402 - cheap: names and PromQL only
from servecmp.servers.triton.search import SEARCH_SPACE  # noqa: E402

# Where the cluster image puts the Python backend's model file (deploy/kind/triton.Dockerfile).
IMAGE_MODEL_PY = "/opt/servecmp/model.py"
# What the cluster container reports (kubectl exec): the running binary's version from its own
# server metadata (GET /v2 on the HTTP port its generated flags name) and the installed packages.
RUNTIME_PROBE = (
    "import importlib.metadata as m, json, re, urllib.request; "
    f"f = open('{WIRE.paths['config']}/flags.txt').read(); "
    "p = re.search(r'--http-port=(\\d+)', f).group(1); "
    "v = json.load(urllib.request.urlopen(f'http://127.0.0.1:{p}/v2', timeout=5)); "
    "print(json.dumps({'triton': v['version'], "
    "**{k: m.version(k) for k in ('nvidia-pytriton', 'torch', 'numpy')}}))"
)


class TritonAdapter(ServerAdapter):
    name: ClassVar[str] = "triton"
    label: ClassVar[str] = "Triton 2.51 (Python backend)"
    short_label: ClassVar[str] = "Triton"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "pytorch"
    protocols: ClassVar[tuple[ProtocolSpec, ...]] = OIP_PROTOCOLS
    baseline: ClassVar[str | None] = "pytorch-inprocess"
    chart: ClassVar[str | None] = "triton"
    wire: ClassVar[Wire | None] = WIRE
    metrics: ClassVar[ServerMetrics | None] = METRICS
    search_space: ClassVar[SearchSpace | None] = SEARCH_SPACE
    server_batching: ClassVar[bool] = True
    # several (or integer) inputs: model.py runs every input of config.pbtxt (rendered from the card's inputs)
    multi_input: ClassVar[bool] = True
    # an ONNX card publishes model.onnx (from the .mar), run in ONNX Runtime by our model code
    onnx_source: ClassVar[bool] = True
    fairness: ClassVar[tuple[FairnessRow, ...]] = (
        FairnessRow("resources.cpus", "CPU set (local) / CPU limit (k8s)", "= resources.cpus"),
        FairnessRow("resources.memory_mib", "memory limit (k8s); no server knob", "= memory_mib"),
        FairnessRow(
            "tuning.workers",
            "instance_group [{count, kind: KIND_CPU}] (config.pbtxt)",
            "count = tuning.workers; the Python backend runs each instance as its own stub "
            "process with its own model copy (model_configuration.md 'Instance Groups'; "
            "python_backend r24.10 src/stub_launcher.cc), for REST and gRPC alike",
        ),
        FairnessRow(
            "tuning.intra_op_threads",
            "parameters.intra_op_threads -> torch.set_num_threads in model.py; OMP_NUM_THREADS",
            "per instance: cpus / workers (or tuning.intra_op_threads)",
        ),
        FairnessRow(
            "tuning.intra_op_threads",
            "ONNX source: onnxruntime session in model.py (intra_op_num_threads, inter_op_num_threads)",
            "per instance: parameters.intra_op_threads; inter-op 1",
        ),
        FairnessRow(
            "tuning.io_threads",
            "--http-thread-count",
            "= cpus (or tuning.io_threads): the HTTP front end's threads (default 8, "
            "src/command_line_parser.h v2.51.0); gRPC has no thread flag in 2.51",
        ),
        FairnessRow(
            "tuning.batching.enabled",
            "dynamic_batching (config.pbtxt)",
            "on: a dynamic_batching block; off: none (the default scheduler runs requests one "
            "by one) and max_batch_size = payload.batch_size",
        ),
        FairnessRow(
            "tuning.batching.max_batch_size",
            "max_batch_size, preferred_batch_size (examples)",
            "= max_batch_size x payload.batch_size: Triton counts examples (0th dimension, "
            "docs/user_guide/metrics.md 'Counts'), as TF Serving",
        ),
        FairnessRow(
            "tuning.batching.batch_timeout_ms",
            "dynamic_batching.max_queue_delay_microseconds",
            "= batch_timeout_ms x 1000",
        ),
        FairnessRow(
            "tuning.batching.max_enqueued_batches",
            "dynamic_batching.default_queue_policy.max_queue_size (requests)",
            "= max_enqueued_batches x max_batch_size requests; a full queue rejects "
            "(model_configuration.md 'Queue Policy')",
        ),
        FairnessRow(
            "tuning.logging",
            "none",
            "not mapped: Triton's default (--log-info on, no per-request lines; --log-verbose 0)",
        ),
    )
    # Helm: generated files passed with --set-file (the chart's config.* values).
    chart_files: ClassVar[dict[str, str]] = {
        "config.flags": "flags.txt",
        "config.modelConfig": "config.pbtxt",
    }
    runtime_commands: ClassVar[tuple[tuple[str, ...], ...]] = (("python3", "-c", RUNTIME_PROBE),)

    def parse_runtime(self, outputs: Any) -> dict[str, Any]:
        import json

        try:
            found = json.loads(outputs[0].strip().splitlines()[-1])
            return {"version": found.get("triton", "unknown"), **found}
        except (ValueError, IndexError, AttributeError):
            return {"version": "unknown", "outputs": [str(o).strip()[-300:] for o in outputs]}

    def render(self, exp: Experiment, placement: Placement) -> RenderedConfig:
        from servecmp.servers.triton.config import render

        return render(exp, placement)

    def config_surface(self, rendered: RenderedConfig) -> Surface:
        from servecmp.servers.triton.config import surface

        return surface(rendered)

    def launcher(self) -> type[LocalServer]:
        from servecmp.servers.triton.local import TritonServer

        return TritonServer

    def publish(self, artifacts: Any, model_root: Path, version: int) -> None:
        """``<model_root>/<model>/<version>/{model.pt, model.py}`` (``--model-repository`` is
        ``model_root``; the launcher adds ``<model>/config.pbtxt`` from the generated files)."""
        from servecmp.servers.triton.local import publish_model

        model = Path(artifacts.export_json).parent.name
        publish_model(Path(artifacts.mar), Path(model_root) / model, version)

    def update_action(
        self, server: LocalServer, artifacts_v2: Any, model_root: Path
    ) -> Callable[[], None]:
        """v2 is published beside v1, then the model repository extension
        ``POST /v2/repository/models/<m>/load`` (explicit model control) loads the highest
        version; v1 answers until v2 is ready (docs/user_guide/model_management.md v2.51.0)."""
        from servecmp.servers.triton.local import TritonServer

        assert isinstance(server, TritonServer)

        def update() -> None:
            self.publish(artifacts_v2, model_root, 2)
            server.load_model()

        return update

    def predict_urls(self, rest_address: str, model: str) -> tuple[str, str]:
        base = rest_address if "://" in rest_address else f"http://{rest_address}"
        return f"{base}/v2/models/{model}/infer", f"{base}/v2/models/{model}-missing/infer"

    def provenance(self, server: LocalServer) -> dict[str, Any] | None:
        from servecmp.servers.triton.local import TritonServer

        return server.provenance() if isinstance(server, TritonServer) else None

    def run_notes(self, prov: dict[str, Any]) -> list[str]:
        return [
            "Triton: Python backend (each instance a stub process fed through shared memory); "
            "users serving PyTorch usually take the libtorch or ONNX Runtime backend, not "
            "obtainable here. Its metrics are means (no quantiles), REST and gRPC together.",
        ]


ADAPTER = TritonAdapter()
