"""One local server for a model, outside a full run (benchmarks, tests): the same runtime,
generated config and exported artifacts that `servecmp run` uses."""

from __future__ import annotations

from pathlib import Path

from servecmp.deploy.local.configs import local_configs
from servecmp.deploy.local.server import LocalServer, ServerUnavailable
from servecmp.deploy.local.tfserving import TFServingServer
from servecmp.deploy.local.torchserve import TorchServeServer
from servecmp.experiment import parse_experiment


def _start(
    cls: type[LocalServer],
    model: str,
    work_dir: Path,
    artifacts_root: Path,
    cpus: tuple[int, ...] | None,
    ready_timeout_s: float,
    fields: dict[str, object],
) -> LocalServer:
    from servecmp.deploy.local.friction import copy_version
    from servecmp.models.export import artifacts

    reason = cls.availability()
    if reason:
        raise ServerUnavailable(reason)
    # Absolute: servers run with their log directory as cwd.
    art = artifacts(model, Path(artifacts_root).resolve())
    work_dir = Path(work_dir).resolve()
    tfs_root = work_dir / "models" / "tfserving"
    if cls is TFServingServer:  # TF Serving serves the newest version under its base path: v1 only
        (tfs_root / model).mkdir(parents=True, exist_ok=True)
        copy_version(art.savedmodel, tfs_root / model, 1)
    exp = parse_experiment(
        {"name": "standalone", "model": model,
         "targets": [{"server": cls.name, "protocol": "rest"}], **fields}
    )
    configs, dirs = local_configs(exp, work_dir, ts_model_store=art.model_store, tfs_model_root=tfs_root)
    server = cls(configs, dirs[cls.name], work_dir, model, cpus=cpus,
                 memory_mib=exp.resources.memory_mib)
    server.start()
    try:
        server.wait_ready(timeout_s=ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def start_torchserve(
    model: str, work_dir: Path, artifacts_root: Path, *, cpus: tuple[int, ...] | None = None,
    ready_timeout_s: float = 180.0, **experiment_fields: object,
) -> TorchServeServer:
    """Start TorchServe serving ``model`` (exported under ``artifacts_root``) and wait until a
    worker is READY. The caller stops it (``server.stop()``)."""
    server = _start(TorchServeServer, model, work_dir, artifacts_root, cpus, ready_timeout_s, experiment_fields)
    assert isinstance(server, TorchServeServer)
    return server


def start_tfserving(
    model: str, work_dir: Path, artifacts_root: Path, *, cpus: tuple[int, ...] | None = None,
    ready_timeout_s: float = 180.0, **experiment_fields: object,
) -> TFServingServer:
    """Start the REAL TF Serving (binary on PATH, or the pinned image under Docker) serving v1
    of ``model``; raises ServerUnavailable when neither exists."""
    server = _start(TFServingServer, model, work_dir, artifacts_root, cpus, ready_timeout_s, experiment_fields)
    assert isinstance(server, TFServingServer)
    return server
