"""TorchServe's configuration search space (``servecmp tune``), next to its fairness mapping.

Every knob is one the TorchServe 0.12.0 documentation names as performance-relevant; values stay
inside the experiment's fixed budget (the CPU set and memory limit never change, only how the
server uses them). ``field`` is the experiment field the knob sets (servecmp/configgen/torchserve.py
translates it: workers -> minWorkers/maxWorkers/default_workers_per_model, intra_op_threads ->
OMP_NUM_THREADS + torch.set_num_threads in the handler, io_threads -> number_of_netty_threads +
netty_client_threads, batching -> the model's batchSize / maxBatchDelay, logging -> a generated
log4j2.xml at warn, servecmp/servers/torchserve/log4j.py).
"""

from __future__ import annotations

from servecmp.servers.base import Knob, SearchSpace

PERF_GUIDE = "pytorch/serve v0.12.0 docs/performance_guide.md"
CONFIGURATION = "pytorch/serve v0.12.0 docs/configuration.md"

# The experiment fields TorchServe's rendering reads (servecmp tune rejects any other knob).
KNOWN_FIELDS = (
    "tuning.workers",
    "tuning.intra_op_threads",
    "tuning.io_threads",
    "tuning.batching.enabled",
    "tuning.batching.max_batch_size",
    "tuning.batching.batch_timeout_ms",
    "tuning.batching.max_enqueued_batches",
    "tuning.logging",
)

SEARCH_SPACE = SearchSpace(
    knobs=(
        Knob(
            field="tuning.batching.enabled",
            values=(False, True),
            source=f"{PERF_GUIDE} 'Optimizing TorchServe': batch_size and batch_delay are 'the "
            "main settings you should vary'",
        ),
        Knob(
            field="tuning.batching.max_batch_size",
            values=(4, 8),
            source=f"{PERF_GUIDE} 'Optimizing TorchServe' (batch_size); {CONFIGURATION} batchSize",
        ),
        Knob(
            field="tuning.batching.batch_timeout_ms",
            values=(5.0,),
            source=f"{PERF_GUIDE} 'Optimizing TorchServe' (batch_delay); {CONFIGURATION} maxBatchDelay",
        ),
        Knob(
            field="tuning.workers",
            values=(1, 2),
            source=f"{PERF_GUIDE}: number of workers is 'the second most important' setting; "
            f"{CONFIGURATION} default_workers_per_model",
        ),
        Knob(
            field="tuning.intra_op_threads",
            values=(1, 2),
            source=f"{PERF_GUIDE} 'TorchServe On CPU': thread affinity and core pinning of the "
            "workers' math threads (OMP threads per worker)",
        ),
        Knob(
            field="tuning.io_threads",
            values=(1, 4),
            source=f"{CONFIGURATION} 'Other properties' (number_of_netty_threads, "
            "netty_client_threads): 'designed for performance tuning'",
        ),
        Knob(
            field="tuning.logging",
            values=("default", "quiet"),
            source="pytorch/serve v0.12.0 docs/logging.md 'Enable asynchronous logging' ('If your model "
            "is super lightweight and you want high throughput') and 'Modify the behavior of the logs' "
            "(a custom log4j2.xml); the default logs org.pytorch.serve at DEBUG and an access line per "
            "request (frontend/server/src/main/resources/log4j2.xml)",
        ),
    ),
    known=KNOWN_FIELDS,
)
