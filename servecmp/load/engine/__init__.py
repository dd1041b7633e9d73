"""The load engine: one step (target x profile parameter) in a child process, recorded with HDR
histograms over stability windows, with the generator watching itself.

API (none of these import Locust/gevent into the calling process)::

    from servecmp.load.engine import StepSpec, run_step, run_target
    spec = StepSpec.closed(run_id, target, "127.0.0.1:8080", load, concurrency=4, ...)
    result = run_step(spec, run_dir, cpus=[1])          # -> servecmp.results.StepResult
    results = run_target(exp, target, address, run_dir, run_id=..., cpus=[1])

The child is ``python -m servecmp.load.engine.step --spec step.json --out <run_dir>``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AddressError", "StepSpec", "check_address", "plan_steps", "run_step", "run_target"]


def __getattr__(name: str) -> Any:  # lazy: keep `import servecmp.load.engine` cheap
    if name in ("StepSpec", "check_address", "AddressError", "plan_steps"):
        from servecmp.load.engine import spec

        return getattr(spec, name)
    if name == "run_step":
        from servecmp.load.engine.runner import run_step

        return run_step
    if name == "run_target":
        from servecmp.load.engine.sweep import run_target

        return run_target
    raise AttributeError(name)
