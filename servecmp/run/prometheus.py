"""A REAL local Prometheus for one run: start, wait for targets, store the series, stop.

    cfg = scrape_config.local_scrape_config(run_id=..., metrics_urls={...}, generator_port=...)
    with LocalPrometheus(run_dir, cfg, cpus=generator_cpus) as prom:   # starts and waits ready
        prom.wait_targets_up()
        t0 = time.time(); ...load...; t1 = time.time()
        prom.store_series(t0, t1)          # -> <run_dir>/prometheus/series.json
    # stopped (SIGTERM to its process group)

Layout: ``<run_dir>/prometheus/`` is the TSDB (``--storage.tsdb.path``) and also holds
``prometheus.yml``, a copy of the recording rules and ``series.json``; the log goes to
``<run_dir>/logs/prometheus.log``. It listens on 127.0.0.1 only, on a free port.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import requests

from servecmp.observability import queries
from servecmp.observability import rules as rules_mod
from servecmp.observability import scrape_config as sc
from servecmp.run.ports import free_ports
from servecmp.run.procs import ManagedProcess

PROMETHEUS_BIN = "/usr/bin/prometheus"
RULES_FILE_NAME = "recording-rules.yaml"


class PrometheusError(RuntimeError):
    pass


def availability(binary: str = PROMETHEUS_BIN) -> str | None:
    """None when a Prometheus binary is here, else the reason (shown in results)."""
    if Path(binary).is_file() or shutil.which(binary):
        return None
    return f"{binary} not found (apt-get install prometheus; `make setup` does it)"


class LocalPrometheus:
    def __init__(
        self,
        run_dir: Path,
        scrape_config: dict[str, Any],
        *,
        binary: str = PROMETHEUS_BIN,
        port: int | None = None,
        rules_file: Path | None = None,
        with_rules: bool = True,
        cpus: Sequence[int] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "prometheus"
        self.binary = binary
        self.port = port or free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cpus = cpus
        self.config_path = self.dir / "prometheus.yml"
        self.series_path = self.dir / "series.json"
        self.log_path = self.run_dir / "logs" / "prometheus.log"
        self.process: ManagedProcess | None = None
        cfg = dict(scrape_config)
        if with_rules:
            # the rules come from the code (same text as helm/servecmp/files/recording-rules.yaml),
            # so an installed package needs no repository checkout
            self.dir.mkdir(parents=True, exist_ok=True)
            text = rules_file.read_text() if rules_file is not None else rules_mod.render()
            (self.dir / RULES_FILE_NAME).write_text(text)
            cfg["rule_files"] = [
                RULES_FILE_NAME,
                *[r for r in cfg.get("rule_files", []) if r != RULES_FILE_NAME],
            ]
        self.scrape_config = cfg

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self, ready_timeout_s: float = 30.0) -> LocalPrometheus:
        reason = availability(self.binary)
        if reason:
            raise PrometheusError(reason)
        sc.write_scrape_config(self.config_path, self.scrape_config)
        self.process = ManagedProcess(
            "prometheus",
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=info",
            ],
            log_path=self.log_path,
            cwd=self.dir,
            cpus=self.cpus,
        )
        self.wait_ready(ready_timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and not self.process.alive():
                raise PrometheusError(
                    f"prometheus exited with {self.process.popen.returncode}; log {self.log_path}:\n"
                    f"{self.process.log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready after {timeout_s:.0f} s; log {self.log_path}")

    def targets(self) -> list[dict[str, Any]]:
        r = requests.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=5)
        r.raise_for_status()
        return list(r.json()["data"]["activeTargets"])

    def wait_targets_up(
        self, jobs: Iterable[str] | None = None, timeout_s: float = 30.0, poll_s: float = 0.5
    ) -> list[dict[str, Any]]:
        """Block until every active target (of ``jobs``, default all) reports health "up"."""
        wanted = set(jobs) if jobs is not None else None
        deadline = time.monotonic() + timeout_s
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                last = [
                    t for t in self.targets() if wanted is None or t["labels"].get("job") in wanted
                ]
            except requests.RequestException:
                last = []
            if (
                last
                and all(t.get("health") == "up" for t in last)
                and (wanted is None or {t["labels"].get("job") for t in last} >= wanted)
            ):
                return last
            time.sleep(poll_s)
        detail = "; ".join(
            f"{t['labels'].get('job')} {t.get('scrapeUrl')}: {t.get('health')} {t.get('lastError', '')}"
            for t in last
        )
        raise PrometheusError(f"targets not up after {timeout_s:.0f} s: {detail or 'no targets'}")

    def reload(self, scrape_config: dict[str, Any] | None = None) -> None:
        """Rewrite the config (e.g. a target came up later) and hot-reload it."""
        if scrape_config is not None:
            self.scrape_config = {
                **scrape_config,
                "rule_files": self.scrape_config.get("rule_files", []),
            }
        sc.write_scrape_config(self.config_path, self.scrape_config)
        requests.post(f"{self.url}/-/reload", timeout=10).raise_for_status()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout=timeout)
            self.process = None

    def __enter__(self) -> LocalPrometheus:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- after the run -------------------------------------------------------------------
    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return requests.get(f"{self.url}/api/v1/query", params=params, timeout=10).json()

    def store_series(
        self,
        start: float,
        end: float,
        *,
        step: str = "1s",
        namespace: str = sc.LOCAL_NAMESPACE,
        run: str | None = None,
        extra_queries: dict[str, str] | None = None,
    ) -> Path:
        """Range-query every recorded series and panel query over [start, end] into series.json.

        Call it a couple of seconds after the load stops (one scrape + one rule evaluation) so
        the last samples are in."""
        q = queries.report_queries(namespace=namespace, run=run or ".*")
        q.update(extra_queries or {})
        doc = queries.fetch_series(self.url, start, end, step=step, queries=q)
        doc["namespace"] = namespace
        doc["run"] = run
        return queries.write_series(self.series_path, doc)
