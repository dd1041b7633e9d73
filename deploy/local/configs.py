"""The local placement of a run: free loopback ports and paths under the run directory, with
every server's generated files written to ``<run_dir>/configs/<server>/``."""

from __future__ import annotations

from pathlib import Path

from servecmp.deploy.configgen import GeneratedConfigs, Placement, Ports, render_all, write_configs
from servecmp.deploy.local.ports import free_ports
from servecmp.experiment import Experiment


def local_configs(
    exp: Experiment, run_dir: Path, *, ts_model_store: Path, tfs_model_root: Path
) -> tuple[GeneratedConfigs, dict[str, Path]]:
    cfg_dir = run_dir / "configs"
    placement = Placement.local(
        Ports(*free_ports(7)),
        ts_model_store=str(ts_model_store),
        tfs_model_root=str(tfs_model_root),
        ts_config_dir=str(cfg_dir / "torchserve"),
        tfs_config_dir=str(cfg_dir / "tfserving"),
    )
    configs = render_all(exp, placement)
    return configs, write_configs(configs, cfg_dir)
