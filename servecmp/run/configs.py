"""The local placement of a run: free loopback ports and paths under the run directory, with
every server's generated files written to ``<run_dir>/configs/<server>/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from servecmp.configgen import GeneratedConfigs, Placement, render_all, write_configs
from servecmp.experiment import Experiment


def model_root(run_dir: Path, server: str) -> Path:
    """Where a server's published model versions live in a run (``ServerAdapter.publish``)."""
    return run_dir / "models" / server


def local_configs(exp: Experiment, run_dir: Path, artifacts: Any) -> tuple[GeneratedConfigs, dict[str, Path]]:
    """Render every registered server's files for a local run and write them; ``artifacts`` is
    the exported model (``models.export.artifacts``) the servers' paths point into."""
    from servecmp.servers import registry

    cfg_dir = run_dir / "configs"
    servers = registry.servers()
    placement = Placement.local(
        {a.name: a.local_paths(artifacts, model_root(run_dir, a.name), cfg_dir / a.name) for a in servers},
        adapters=servers,
    )
    configs = render_all(exp, placement, servers)
    return configs, write_configs(configs, cfg_dir)
