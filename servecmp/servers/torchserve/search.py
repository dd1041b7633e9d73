"""TorchServe's configuration search space (``servecmp tune``), next to its fairness mapping.

Every knob is one the TorchServe 0.12.0 documentation names as performance-relevant; values stay
inside the experiment's fixed budget (the CPU set and memory limit never change, only how the
server uses them). ``field`` is the experiment field the knob sets (servecmp/servers/torchserve/config.py
translates it: workers -> minWorkers/maxWorkers/default_workers_per_model, intra_op_threads ->
OMP_NUM_THREADS + torch.set_num_threads in the handler, io_threads -> number_of_netty_threads +
netty_client_threads, batching -> the model's batchSize / maxBatchDelay, logging -> a generated
log4j2.xml at warn, servecmp/servers/torchserve/log4j.py).
"""

from __future__ import annotations

from servecmp.servers import knobs

PERF_GUIDE = "pytorch/serve v0.12.0 docs/performance_guide.md"
CONFIGURATION = "pytorch/serve v0.12.0 docs/configuration.md"

SEARCH_SPACE = knobs.space(
    *knobs.batching(
        f"{PERF_GUIDE} 'Optimizing TorchServe': batch_size and batch_delay are 'the main settings "
        "you should vary'",
        max_batch_size=f"{PERF_GUIDE} 'Optimizing TorchServe' (batch_size); {CONFIGURATION} batchSize",
        batch_timeout_ms=f"{PERF_GUIDE} 'Optimizing TorchServe' (batch_delay); {CONFIGURATION} "
        "maxBatchDelay",
    ),
    knobs.workers(
        f"{PERF_GUIDE}: number of workers is 'the second most important' setting; "
        f"{CONFIGURATION} default_workers_per_model"
    ),
    knobs.intra_op_threads(
        f"{PERF_GUIDE} 'TorchServe On CPU': thread affinity and core pinning of the workers' math "
        "threads (OMP threads per worker)"
    ),
    knobs.io_threads(
        f"{CONFIGURATION} 'Other properties' (number_of_netty_threads, netty_client_threads): "
        "'designed for performance tuning'",
        values=(1, 4),
    ),
    knobs.logging(
        "pytorch/serve v0.12.0 docs/logging.md 'Enable asynchronous logging' ('If your model is "
        "super lightweight and you want high throughput') and 'Modify the behavior of the logs' (a "
        "custom log4j2.xml); the default logs org.pytorch.serve at DEBUG and an access line per "
        "request (frontend/server/src/main/resources/log4j2.xml)"
    ),
    # read by the rendering (the model's job queue), not searched
    reads=(knobs.MAX_ENQUEUED_BATCHES,),
)
