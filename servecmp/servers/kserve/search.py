"""What ``servecmp tune`` may vary for KServe: experiment fields KServe's own flags read.

Only knobs the KServe 0.21.0 server documents as its own (``kserve/model_server.py`` argparse
help) plus torch's thread count; batching is absent (no server-side batching in the Python
server, servecmp/servers/kserve/config.py).
"""

from __future__ import annotations

from servecmp.servers.base import Knob, SearchSpace

SEARCH_SPACE = SearchSpace(
    knobs=(
        Knob(
            field="tuning.workers",
            values=(1, 2),
            source="kserve 0.21.0 kserve/model_server.py --workers: 'The number of uvicorn workers "
            "for multi-processing.'",
        ),
        Knob(
            field="tuning.intra_op_threads",
            values=(1, 2),
            source="PyTorch docs, CPU threading and TorchScript inference: torch.set_num_threads "
            "(intra-op parallelism); servecmp/servers/kserve/model_server.py --intra_op_threads",
        ),
        Knob(
            field="tuning.io_threads",
            values=(1, 4),
            source="kserve 0.21.0 kserve/model_server.py --max_threads: 'The max number of gRPC "
            "processing threads.'",
        ),
    )
)
