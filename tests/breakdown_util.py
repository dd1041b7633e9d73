"""Shared by the breakdown tests against real servers and the TF Serving double: one short
closed-loop step (a real step process) that reads the server's metrics page, and the check
that its parts add up to the client's mean within the step's noise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from servecmp.experiment import Load, Stability, Target
from servecmp.load.engine.runner import run_step
from servecmp.load.engine.spec import StepSpec
from servecmp.results.schema import StepResult


def breakdown_step(
    target: Target,
    address: str,
    metrics_url: str | None,
    payloads_path: str,
    run_dir: Path,
    concurrency: int = 2,
) -> StepResult:
    spec = StepSpec(
        run_id="t",
        step_id=f"breakdown-{target.name}",
        target=target,
        address=address,
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=concurrency,
        load=Load(
            warmup_s=0.5,
            stability=Stability(window_s=1.5, windows=2, max_windows=2, tolerance=0.5),
        ),
        payloads_path=payloads_path,
        server_metrics_url=metrics_url,
    )
    return run_step(spec, run_dir)


def parts_of(r: StepResult) -> dict[str, Any]:
    assert r.breakdown is not None, r.error
    return {p.part: p for p in r.breakdown.parts}


def assert_parts_add_up(r: StepResult) -> None:
    """Every reported part is >= 0, the self-check passed, and the parts sum to the client's
    mean within the noise the step measured (a server whose own time exceeds the client's
    would fail the self-check first)."""
    b = r.breakdown
    assert r.ok > 10, r.error
    assert b is not None and b.not_reported is None, b
    assert b.flagged is None, b.flagged
    assert b.client_mean_ms is not None and b.noise_ms is not None
    assert b.server_total_ms is not None and b.server_total_ms <= b.client_mean_ms + b.noise_ms
    reported = [p.ms for p in b.parts if p.ms is not None]
    assert all(ms >= 0 for ms in reported)
    assert abs(sum(reported) - b.client_mean_ms) <= b.noise_ms
