"""Load one run directory for the report: stored results only (no server, no Prometheus).

Every reader error passes through with its message (file, line, versions):
:class:`~servecmp.results.schema.FormatVersionError`, :class:`~servecmp.results.store.StoreError`.
Problems that still allow a report (a truncated last line, no targets.jsonl, no series.json) become
``RunData.warnings`` and are shown at the top of the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servecmp.experiment import Experiment, ExperimentError, load_experiment
from servecmp.observability.queries import load_series
from servecmp.results.friction import FRICTION, FrictionRecord, read_friction
from servecmp.results.schema import RunMeta, StepResult, TargetAvailability
from servecmp.results.store import RunStore

EXPERIMENT_FILE = "experiment.yaml"
SERIES_FILE = Path("prometheus") / "series.json"


class ReportError(ValueError):
    """Input the report cannot be built from; the message says which file/setting and why."""


@dataclass
class RunData:
    dir: Path
    meta: RunMeta
    meta_raw: dict[str, Any]
    steps: list[StepResult]
    availability: dict[str, TargetAvailability]  # last record per target
    friction: list[FrictionRecord]
    series: dict[str, Any] | None
    experiment: Experiment | None
    warnings: list[str] = field(default_factory=list)
    truncated_steps: bool = False

    @property
    def run_id(self) -> str:
        return self.meta.run_id

    def target_names(self) -> list[str]:
        """Every target the run knows about, in the experiment's order (never dropping one)."""
        names: list[str] = []
        for n in [*self.meta.targets, *self.availability, *(s.target for s in self.steps)]:
            if n not in names:
                names.append(n)
        return names

    def unavailable_reason(self, target: str) -> str | None:
        a = self.availability.get(target)
        if a is not None and not a.available:
            return a.reason or "no reason recorded"
        return None


def load_run(run_dir: str | Path) -> RunData:
    d = Path(run_dir)
    if not d.exists():
        raise ReportError(f"{d}: run directory not found")
    if not d.is_dir():
        raise ReportError(f"{d}: not a directory (expected a run directory runs/<run_id>/)")
    store = RunStore(d)
    meta = store.read_meta()  # StoreError (missing / bad JSON) or FormatVersionError
    meta_raw = json.loads((d / "meta.json").read_text())
    warnings: list[str] = []

    read = store.read_steps()
    warnings.extend(read.warnings)
    if not store.steps_path.exists():
        warnings.append(f"{store.steps_path}: not found; no step finished in this run")
    elif not read.steps:
        warnings.append(f"{store.steps_path}: no complete step recorded")

    avail = {a.target: a for a in store.read_targets()}
    if not (d / "targets.jsonl").exists():
        warnings.append(f"{d / 'targets.jsonl'}: not found; target availability unknown")

    friction, torn = read_friction(d)
    if torn:
        warnings.append(
            f"{d / FRICTION}: truncated last line ignored (a measurement did not finish)"
        )

    series: dict[str, Any] | None
    try:
        series = load_series(d / SERIES_FILE)
    except FileNotFoundError:
        series = None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        series = None
        warnings.append(f"{d / SERIES_FILE}: not readable JSON ({err}); resource series not shown")

    exp: Experiment | None = None
    if (d / EXPERIMENT_FILE).is_file():
        try:
            exp = load_experiment(d / EXPERIMENT_FILE)
        except ExperimentError as err:
            warnings.append(f"stored experiment could not be parsed: {err}")

    return RunData(
        dir=d,
        meta=meta,
        meta_raw=meta_raw,
        steps=read.steps,
        availability=avail,
        friction=friction,
        series=series,
        experiment=exp,
        warnings=warnings,
        truncated_steps=read.truncated_last_line,
    )


def fairness_of(run: RunData) -> tuple[dict[str, Any] | None, str]:
    """The run's ``Experiment.fairness_settings()`` and where they came from.

    meta.json (key ``fairness`` / ``fairness_settings``, top level or under ``load``) wins; else
    the run's stored experiment.yaml is re-parsed. ``(None, why)`` when neither exists.
    """
    for container in (run.meta_raw, run.meta_raw.get("load") or {}):
        for key in ("fairness", "fairness_settings"):
            val = container.get(key) if isinstance(container, dict) else None
            if isinstance(val, dict) and val:
                return val, f"{run.dir / 'meta.json'}"
    if run.experiment is not None:
        return run.experiment.fairness_settings(), f"{run.dir / EXPERIMENT_FILE}"
    return (
        None,
        f"{run.dir}: meta.json has no fairness settings and {EXPERIMENT_FILE} is missing or invalid",
    )
