"""What ``servecmp tune`` may vary for Triton: experiment fields its generated config reads.

Each knob is one Triton documents as performance-relevant (triton-inference-server/server
v2.51.0 docs): instance count (``docs/user_guide/optimization.md`` "Model Instances" and
``model_configuration.md`` "Instance Groups"), the dynamic batcher (``optimization.md``
"Dynamic Batcher", ``model_configuration.md`` "Dynamic Batcher"), and the HTTP front end's
threads (``src/command_line_parser.cc`` ``--http-thread-count``: REST only; gRPC's threads are
fixed). torch's threads are ours (model.py), as for the other PyTorch servers.
"""

from __future__ import annotations

from servecmp.servers import knobs

SERVER = "triton-inference-server/server v2.51.0"

SEARCH_SPACE = knobs.space(
    knobs.workers(
        f"{SERVER} docs/user_guide/optimization.md 'Model Instances' (instance_group count)"
    ),
    knobs.intra_op_threads(
        "PyTorch docs, CPU threading and TorchScript inference: torch.set_num_threads; "
        "servecmp/servers/triton/model.py parameters.intra_op_threads"
    ),
    knobs.io_threads(
        f"{SERVER} src/command_line_parser.cc --http-thread-count 'Number of threads handling "
        "HTTP requests' (default 8)",
        values=(1, 2, 4),
        protocols=("rest",),
    ),
    *knobs.batching(
        f"{SERVER} docs/user_guide/optimization.md 'Dynamic Batcher'; model_configuration.md "
        "'Dynamic Batcher'"
    ),
    # read by config.pbtxt's dynamic batcher and queue policy, not searched
    reads=(knobs.MAX_BATCH_SIZE, knobs.BATCH_TIMEOUT_MS, knobs.MAX_ENQUEUED_BATCHES),
)
