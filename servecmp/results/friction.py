"""Operational friction, measured the same way for both servers: typed records in ``friction.jsonl``.

Each record is one measurement of one server (unit and direction come from ``FRICTION_METRICS``,
never from the writer). A measurement that could not run here is still recorded, with
``available=false`` and the reason, so the friction table shows the gap instead of hiding it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

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
    FrictionMetric("packaging_steps", "commands", Better.lower, "packaging", "commands run to package the model for this server"),
    FrictionMetric("packaging_s", "s", Better.lower, "packaging", "seconds the packaging commands took"),
    FrictionMetric("artifact_bytes", "bytes", Better.lower, "packaging", "bytes of the deployable model artifact"),
    FrictionMetric("image_bytes", "bytes", Better.lower, "packaging", "container image size on the node (cluster path)"),
    FrictionMetric("cold_start_ready_s", "s", Better.lower, "start-up", "process start → server reports the model ready"),
    FrictionMetric("cold_start_first_inference_s", "s", Better.lower, "start-up", "process start → first correct inference"),
    FrictionMetric("install_ready_s", "s", Better.lower, "start-up", "helm install → pod Ready (cluster path)"),
    FrictionMetric("idle_rss_bytes", "bytes", Better.lower, "resources", "resident memory of the whole server process tree at idle"),
    FrictionMetric("peak_rss_bytes", "bytes", Better.lower, "resources", "peak resident memory of the process tree under load"),
    FrictionMetric("idle_cpu_cores", "cores", Better.lower, "resources", "CPU used at idle (1.0 = one core)"),
    FrictionMetric("config_files", "files", Better.lower, "configuration", "configuration files (incl. the command line) we had to write"),
    FrictionMetric("config_lines", "lines", Better.lower, "configuration", "non-comment configuration lines"),
    FrictionMetric("config_knobs_changed", "knobs", Better.lower, "configuration", "settings we had to set away from the server's defaults"),
    FrictionMetric("metric_families", "families", Better.higher, "observability", "Prometheus metric families the server exposes natively"),
    FrictionMetric("server_latency_quantiles", "yes/no", Better.higher, "observability", "server-side latency histogram/summary exposed (quantiles possible)"),
    FrictionMetric("update_failed_requests", "requests", Better.lower, "model update", "requests that failed during the v1 → v2 update under load"),
    FrictionMetric("update_s", "s", Better.lower, "model update", "update started → first answer from v2"),
    FrictionMetric("recovery_s", "s", Better.lower, "recovery", "server killed under load → answering again"),
    FrictionMetric("recovery_lost_requests", "requests", Better.lower, "recovery", "requests lost while the server was down"),
    FrictionMetric("bad_payload_clear_errors", "of 5", Better.higher, "bad payloads", "bad payloads answered with a 4xx whose message names the problem"),
]

FRICTION_METRICS: dict[str, FrictionMetric] = {m.name: m for m in _DEFS}


class FrictionRecord(_Record):
    format_version: int = FORMAT_VERSION
    # a registry server name (servers/registry.py); stored runs keep the name they were made with
    server: Annotated[str, Field(min_length=1)]
    metric: str
    value: float | None = None
    available: bool = True
    reason: str = ""
    placement: Literal["local", "kubernetes"] = "local"
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
) -> FrictionRecord:
    if metric not in FRICTION_METRICS:
        raise KeyError(f"unknown friction metric {metric!r}; known: {', '.join(FRICTION_METRICS)}")
    return FrictionRecord.model_validate(
        {"server": server, "metric": metric, "value": value, "details": details or {}, "placement": placement}
    )


def unavailable(server: str, metric: str, reason: str, *, placement: str = "local") -> FrictionRecord:
    if metric not in FRICTION_METRICS:
        raise KeyError(f"unknown friction metric {metric!r}")
    return FrictionRecord.model_validate(
        {"server": server, "metric": metric, "available": False, "reason": reason, "placement": placement}
    )


def append_friction(run_dir: Path, rec: FrictionRecord) -> None:
    _append_line(Path(run_dir) / FRICTION, rec)


def read_friction(run_dir: Path) -> tuple[list[FrictionRecord], bool]:
    """Records and whether the last line was truncated (a run killed mid-write)."""
    recs, truncated, _ = _read_jsonl(Path(run_dir) / FRICTION, FrictionRecord)
    return recs, truncated
