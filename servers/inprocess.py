"""The in-process baselines: the raw model compute with the same thread budget, no server.

Each server's overhead is measured against the baseline of the framework it serves
(``ServerAdapter.baseline``). A baseline has no wire, no config files and nothing to launch:
its client (loadtests/clients/inprocess.py) loads the exported artifact itself — the TorchScript
file from inside the .mar (PyTorch) or the SavedModel (TensorFlow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from servecmp.experiment import Encoding, Protocol
from servecmp.servers.base import FairnessRow, ProtocolSpec, RenderedConfig, ServerAdapter

if TYPE_CHECKING:
    from servecmp.deploy.configgen.placement import Placement
    from servecmp.experiment import Experiment

_FAIRNESS = (
    FairnessRow("tuning.workers", "model instances shared by the users", "= tuning.workers"),
    FairnessRow("tuning.intra_op_threads", "threads per instance", "cpus / workers (or tuning.intra_op_threads)"),
)


class InProcessAdapter(ServerAdapter):
    """A framework called directly (no server): ``protocols`` is the one in-process protocol."""

    fairness = _FAIRNESS

    def render(self, exp: Experiment, placement: Placement) -> RenderedConfig:
        return RenderedConfig(files={})  # nothing to configure: the client takes the thread budget


class PyTorchInProcess(InProcessAdapter):
    name = "pytorch"
    label = "PyTorch in-process"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "pytorch"
    protocols = (ProtocolSpec(Protocol.inprocess, (Encoding.ndarray,),
                              "servecmp.loadtests.clients.inprocess:PyTorchInProcessClient"),)


class TensorFlowInProcess(InProcessAdapter):
    name = "tensorflow"
    label = "TensorFlow in-process"
    framework: ClassVar[Literal["pytorch", "tensorflow"]] = "tensorflow"
    protocols = (ProtocolSpec(Protocol.inprocess, (Encoding.ndarray,),
                              "servecmp.loadtests.clients.inprocess:TensorFlowInProcessClient"),)


PYTORCH = PyTorchInProcess()
TENSORFLOW = TensorFlowInProcess()
