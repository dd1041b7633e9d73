"""prometheus.yml for a local run: every running server, the load generator and the process exporter.

    cfg = local_scrape_config(
        run_id="20250101-quick", rule_files=["recording-rules.yaml"],
        metrics_urls={"torchserve": "http://127.0.0.1:P1/metrics",
                      "tfserving": "http://127.0.0.1:P2/monitoring/prometheus/metrics"},
        generator_port=9646, process_exporter_port=9647)

One job per server, named after its adapter's ``Wire.service``; the URL's path must be its
``Wire.metrics_path`` (the local runtime remaps ports, never paths).
    write_scrape_config(run_dir / "prometheus" / "prometheus.yml", cfg)

Every target carries ``namespace="local"`` and ``run=<run_id>`` so the dashboards' and rules'
``namespace`` / ``run`` dimensions work locally as on kind. Servers also get ``server``.
Scrape and rule evaluation every second: local steps last seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from servecmp.observability import names as n
from servecmp.servers import registry
from servecmp.servers.base import ServerAdapter

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


def server_target(name: str, url: str, adapter: ServerAdapter | None) -> ScrapeTarget:
    """The scrape target of one running server: job = its adapter's ``Wire.service``, and the URL's
    path must be its ``Wire.metrics_path`` (the local runtime remaps ports, never paths). Without
    an adapter (a server this installation cannot load) the job is the server's name."""
    if adapter is not None:
        if adapter.wire is None:
            raise ValueError(f"{name}: an in-process baseline has no metrics endpoint to scrape")
        t = ScrapeTarget.from_url(adapter.wire.service, url, server=name)
        if t.metrics_path != adapter.wire.metrics_path:
            raise ValueError(
                f"{name}: metrics URL {url!r} does not end in its adapter's metrics path "
                f"{adapter.wire.metrics_path!r}"
            )
        return t
    return ScrapeTarget.from_url(name, url, server=name)


def _adapter(name: str, adapters: Sequence[ServerAdapter] | None) -> ServerAdapter | None:
    if adapters is not None:
        for a in adapters:
            if a.name == name:
                return a
        raise ValueError(
            f"metrics_urls: unknown server {name!r}; known: {', '.join(a.name for a in adapters)}"
        )
    try:
        return registry.get(name)
    except KeyError as err:
        raise ValueError(f"metrics_urls: {err.args[0]}") from None
    except (ImportError, AttributeError):  # registered, but its package cannot be loaded here
        return None


def local_scrape_config(
    *,
    run_id: str,
    metrics_urls: Mapping[str, str] | None = None,
    generator_port: int | None = None,
    process_exporter_port: int | None = None,
    rule_files: list[str] | None = None,
    host: str = "127.0.0.1",
    scrape_interval: str = "1s",
    adapters: Sequence[ServerAdapter] | None = None,
) -> dict[str, Any]:
    """The scrape config for whichever of the parts run (None = not running).

    ``metrics_urls``: server name -> the metrics URL of that running server (its metrics port
    here, its adapter's metrics path); one job per server, named after its adapter's
    ``Wire.service`` (``adapters``: the servers to look names up in, default the registry)."""
    targets = [
        server_target(name, url, _adapter(name, adapters))
        for name, url in (metrics_urls or {}).items()
    ]
    if generator_port:
        targets.append(ScrapeTarget(n.JOB_GENERATOR, f"{host}:{generator_port}"))
    if process_exporter_port:
        targets.append(ScrapeTarget(n.JOB_PROCESSES, f"{host}:{process_exporter_port}"))
    return build_scrape_config(
        targets,
        run_id=run_id,
        rule_files=rule_files,
        scrape_interval=scrape_interval,
        evaluation_interval=scrape_interval,
    )


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


def write_scrape_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(cfg))
    return path
