"""The tune run directory: every measured configuration is one fsync'd line of
``measurements.jsonl`` (plus the candidate's own run directory with its steps), so a killed search
resumes without measuring a finished configuration again.

``<tune_dir>/``
  ``tune.json``            what was asked (experiment digest, servers, budget, strategy)
  ``experiment.yaml``      the experiment as tuned
  ``measurements.jsonl``   one :class:`Measurement` per finished measurement (append-only)
  ``candidates/<server>/<config id>-<stage>-r<round>/``  a normal run directory (steps.jsonl ...)
  ``tuned.yaml``, ``report/`` the outcome
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from servecmp.results.schema import FORMAT_VERSION, Breakdown
from servecmp.results.store import _append_line, _read_jsonl

MEASUREMENTS = "measurements.jsonl"
Stage = Literal["screen", "confirm", "grid"]


class Level(BaseModel):
    """One load level (step) of a measurement."""

    model_config = ConfigDict(extra="forbid")
    param: str  # "concurrency=4" / "rate=40"
    throughput_rps: float
    p50_ms: float | None
    p99_ms: float | None
    error_fraction: float
    valid: bool
    steady: bool
    disrupted: str | None = None
    slo_ok: bool  # valid, undisturbed, p99 <= SLO, errors <= 0.1 %
    server_cpu: float | None = None  # cores, over the reported windows
    step_id: str
    # where the step's time went (the server's own counters, results/breakdown.py); None when
    # the step carried none (an older store, or a server that declares no breakdown)
    breakdown: Breakdown | None = None


class Measurement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = FORMAT_VERSION  # read back by results.store, which checks it
    server: str
    target: str
    config_id: str
    config: dict[str, Any]
    label: str
    stage: Stage
    round: int = 0
    started_at: str
    duration_s: float
    candidate_dir: str  # relative to the tune dir
    levels: list[Level] = Field(default_factory=list)
    early_stop: str | None = None  # why the remaining levels were not measured
    unavailable: str | None = None  # the server could not run (the reason)
    score_rps: float = 0.0  # objective: best throughput among SLO-meeting levels (0: none meets it)
    score_p99_ms: float | None = None  # p99 at that level
    server_cpu: float | None = None  # at that level
    peak_rss_bytes: int | None = None
    # confirmation: the warm load before the measured level (seconds, requests, failures)
    burn_in: dict[str, float] | None = None

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.server, self.config_id, self.stage, self.round)

    @property
    def feasible(self) -> bool:
        return self.score_rps > 0


class TuneStore:
    def __init__(self, tune_dir: Path) -> None:
        self.dir = tune_dir
        self.path = tune_dir / MEASUREMENTS

    def append(self, m: Measurement) -> None:
        _append_line(
            self.path, m
        )  # one O_APPEND write + fsync: a finished measurement survives a crash

    def read(self) -> tuple[list[Measurement], list[str]]:
        records, _, warnings = _read_jsonl(self.path, Measurement)
        return records, warnings
