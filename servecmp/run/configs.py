"""The local placement of a run: free loopback ports and paths under the run directory, with
the generated files of the servers the run starts written to ``<run_dir>/configs/<server>/``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from servecmp.configgen import GeneratedConfigs, Placement, render_all, write_configs
from servecmp.experiment import Experiment, Target
from servecmp.servers import registry
from servecmp.servers.base import ServerAdapter


def model_root(run_dir: Path, server: str) -> Path:
    """Where a server's published model versions live in a run (``ServerAdapter.publish``)."""
    return run_dir / "models" / server


def run_servers(targets: Iterable[Target]) -> list[ServerAdapter]:
    """The servers ``targets`` name (in-process baselines excluded), in registry order: a run
    renders, starts and records these and no other registered server."""
    named = {t.server for t in targets}
    # only the named adapters are looked up: no other server's package is imported
    adapters = (registry.get(n) for n in registry.names() if n in named)
    return [a for a in adapters if not a.is_inprocess]


def local_configs(
    exp: Experiment, run_dir: Path, artifacts: Any, servers: Sequence[ServerAdapter] | None = None
) -> tuple[GeneratedConfigs, dict[str, Path]]:
    """Render and write the files of the servers ``exp``'s targets name (``servers``: these
    instead) for a local run; ``artifacts`` is the exported model (``models.export.artifacts``)
    the servers' paths point into."""
    cfg_dir = run_dir / "configs"
    servers = list(servers) if servers is not None else run_servers(exp.targets)
    placement = Placement.local(
        {
            a.name: a.local_paths(artifacts, model_root(run_dir, a.name), cfg_dir / a.name)
            for a in servers
        },
        adapters=servers,
    )
    configs = render_all(exp, placement, servers)
    return configs, write_configs(configs, cfg_dir)
