"""A target's whole load profile as a sequence of steps (each in its own child process).

- ``closed_loop``: one step per concurrency level;
- ``open_loop``: one step at ``load.rate``;
- ``rate_sweep``: one step per rate, in order, stopping at the FIRST rate whose step fails the
  SLO (``slo_pass`` false: p99 > ``slo_p99_ms``, > 1% errors, < 90% of the offered rate achieved,
  or the step is invalid). :func:`rate_sweep_outcome` reports the last passing rate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from servecmp.experiment import Experiment, LoadProfile, Target
from servecmp.load.engine.runner import run_step
from servecmp.load.engine.spec import make_spec, plan_steps
from servecmp.results.schema import StepResult


def run_target(
    exp: Experiment,
    target: Target,
    address: str | None,
    run_dir: str | os.PathLike[str],
    *,
    run_id: str,
    cpus: Sequence[int] | None = None,
    start_index: int = 0,
    on_result: Callable[[StepResult], None] | None = None,
    params: Sequence[tuple[str, float]] | None = None,
    **spec_kw: Any,
) -> list[StepResult]:
    """Run every step of ``exp.load.profile`` (or only ``params``, a part of that plan) against
    one target; returns the step results."""
    results: list[StepResult] = []
    server_cpu_budget = spec_kw.pop("server_cpu_budget", exp.resources.cpus)
    for i, param in enumerate(plan_steps(exp.load) if params is None else params):
        spec = make_spec(
            run_id=run_id,
            index=start_index + i,
            target=target,
            address=address,
            load=exp.load,
            param=param,
            model=exp.model,
            payload=exp.payload,
            seed=exp.seed,
            experiment_digest=exp.digest(),
            server_cpu_budget=server_cpu_budget,
            **spec_kw,
        )
        result = run_step(spec, run_dir, cpus=cpus)
        results.append(result)
        if on_result is not None:
            on_result(result)
        if exp.load.profile is LoadProfile.rate_sweep and not result.slo_pass:
            break
    return results


@dataclass(frozen=True)
class RateSweepOutcome:
    target: str
    max_sustained_rps: float | None  # the last rate that passed (None: the first already failed)
    broke_at_rps: float | None  # the first rate that failed (None: every rate passed)
    reason: str


def rate_sweep_outcome(steps: Sequence[StepResult]) -> RateSweepOutcome:
    """Highest sustained rate of one target's rate-sweep steps (in run order)."""
    if not steps:
        raise ValueError("no rate-sweep steps")
    last_pass: float | None = None
    for s in steps:
        if s.slo_pass:
            last_pass = s.rate
            continue
        if not s.valid:
            why = f"step at {s.rate:g} req/s invalid: {s.invalid_reason}"
        elif (
            s.latency_ms.p99 is not None
            and s.slo_p99_ms is not None
            and s.latency_ms.p99 > s.slo_p99_ms
        ):
            why = f"p99 {s.latency_ms.p99:.1f} ms > SLO {s.slo_p99_ms:g} ms at {s.rate:g} req/s"
        else:
            why = (
                f"at {s.rate:g} req/s: {s.throughput_rps:.1f} req/s achieved, "
                f"{s.error_fraction:.1%} errors"
            )
        return RateSweepOutcome(s.target, last_pass, s.rate, why)
    return RateSweepOutcome(
        steps[0].target,
        last_pass,
        None,
        "every rate passed the SLO (sweep did not reach the limit)",
    )
