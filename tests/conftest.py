"""Shared pytest fixtures. Each owner keeps a clearly delimited section."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# ==== servecmp.models fixtures (owner: models/) ===================================================


@pytest.fixture(scope="session")
def model_export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-exports")


@pytest.fixture(scope="session")
def exported_model(model_export_root: Path) -> Callable[[str], Path]:
    """``exported_model(name)`` exports ``name`` (v1, default seed) once per session; returns the
    export root (pass it to ``servecmp.models.export.artifacts``)."""
    from servecmp.models.export import artifacts, export_model

    def export(name: str) -> Path:
        if not artifacts(name, model_export_root).export_json.is_file():
            export_model(name, model_export_root)
        return model_export_root

    return export


# ==== end servecmp.models fixtures ================================================================


# ==== real local servers, started by the project's own runtime (deploy/local) =====================


def _no_java_or_torchserve() -> str | None:
    from servecmp.deploy.local.torchserve import TorchServeServer

    return TorchServeServer.availability()


@pytest.fixture(scope="module")
def local_torchserve(
    exported_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
):
    """``local_torchserve(model, **experiment_fields)`` starts a REAL TorchServe from the
    generated config.properties (deploy/configgen) with the exported .mar, waits until a worker
    is READY, and stops it (whole process group) at module end; asserts nothing survives."""
    import psutil

    from servecmp.deploy.configgen import Placement, Ports, render_all, write_configs
    from servecmp.deploy.local.ports import free_ports
    from servecmp.deploy.local.torchserve import TorchServeServer
    from servecmp.experiment import parse_experiment
    from servecmp.models.export import artifacts

    reason = _no_java_or_torchserve()
    if reason:
        pytest.skip(reason)
    started: list[TorchServeServer] = []

    def start(model: str, **fields: object) -> TorchServeServer:
        art = artifacts(model, exported_model(model))
        exp = parse_experiment(
            {"name": "t", "model": model, "targets": [{"server": "torchserve", "protocol": "rest"}], **fields}
        )
        run_dir = tmp_path_factory.mktemp(f"ts-{model}")
        placement = Placement.local(
            Ports(*free_ports(7)),
            ts_model_store=str(art.model_store),
            tfs_model_root=str(run_dir / "tfs"),
            ts_config_dir=str(run_dir / "configs" / "torchserve"),
            tfs_config_dir=str(run_dir / "configs" / "tfserving"),
        )
        configs = render_all(exp, placement)
        dirs = write_configs(configs, run_dir / "configs")
        server = TorchServeServer(configs, dirs["torchserve"], run_dir, model)
        server.start()
        started.append(server)
        server.wait_ready(timeout_s=180)
        return server

    yield start
    for server in started:
        tree = server.process.tree() if server.process else []
        server.stop()
        left = [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"TorchServe processes survived stop(): {left}"


# ==== end real local servers ======================================================================
