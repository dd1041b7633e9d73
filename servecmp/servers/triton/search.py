"""What ``servecmp tune`` may vary for Triton: experiment fields its generated config reads.

Each knob is one Triton documents as performance-relevant (triton-inference-server/server
v2.51.0 docs): instance count (``docs/user_guide/optimization.md`` "Model Instances" and
``model_configuration.md`` "Instance Groups"), the dynamic batcher (``optimization.md``
"Dynamic Batcher", ``model_configuration.md`` "Dynamic Batcher"), and the HTTP front end's
threads (``src/command_line_parser.cc`` ``--http-thread-count``: REST only; gRPC's threads are
fixed). torch's threads are ours (model.py), as for the other PyTorch servers.
"""

from __future__ import annotations

from servecmp.servers.base import Knob, SearchSpace

SEARCH_SPACE = SearchSpace(
    knobs=(
        Knob(
            field="tuning.workers",
            values=(1, 2),
            source="triton-inference-server/server v2.51.0 docs/user_guide/optimization.md "
            "'Model Instances' (instance_group count)",
        ),
        Knob(
            field="tuning.intra_op_threads",
            values=(1, 2),
            source="PyTorch docs, CPU threading and TorchScript inference: torch.set_num_threads; "
            "servecmp/servers/triton/model.py parameters.intra_op_threads",
        ),
        Knob(
            field="tuning.io_threads",
            values=(1, 2, 4),
            protocols=("rest",),
            source="triton-inference-server/server v2.51.0 src/command_line_parser.cc "
            "--http-thread-count 'Number of threads handling HTTP requests' (default 8)",
        ),
        Knob(
            field="tuning.batching.enabled",
            values=(False, True),
            source="triton-inference-server/server v2.51.0 docs/user_guide/optimization.md "
            "'Dynamic Batcher'; model_configuration.md 'Dynamic Batcher'",
        ),
    ),
    known=(
        "tuning.workers",
        "tuning.intra_op_threads",
        "tuning.io_threads",
        "tuning.batching.enabled",
        "tuning.batching.max_batch_size",
        "tuning.batching.batch_timeout_ms",
        "tuning.batching.max_enqueued_batches",
    ),
)
