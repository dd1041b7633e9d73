"""Burn-in: closed-loop load on a server until its throughput stops changing beyond sampling
noise (:func:`servecmp.load.engine.stability.settled`), bounded by ``load.burn_in.max_s`` and
``load.max_requests_per_step``. It runs as a step process of its own (``StepSpec.burn_in``) whose
line goes to ``<out_dir>/steps.jsonl``, never into the run's measured steps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

from servecmp.experiment import BURN_IN_WINDOWS, Experiment, Stability, Target
from servecmp.load.engine.spec import StepSpec
from servecmp.load.engine.stability import settled
from servecmp.results.schema import BurnInRecord, StepResult

MAX_WINDOWS = 100  # Stability.max_windows' bound: longer burn-ins get longer windows


def burn_in_spec(
    exp: Experiment,
    target: Target,
    address: str | None,
    *,
    run_id: str,
    after: Literal["start", "restart"],
    number: int,
    **kw: Any,
) -> StepSpec | None:
    """The burn-in step for ``target``'s server (None: ``load.burn_in.max_s`` is 0)."""
    bi = exp.load.burn_in
    if bi.max_s <= 0:
        return None
    window_s = max(bi.window_s, bi.max_s / MAX_WINDOWS)
    stability = Stability(
        window_s=window_s,
        windows=BURN_IN_WINDOWS,
        tolerance=exp.load.stability.tolerance,
        max_windows=max(BURN_IN_WINDOWS, int(bi.max_s // window_s)),
    )
    load = exp.load.model_copy(update={"warmup_s": 0.0, "stability": stability})
    users = bi.concurrency or max(exp.load.concurrency)
    return StepSpec(
        run_id=run_id,
        step_id=f"burn-in-{number:02d}-{target.server}-{after}",
        target=target,
        address=address,
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=users,
        load=load,
        model=exp.model,
        payload=exp.payload,
        seed=exp.seed,
        experiment_digest=exp.digest(),
        server_cpu_budget=exp.resources.cpus,
        burn_in=True,
        **kw,
    )


def record_of(
    spec: StepSpec, result: StepResult, after: Literal["start", "restart"]
) -> BurnInRecord:
    """What the run's provenance keeps of one burn-in."""
    st = spec.load.stability
    converged = result.stop_reason == "stable"
    reason = None
    if not converged:
        why = settled(result.windows, st.windows, st.tolerance)[1]
        if result.stop_reason in ("deadline", "error"):
            why = (result.error or result.stop_reason).splitlines()[0]
        reason = f"{result.stop_reason}: {why}" if why else result.stop_reason
    return BurnInRecord(
        server=spec.target.server,
        target=spec.target.name,
        after=after,
        started_at=result.started_at,
        concurrency=int(spec.concurrency or 1),
        converged=converged,
        duration_s=round(sum(w.duration_s for w in result.windows), 3),
        windows=len(result.windows),
        window_s=st.window_s,
        throughput_rps=[round(w.throughput_rps, 2) for w in result.windows],
        reason=reason,
    )


def run_burn_in(
    exp: Experiment,
    target: Target,
    address: str | None,
    out_dir: str | os.PathLike[str],
    *,
    run_id: str,
    after: Literal["start", "restart"],
    number: int = 0,
    cpus: Sequence[int] | None = None,
    **kw: Any,
) -> BurnInRecord | None:
    """Burn ``target``'s server in (None: burn-in is off)."""
    from servecmp.load.engine.runner import run_step

    spec = burn_in_spec(exp, target, address, run_id=run_id, after=after, number=number, **kw)
    if spec is None:
        return None
    return record_of(spec, run_step(spec, out_dir, cpus=cpus), after)


def describe(r: BurnInRecord) -> str:
    """One line for the run's notes (the report lists them under provenance)."""
    how = (
        f"throughput settled after {r.windows} windows ({r.duration_s:.1f} s)"
        if r.converged
        else f"did NOT settle within {r.windows} windows ({r.duration_s:.1f} s): {r.reason}"
    )
    seq = " → ".join(f"{v:g}" for v in r.throughput_rps[-4:])
    return f"burn-in of {r.server} after its {r.after} ({r.concurrency} users, {r.target}): {how}; last windows {seq} req/s"
