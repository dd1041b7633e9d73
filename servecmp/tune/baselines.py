"""Search spaces of the in-process baselines (``pytorch``, ``tensorflow``): model instances and
math threads per instance, the two settings the baseline clients honour
(loadtests/clients/inprocess.py: ``workers`` instances, ``intra_op_threads`` each).

The baseline stands for "the model's compute with the same budget": tuning it the same way keeps
the server-vs-baseline overhead honest when the servers are tuned.
"""

from __future__ import annotations

from servecmp.servers.base import Knob, SearchSpace

KNOWN_FIELDS = ("tuning.workers", "tuning.intra_op_threads")

PYTORCH = SearchSpace(
    knobs=(
        Knob(field="tuning.workers", values=(1, 2),
             source="pytorch/serve v0.12.0 docs/performance_guide.md: number of workers (model "
             "instances) on CPU; the baseline mirrors TorchServe's workers"),
        Knob(field="tuning.intra_op_threads", values=(1, 2),
             source="pytorch/serve v0.12.0 docs/performance_guide.md 'TorchServe On CPU': math "
             "threads per instance (torch.set_num_threads)"),
    )
)

TENSORFLOW = SearchSpace(
    knobs=(
        Knob(field="tuning.workers", values=(1, 2),
             source="tensorflow/serving 2.20.0 tensorflow_serving/g3doc/performance.md 'Binary "
             "Configuration': inter-op parallelism (concurrent runs)"),
        Knob(field="tuning.intra_op_threads", values=(1, 2),
             source="tensorflow/serving 2.20.0 tensorflow_serving/g3doc/performance.md 'Binary "
             "Configuration': tensorflow_intra_op_parallelism"),
    )
)
