"""Run-directory format: pydantic schema, append-only store, typed metric definitions.

from servecmp.results import RunStore, StepResult, RunMeta, TargetAvailability
"""

from servecmp.results.schema import (
    FORMAT_VERSION,
    FormatVersionError,
    LatencySummary,
    RunMeta,
    StepResult,
    TargetAvailability,
    WindowSummary,
)
from servecmp.results.store import RunStore, StepsRead

__all__ = [
    "FORMAT_VERSION",
    "FormatVersionError",
    "LatencySummary",
    "RunMeta",
    "RunStore",
    "StepResult",
    "StepsRead",
    "TargetAvailability",
    "WindowSummary",
]
