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

from servecmp.servers.base import Knob, SearchSpace

PERFORMANCE = "tensorflow/serving 2.20.0 tensorflow_serving/g3doc/performance.md"
BATCHING = "tensorflow/serving 2.20.0 tensorflow_serving/batching/README.md"

KNOWN_FIELDS = (
    "tuning.workers",
    "tuning.intra_op_threads",
    "tuning.batching.enabled",
    "tuning.batching.max_batch_size",
    "tuning.batching.batch_timeout_ms",
    "tuning.batching.max_enqueued_batches",
)

SEARCH_SPACE = SearchSpace(
    knobs=(
        Knob(
            field="tuning.batching.enabled",
            values=(False, True),
            source=f"{PERFORMANCE} 'Batch Size': server-side batching 'can help your performance'",
        ),
        Knob(
            field="tuning.batching.max_batch_size",
            values=(4, 8, 16),
            source=f"{BATCHING} 'Batch Scheduling Parameters': max_batch_size 'governs the "
            "throughput/latency tradeoff'",
        ),
        Knob(
            field="tuning.batching.batch_timeout_ms",
            values=(0.0, 1.0, 5.0),
            source=f"{BATCHING} 'CPU-only: One Approach': start at batch_timeout_micros 0, then "
            "try 1-10 ms, '0 may be the optimal value'",
        ),
        Knob(
            field="tuning.workers",
            values=(1, 2, 4),
            source=f"{PERFORMANCE} 'Binary Configuration': tensorflow_inter_op_parallelism; "
            f"{BATCHING}: num_batch_threads 'the degree of parallelism'",
        ),
        Knob(
            field="tuning.intra_op_threads",
            values=(1, 2),
            source=f"{PERFORMANCE} 'Binary Configuration': tensorflow_intra_op_parallelism, "
            "'savvy users may override by doing many experiments'",
        ),
    ),
    known=KNOWN_FIELDS,
)
