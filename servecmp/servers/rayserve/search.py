"""What ``servecmp tune`` may vary for Ray Serve: experiment fields its generated config reads.

Knobs Ray Serve's documentation names for performance (docs.ray.io, Ray Serve "Performance
Tuning", serve/advanced-guides/performance: reserve cores per replica with
``ray_actor_options.num_cpus``, set ``OMP_NUM_THREADS``, batch with ``@serve.batch``, scale
replicas), each set through servecmp/servers/rayserve/config.py. ``tuning.io_threads`` is absent:
Ray has no I/O thread knob (one proxy actor on one asyncio loop serves HTTP and gRPC).
"""

from __future__ import annotations

from servecmp.servers import knobs

PERF = "docs.ray.io Ray Serve 'Performance Tuning' (serve/advanced-guides/performance)"
BATCH = "docs.ray.io Ray Serve 'Dynamic Request Batching' (serve/advanced-guides/dyn-req-batch)"

SEARCH_SPACE = knobs.space(
    *knobs.batching(
        f"{BATCH}: @serve.batch 'can improve your service throughput without sacrificing "
        "latency'; ray 2.60.0 ray/serve/batching.py",
        max_batch_size=f"{BATCH} (max_batch_size); ray 2.60.0 ray/serve/batching.py "
        "set_max_batch_size",
        batch_timeout_ms=f"{BATCH} (batch_wait_timeout_s); ray/serve/batching.py "
        "set_batch_wait_timeout_s",
    ),
    knobs.workers(
        "docs.ray.io Ray Serve Autoscaling 'Manual Scaling': more num_replicas 'improve latency "
        "and throughput'; " + PERF
    ),
    knobs.intra_op_threads(
        f"{PERF}: 'Are you setting OMP_NUM_THREADS to increase the performance of your deep "
        "learning framework?'"
    ),
    knobs.logging(
        "ray 2.60.0 ray/serve/schema.py LoggingConfig.log_level (Serve logs an access line per "
        "request at INFO: ray/serve/_private/logging_utils.py)"
    ),
)
