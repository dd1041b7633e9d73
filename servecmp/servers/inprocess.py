"""The in-process baselines: the raw model compute with the same thread budget, no server.

Each server's overhead is measured against the baseline of the framework it serves
(``ServerAdapter.baseline``). A baseline has no wire, no config files and nothing to launch:
its client (servecmp/load/clients/inprocess.py) loads the exported artifact itself — the TorchScript
file from inside the .mar (PyTorch) or the SavedModel (TensorFlow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from servecmp.experiment import Encoding, Protocol
from servecmp.servers import knobs
from servecmp.servers.base import (
    CLIENT_CLOCK,
    FairnessRow,
    PartSource,
    ProtocolSpec,
    RenderedConfig,
    ServerAdapter,
)

if TYPE_CHECKING:
    from servecmp.configgen.placement import Placement
    from servecmp.experiment import Experiment

# Search spaces (servecmp tune): model instances and math threads per instance, the two settings
# the baseline clients honour. The baseline stands for "the model's compute with the same budget":
# tuning it the same way keeps the server-vs-baseline overhead honest when the servers are tuned.
PYTORCH_SPACE = knobs.space(
    knobs.workers(
        "pytorch/serve v0.12.0 docs/performance_guide.md: number of workers (model instances) on "
        "CPU; the baseline mirrors TorchServe's workers"
    ),
    knobs.intra_op_threads(
        "pytorch/serve v0.12.0 docs/performance_guide.md 'TorchServe On CPU': math threads per "
        "instance (torch.set_num_threads)"
    ),
)

TENSORFLOW_SPACE = knobs.space(
    knobs.workers(
        "tensorflow/serving 2.20.0 tensorflow_serving/g3doc/performance.md 'Binary "
        "Configuration': inter-op parallelism (concurrent runs)"
    ),
    knobs.intra_op_threads(
        "tensorflow/serving 2.20.0 tensorflow_serving/g3doc/performance.md 'Binary "
        "Configuration': tensorflow_intra_op_parallelism"
    ),
)

_FAIRNESS = (
    FairnessRow("tuning.workers", "model instances shared by the users", "= tuning.workers"),
    FairnessRow(
        "tuning.intra_op_threads",
        "threads per instance",
        "cpus / workers (or tuning.intra_op_threads)",
    ),
    FairnessRow(
        "tuning.intra_op_threads",
        "ONNX source (pytorch baseline): onnxruntime session per instance",
        "intra_op_num_threads = the threads per instance; inter-op 1",
    ),
)


class InProcessAdapter(ServerAdapter):
    """A framework called directly (no server): ``protocols`` is the one in-process protocol."""

    fairness = _FAIRNESS

    def breakdown(self, protocol: str | None = None) -> dict[str, PartSource]:
        return {"compute": CLIENT_CLOCK}

    def render(self, exp: Experiment, placement: Placement) -> RenderedConfig:
        return RenderedConfig(files={})  # nothing to configure: the client takes the thread budget


class PyTorchInProcess(InProcessAdapter):
    name = "pytorch"
    label = "PyTorch in-process"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "pytorch"
    multi_input = True  # the model is called with every input tensor
    # an ONNX card's file runs in ONNX Runtime here (meta.versions["pytorch"] says so), with
    # the same budget: intra-op threads as for torch, inter-op 1
    onnx_source = True
    protocols = (
        ProtocolSpec(
            Protocol.inprocess,
            (Encoding.ndarray,),
            "servecmp.load.clients.inprocess:PyTorchInProcessClient",
        ),
    )
    search_space = PYTORCH_SPACE


class TensorFlowInProcess(InProcessAdapter):
    name = "tensorflow"
    label = "TensorFlow in-process"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "tensorflow"
    multi_input = True  # the serving signature is called with every input by name
    protocols = (
        ProtocolSpec(
            Protocol.inprocess,
            (Encoding.ndarray,),
            "servecmp.load.clients.inprocess:TensorFlowInProcessClient",
        ),
    )
    search_space = TENSORFLOW_SPACE


PYTORCH = PyTorchInProcess()
TENSORFLOW = TensorFlowInProcess()
