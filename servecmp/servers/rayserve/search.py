"""What ``servecmp tune`` may vary for Ray Serve: experiment fields its generated config reads.

Knobs Ray Serve's documentation names for performance (docs.ray.io, Ray Serve "Performance
Tuning", serve/advanced-guides/performance: reserve cores per replica with
``ray_actor_options.num_cpus``, set ``OMP_NUM_THREADS``, batch with ``@serve.batch``, scale
replicas), each set through servecmp/servers/rayserve/config.py. ``tuning.io_threads`` is absent:
Ray has no I/O thread knob (one proxy actor on one asyncio loop serves HTTP and gRPC).
"""

from __future__ import annotations

from servecmp.servers.base import Knob, SearchSpace

PERF = "docs.ray.io Ray Serve 'Performance Tuning' (serve/advanced-guides/performance)"
BATCH = "docs.ray.io Ray Serve 'Dynamic Request Batching' (serve/advanced-guides/dyn-req-batch)"

KNOWN_FIELDS = (
    "tuning.workers",
    "tuning.intra_op_threads",
    "tuning.batching.enabled",
    "tuning.batching.max_batch_size",
    "tuning.batching.batch_timeout_ms",
    "tuning.logging",
)

SEARCH_SPACE = SearchSpace(
    knobs=(
        Knob(
            field="tuning.batching.enabled",
            values=(False, True),
            source=f"{BATCH}: @serve.batch 'can improve your service throughput without "
            "sacrificing latency'; ray 2.60.0 ray/serve/batching.py",
        ),
        Knob(
            field="tuning.batching.max_batch_size",
            values=(4, 8),
            source=f"{BATCH} (max_batch_size); ray 2.60.0 ray/serve/batching.py set_max_batch_size",
        ),
        Knob(
            field="tuning.batching.batch_timeout_ms",
            values=(5.0,),
            source=f"{BATCH} (batch_wait_timeout_s); ray/serve/batching.py set_batch_wait_timeout_s",
        ),
        Knob(
            field="tuning.workers",
            values=(1, 2),
            source="docs.ray.io Ray Serve Autoscaling 'Manual Scaling': more num_replicas "
            "'improve latency and throughput'; " + PERF,
        ),
        Knob(
            field="tuning.intra_op_threads",
            values=(1, 2),
            source=f"{PERF}: 'Are you setting OMP_NUM_THREADS to increase the performance of your "
            "deep learning framework?'",
        ),
        Knob(
            field="tuning.logging",
            values=("default", "quiet"),
            source="ray 2.60.0 ray/serve/schema.py LoggingConfig.log_level (Serve logs an access "
            "line per request at INFO: ray/serve/_private/logging_utils.py)",
        ),
    ),
    known=KNOWN_FIELDS,
)
