"""The local placement of a run: free loopback ports and paths under the run directory, with
every server's generated files written to ``<run_dir>/configs/<server>/``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servecmp.configgen import GeneratedConfigs, Placement, render_all, write_configs
from servecmp.experiment import Experiment
from servecmp.servers import registry
from servecmp.servers.base import ServerAdapter


def model_root(run_dir: Path, server: str) -> Path:
    """Where a server's published model versions live in a run (``ServerAdapter.publish``)."""
    return run_dir / "models" / server


def local_configs(
    exp: Experiment, run_dir: Path, artifacts: Any, servers: Sequence[ServerAdapter] | None = None
) -> tuple[GeneratedConfigs, dict[str, Path]]:
    """Render every registered server's files (``servers``: only these) for a local run and
    write them; ``artifacts`` is the exported model (``models.export.artifacts``) the servers'
    paths point into."""
    cfg_dir = run_dir / "configs"
    servers = list(servers) if servers is not None else registry.servers()
    placement = Placement.local(
        {
            a.name: a.local_paths(artifacts, model_root(run_dir, a.name), cfg_dir / a.name)
            for a in servers
        },
        adapters=servers,
    )
    configs = render_all(exp, placement, servers)
    return configs, write_configs(configs, cfg_dir)
