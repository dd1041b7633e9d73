"""One local server for a model, outside a full run (benchmarks, tests): the same adapter,
runtime, generated config and exported artifacts that `servecmp run` uses, for any registered
server."""

from __future__ import annotations

from pathlib import Path

from servecmp.experiment import parse_experiment
from servecmp.models.export import artifacts
from servecmp.run.configs import local_configs, model_root
from servecmp.run.server import LocalServer, ServerUnavailable
from servecmp.servers import registry


def start_server(
    server: str,
    model: str,
    work_dir: Path,
    artifacts_root: Path,
    *,
    cpus: tuple[int, ...] | None = None,
    ready_timeout_s: float = 180.0,
    **experiment_fields: object,
) -> LocalServer:
    """Start ``server`` (a registry name) serving v1 of ``model`` (exported under
    ``artifacts_root``) and wait until it is ready; raises ServerUnavailable when it cannot run
    here (the reason in the message). The caller stops it (``server.stop()``)."""
    adapter = registry.get(server)
    cls = adapter.launcher()
    reason = cls.availability()
    if reason:
        raise ServerUnavailable(reason)
    # Absolute: servers run with their log directory as cwd.
    art = artifacts(model, Path(artifacts_root).resolve())
    work_dir = Path(work_dir).resolve()
    adapter.publish(art, model_root(work_dir, adapter.name), 1)  # v1 only
    exp = parse_experiment(
        {
            "name": "standalone",
            "model": model,
            "targets": [{"server": adapter.name, "protocol": "rest"}],
            **experiment_fields,
        }
    )
    configs, dirs = local_configs(exp, work_dir, art, [adapter])  # free ports for this server only
    srv = cls(
        configs, dirs[adapter.name], work_dir, model, cpus=cpus, memory_mib=exp.resources.memory_mib
    )
    srv.start()
    try:
        srv.wait_ready(timeout_s=ready_timeout_s)
    except BaseException:
        srv.stop()
        raise
    return srv
