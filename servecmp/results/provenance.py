"""Provenance for ``meta.json``: package versions, CPU, experiment hash, seeds, placement."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from servecmp.results.schema import RunMeta

# distribution names whose versions a reader needs to trust a comparison
PACKAGES = {
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "tensorflow-serving-api": ("tensorflow-serving-api",),
    "torchserve": ("torchserve",),
    "torch-model-archiver": ("torch-model-archiver",),
    "locust": ("locust",),
    "grpcio": ("grpcio",),
    "protobuf": ("protobuf",),
    "numpy": ("numpy",),
    "hdrhistogram": ("hdrhistogram",),
    "gevent": ("gevent",),
    "servecmp": ("servecmp",),
}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dists in PACKAGES.items():
        out[key] = None
        for dist in dists:
            try:
                out[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(psutil.Process().cpu_affinity() or []),
        "memory_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python_executable": sys.executable,
    }


def build_meta(
    exp: Any,
    run_id: str,
    *,
    placement: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> RunMeta:
    """RunMeta for an ``servecmp.experiment.Experiment``."""
    load = exp.load
    return RunMeta(
        run_id=run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        experiment_name=exp.name,
        experiment_digest=exp.digest(),
        versions=package_versions(),
        host=host_info(),
        targets=[t.name for t in exp.targets],
        payload={
            "model": exp.model,
            "batch_size": exp.payload.batch_size,
            "distinct_inputs": exp.payload.distinct_inputs,
            "atol": exp.payload.atol,
            "encodings": {t.name: t.effective_encoding.value for t in exp.targets},
        },
        seeds={"experiment": exp.seed},
        load={
            "profile": load.profile.value,
            "arrival": load.arrival.value,
            "warmup_s": load.warmup_s,
            "stability": load.stability.model_dump(),
            "rate": load.rate,
            "concurrency": list(load.concurrency),
            "rates": list(load.rates),
            "slo_p99_ms": load.slo_p99_ms,
            "request_timeout_s": load.request_timeout_s,
            "max_requests_per_step": load.max_requests_per_step,
            "generator_cpu_limit": load.generator_cpu_limit,
            "late_send_tolerance": load.late_send_tolerance,
            "late_threshold_ms": load.late_threshold_ms,
            "burn_in": load.burn_in.model_dump(),
            "repeats": load.repeats,
            "baseline_rounds": load.baseline_rounds,
        },
        placement=placement or {},
        fairness=exp.fairness_settings(),
        notes=notes or [],
    )
