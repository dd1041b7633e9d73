"""TF Serving's configuration search space (``servecmp tune``), next to its fairness mapping.

Every knob is one TF Serving 2.20.0's own documentation names as performance-relevant; values
stay inside the experiment's fixed budget. ``field`` is the experiment field the knob sets
(servecmp/servers/tfserving/config.py translates it: workers -> --tensorflow_inter_op_parallelism
and num_batch_threads, intra_op_threads -> --tensorflow_intra_op_parallelism (x workers: one
process-wide pool), batching -> --enable_batching + batching.config). TF Serving has no I/O-thread
knob in the fairness mapping (its REST pool and gRPC thread quota run requests to completion and
are sized so they never cap the measured concurrency), so ``tuning.io_threads`` is not searched
and is rejected.
"""

from __future__ import annotations

from servecmp.servers import knobs

PERFORMANCE = "tensorflow/serving 2.20.0 tensorflow_serving/g3doc/performance.md"
BATCHING = "tensorflow/serving 2.20.0 tensorflow_serving/batching/README.md"

SEARCH_SPACE = knobs.space(
    *knobs.batching(
        f"{PERFORMANCE} 'Batch Size': server-side batching 'can help your performance'",
        max_batch_size=f"{BATCHING} 'Batch Scheduling Parameters': max_batch_size 'governs the "
        "throughput/latency tradeoff'",
        batch_timeout_ms=f"{BATCHING} 'CPU-only: One Approach': start at batch_timeout_micros 0, "
        "then try 1-10 ms, '0 may be the optimal value'",
        sizes=(4, 8, 16),
        timeouts_ms=(0.0, 1.0, 5.0),
    ),
    knobs.workers(
        f"{PERFORMANCE} 'Binary Configuration': tensorflow_inter_op_parallelism; {BATCHING}: "
        "num_batch_threads 'the degree of parallelism'",
        values=(1, 2, 4),
    ),
    knobs.intra_op_threads(
        f"{PERFORMANCE} 'Binary Configuration': tensorflow_intra_op_parallelism, 'savvy users may "
        "override by doing many experiments'"
    ),
    # read by batching.config, not searched
    reads=(knobs.MAX_ENQUEUED_BATCHES,),
)
