"""What ``servecmp tune`` may vary for KServe: experiment fields KServe's own flags read.

Only knobs the KServe 0.21.0 server documents as its own (``kserve/model_server.py`` argparse
help) plus torch's thread count; batching is absent (no server-side batching in the Python
server, servecmp/servers/kserve/config.py). ``--max_threads`` (``tuning.io_threads``) is left out:
it sizes a pool that only runs synchronous gRPC handlers and KServe's are all coroutines
(``kserve/protocol/grpc/servicer.py``), so it cannot change a measurement. ``workers`` changes
REST only (gRPC stays in the parent process): it is declared for ``rest`` and ``servecmp tune``
holds it when the experiment also measures KServe over gRPC.
"""

from __future__ import annotations

from servecmp.servers import knobs

SEARCH_SPACE = knobs.space(
    knobs.workers(
        "kserve 0.21.0 kserve/model_server.py --workers: 'The number of uvicorn workers for "
        "multi-processing.'",
        protocols=("rest",),
    ),
    knobs.intra_op_threads(
        "PyTorch docs, CPU threading and TorchScript inference: torch.set_num_threads (intra-op "
        "parallelism); servecmp/servers/kserve/model_server.py --intra_op_threads"
    ),
    knobs.logging(
        "kserve 0.21.0 kserve/logging.py KSERVE_LOG_CONFIG (uvicorn.access, kserve.trace and kserve "
        "at INFO: lines per request) and kserve/model_server.py --log_config_file"
    ),
)
