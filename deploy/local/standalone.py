"""One local TorchServe for a model, outside a full run (benchmarks, tests): the same runtime,
generated config and exported .mar that `servecmp run` uses."""

from __future__ import annotations

from pathlib import Path

from servecmp.deploy.configgen import Placement, Ports, render_all, write_configs
from servecmp.deploy.local.ports import free_ports
from servecmp.deploy.local.tfserving import TFServingServer
from servecmp.deploy.local.torchserve import TorchServeServer
from servecmp.experiment import parse_experiment


def start_torchserve(
    model: str,
    work_dir: Path,
    artifacts_root: Path,
    *,
    cpus: tuple[int, ...] | None = None,
    ready_timeout_s: float = 180.0,
    **experiment_fields: object,
) -> TorchServeServer:
    """Start TorchServe serving ``model`` (already exported under ``artifacts_root``) and wait
    until a worker is READY. The caller stops it (``server.stop()``)."""
    from servecmp.models.export import artifacts

    # Absolute: TorchServe runs with its log directory as cwd.
    art = artifacts(model, Path(artifacts_root).resolve())
    work_dir = Path(work_dir).resolve()
    exp = parse_experiment(
        {"name": "standalone", "model": model,
         "targets": [{"server": "torchserve", "protocol": "rest"}], **experiment_fields}
    )
    placement = Placement.local(
        Ports(*free_ports(7)),
        ts_model_store=str(art.model_store),
        tfs_model_root=str(work_dir / "tfs"),
        ts_config_dir=str(work_dir / "configs" / "torchserve"),
        tfs_config_dir=str(work_dir / "configs" / "tfserving"),
    )
    configs = render_all(exp, placement)
    dirs = write_configs(configs, work_dir / "configs")
    server = TorchServeServer(configs, dirs["torchserve"], work_dir, model, cpus=cpus)
    server.start()
    try:
        server.wait_ready(timeout_s=ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def start_tfserving(
    model: str,
    work_dir: Path,
    artifacts_root: Path,
    *,
    cpus: tuple[int, ...] | None = None,
    ready_timeout_s: float = 180.0,
    **experiment_fields: object,
) -> TFServingServer:
    """Start the REAL TF Serving (binary on PATH, or the pinned image under Docker) serving v1
    of ``model`` from a model root under ``work_dir``; raises ServerUnavailable when neither exists."""
    from servecmp.deploy.local.friction import copy_version
    from servecmp.deploy.local.server import ServerUnavailable
    from servecmp.models.export import artifacts

    reason = TFServingServer.availability()
    if reason:
        raise ServerUnavailable(reason)
    art = artifacts(model, Path(artifacts_root).resolve())
    work_dir = Path(work_dir).resolve()
    root = work_dir / "models" / "tfserving"
    (root / model).mkdir(parents=True, exist_ok=True)
    copy_version(art.savedmodel, root / model, 1)
    exp = parse_experiment(
        {"name": "standalone", "model": model,
         "targets": [{"server": "tfserving", "protocol": "rest"}], **experiment_fields}
    )
    placement = Placement.local(
        Ports(*free_ports(7)),
        ts_model_store=str(art.model_store),
        tfs_model_root=str(root),
        ts_config_dir=str(work_dir / "configs" / "torchserve"),
        tfs_config_dir=str(work_dir / "configs" / "tfserving"),
    )
    configs = render_all(exp, placement)
    dirs = write_configs(configs, work_dir / "configs")
    server = TFServingServer(configs, dirs["tfserving"], work_dir, model, cpus=cpus)
    server.start()
    try:
        server.wait_ready(timeout_s=ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server
