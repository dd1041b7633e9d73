"""Operational friction, measured the same way for both servers: typed records in ``friction.jsonl``.

Each record is one measurement of one server (unit and direction come from ``FRICTION_METRICS``,
never from the writer). A measurement that could not run here is still recorded, with
``available=false`` and the reason, so the friction table shows the gap instead of hiding it.

A metric may be measured several times per server in one run (cold start and idle memory: one
measurement per interleaved start-up); each is its own record with its ``index`` (0, 1, ...).
``measurements()`` groups them; a run stored before ``index`` existed reads as index 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from servecmp.results.metrics import Better
from servecmp.results.schema import FORMAT_VERSION, _Record
from servecmp.results.store import _append_line, _read_jsonl

FRICTION = "friction.jsonl"


@dataclass(frozen=True)
class FrictionMetric:
    name: str
    unit: str
    better: Better
    group: str  # friction table section
    description: str


_DEFS = [
    FrictionMetric(
        "packaging_steps",
        "commands",
        Better.lower,
        "packaging",
        "commands run to package the model for this server",
    ),
    FrictionMetric(
        "packaging_s", "s", Better.lower, "packaging", "seconds the packaging commands took"
    ),
    FrictionMetric(
        "artifact_bytes",
        "bytes",
        Better.lower,
        "packaging",
        "bytes of the deployable model artifact",
    ),
    FrictionMetric(
        "image_bytes",
        "bytes",
        Better.lower,
        "packaging",
        "container image size on the node (cluster path)",
    ),
    FrictionMetric(
        "cold_start_ready_s",
        "s",
        Better.lower,
        "start-up",
        "process start → server reports the model ready",
    ),
    FrictionMetric(
        "cold_start_first_inference_s",
        "s",
        Better.lower,
        "start-up",
        "process start → first correct inference",
    ),
    FrictionMetric(
        "install_ready_s", "s", Better.lower, "start-up", "helm install → pod Ready (cluster path)"
    ),
    FrictionMetric(
        "idle_rss_bytes",
        "bytes",
        Better.lower,
        "resources",
        "resident memory of the whole server process tree at idle",
    ),
    FrictionMetric(
        "peak_rss_bytes",
        "bytes",
        Better.lower,
        "resources",
        "peak resident memory of the process tree under load",
    ),
    FrictionMetric(
        "idle_cpu_cores", "cores", Better.lower, "resources", "CPU used at idle (1.0 = one core)"
    ),
    FrictionMetric(
        "config_files",
        "files",
        Better.lower,
        "configuration",
        "configuration files (incl. the command line) we had to write",
    ),
    FrictionMetric(
        "config_lines", "lines", Better.lower, "configuration", "non-comment configuration lines"
    ),
    FrictionMetric(
        "config_knobs_changed",
        "knobs",
        Better.lower,
        "configuration",
        "settings we had to set away from the server's defaults",
    ),
    FrictionMetric(
        "metric_families",
        "families",
        Better.higher,
        "observability",
        "Prometheus metric families the server exposes natively",
    ),
    FrictionMetric(
        "server_latency_quantiles",
        "yes/no",
        Better.higher,
        "observability",
        "server-side latency histogram/summary exposed (quantiles possible)",
    ),
    FrictionMetric(
        "update_failed_requests",
        "requests",
        Better.lower,
        "model update",
        "requests that failed during the v1 → v2 update under load",
    ),
    FrictionMetric(
        "update_s", "s", Better.lower, "model update", "update started → first answer from v2"
    ),
    FrictionMetric(
        "recovery_s", "s", Better.lower, "recovery", "server killed under load → answering again"
    ),
    FrictionMetric(
        "recovery_lost_requests",
        "requests",
        Better.lower,
        "recovery",
        "requests lost while the server was down",
    ),
    FrictionMetric(
        "bad_payload_clear_errors",
        "of 5",
        Better.higher,
        "bad payloads",
        "bad payloads answered with a 4xx whose message names the problem",
    ),
    FrictionMetric(
        "oversize_crashed",
        "yes/no",
        Better.lower,
        "bad payloads",
        "a body just over the server's request-size limit took the server down",
    ),
]

FRICTION_METRICS: dict[str, FrictionMetric] = {m.name: m for m in _DEFS}


class FrictionRecord(_Record):
    format_version: int = FORMAT_VERSION
    # a registry name (servecmp.servers.registry); any server's, so a stored run of a server this
    # installation does not register still loads (the report shows it under this name)
    server: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    metric: str
    value: float | None = None
    available: bool = True
    reason: str = ""
    placement: Literal["local", "kubernetes"] = "local"
    # which measurement of this (server, metric, placement) in the run: 0, 1, ... in the order
    # taken (repeated start-ups); runs stored before repeats existed have one record, index 0
    index: int = Field(default=0, ge=0)
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def definition(self) -> FrictionMetric:
        return FRICTION_METRICS[self.metric]


def record(
    server: str,
    metric: str,
    value: float | None,
    *,
    details: dict[str, Any] | None = None,
    placement: str = "local",
    index: int = 0,
) -> FrictionRecord:
    if metric not in FRICTION_METRICS:
        raise KeyError(f"unknown friction metric {metric!r}; known: {', '.join(FRICTION_METRICS)}")
    return FrictionRecord.model_validate(
        {
            "server": server,
            "metric": metric,
            "value": value,
            "details": details or {},
            "placement": placement,
            "index": index,
        }
    )


def unavailable(
    server: str, metric: str, reason: str, *, placement: str = "local", index: int = 0
) -> FrictionRecord:
    if metric not in FRICTION_METRICS:
        raise KeyError(f"unknown friction metric {metric!r}")
    return FrictionRecord.model_validate(
        {
            "server": server,
            "metric": metric,
            "available": False,
            "reason": reason,
            "placement": placement,
            "index": index,
        }
    )


def append_friction(run_dir: Path, rec: FrictionRecord) -> None:
    _append_line(Path(run_dir) / FRICTION, rec)


def read_friction(run_dir: Path) -> tuple[list[FrictionRecord], bool]:
    """Every record in the order written (all measurements of a repeated metric, see
    ``measurements``) and whether the last line was truncated (a run killed mid-write)."""
    recs, truncated, _ = _read_jsonl(Path(run_dir) / FRICTION, FrictionRecord)
    return recs, truncated


MeasurementKey = tuple[str, str, str]  # (server, metric, placement)


def measurements(records: Iterable[FrictionRecord]) -> dict[MeasurementKey, list[FrictionRecord]]:
    """Every measurement per (server, metric, placement), ordered by ``index``: one record for a
    metric measured once (and for every metric of a run stored before repeats existed), several
    for repeated ones. Unavailable measurements stay in the list (``available`` false, with the
    reason) so a judge sees how many of the attempts produced a value. Two records with the
    same index (a metric re-measured by an older writer) keep their written order."""
    out: dict[MeasurementKey, list[FrictionRecord]] = {}
    for r in records:
        out.setdefault((r.server, r.metric, r.placement), []).append(r)
    for recs in out.values():
        recs.sort(key=lambda r: r.index)  # stable: equal indexes keep file order
    return out
