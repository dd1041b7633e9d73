"""prometheus.yml for a local run: both servers, the load generator and the process exporter.

    cfg = local_scrape_config(
        run_id="20250101-quick", rule_files=["recording-rules.yaml"],
        torchserve_metrics_url=ts.endpoints.metrics_url,        # http://127.0.0.1:P/metrics
        tfserving_metrics_url=tfs.endpoints.metrics_url,        # http://127.0.0.1:P/monitoring/prometheus/metrics
        generator_port=9646, process_exporter_port=9647)
    write_scrape_config(run_dir / "prometheus" / "prometheus.yml", cfg)

Every target carries ``namespace="local"`` and ``run=<run_id>`` so the dashboards' and rules'
``namespace`` / ``run`` dimensions work locally as on kind. Servers also get ``server``.
Scrape and rule evaluation every second: local steps last seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from servecmp.observability import names as n

LOCAL_NAMESPACE = "local"


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    address: str  # host:port
    metrics_path: str = "/metrics"
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, job: str, url: str, **labels: str) -> ScrapeTarget:
        u = urlsplit(url)
        if u.scheme not in ("http", "") or not u.netloc:
            raise ValueError(f"{job}: expected an http://host:port/path URL, got {url!r}")
        return cls(job, u.netloc, u.path or "/metrics", dict(labels))


def build_scrape_config(
    targets: list[ScrapeTarget],
    *,
    run_id: str,
    namespace: str = LOCAL_NAMESPACE,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    rule_files: list[str] | None = None,
) -> dict[str, Any]:
    jobs: dict[str, dict[str, Any]] = {}
    for t in targets:
        job = jobs.setdefault(
            t.job,
            {
                "job_name": t.job,
                "metrics_path": t.metrics_path,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [],
            },
        )
        if job["metrics_path"] != t.metrics_path:
            raise ValueError(f"job {t.job}: targets disagree on metrics_path")
        job["static_configs"].append(
            {
                "targets": [t.address],
                "labels": {"namespace": namespace, "run": run_id, **t.labels},
            }
        )
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": list(rule_files or []),
        "scrape_configs": [jobs[k] for k in sorted(jobs)],
    }


def local_scrape_config(
    *,
    run_id: str,
    torchserve_metrics_url: str | None = None,
    tfserving_metrics_url: str | None = None,
    kserve_metrics_url: str | None = None,
    generator_port: int | None = None,
    process_exporter_port: int | None = None,
    rule_files: list[str] | None = None,
    host: str = "127.0.0.1",
    scrape_interval: str = "1s",
) -> dict[str, Any]:
    """The scrape config for whichever of the parts run (None = not running)."""
    targets: list[ScrapeTarget] = []
    if torchserve_metrics_url:
        targets.append(
            ScrapeTarget.from_url(n.JOB_TORCHSERVE, torchserve_metrics_url, server="torchserve")
        )
    if tfserving_metrics_url:
        targets.append(
            ScrapeTarget.from_url(n.JOB_TFSERVING, tfserving_metrics_url, server="tfserving")
        )
    if kserve_metrics_url:  # the third server (servers/kserve): its /metrics on the HTTP port
        targets.append(ScrapeTarget.from_url(n.JOB_KSERVE, kserve_metrics_url, server="kserve"))
    if generator_port:
        targets.append(ScrapeTarget(n.JOB_GENERATOR, f"{host}:{generator_port}"))
    if process_exporter_port:
        targets.append(ScrapeTarget(n.JOB_PROCESSES, f"{host}:{process_exporter_port}"))
    return build_scrape_config(
        targets, run_id=run_id, rule_files=rule_files, scrape_interval=scrape_interval,
        evaluation_interval=scrape_interval,
    )


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


def write_scrape_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(cfg))
    return path
