"""Render every server's files for one experiment and one placement (each adapter's ``render``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from servecmp.configgen.placement import Placement
from servecmp.experiment import Experiment

if TYPE_CHECKING:
    from servecmp.servers.base import ServerAdapter


@dataclass(frozen=True)
class GeneratedConfigs:
    placement: Placement
    # server -> {file name -> content}; these are the only server config files in the project.
    files: dict[str, dict[str, str]]
    # server -> environment for the server process / container (thread budget).
    env: dict[str, dict[str, str]] = field(default_factory=dict)


def render_all(
    exp: Experiment, placement: Placement, adapters: Iterable[ServerAdapter] | None = None
) -> GeneratedConfigs:
    """Every registered server's files (``adapters``: only these). The full set is for the repo
    (Helm values, ``servecmp configs``), whatever the targets; a local run passes the servers its
    targets name (servecmp/run/configs.py ``run_servers``)."""
    if adapters is None:
        from servecmp.servers import registry

        adapters = registry.servers()
    files: dict[str, dict[str, str]] = {}
    env: dict[str, dict[str, str]] = {}
    for a in adapters:
        # each server renders the experiment as it runs it: its tuning.per_server entry applied
        rendered = a.render(exp.for_server(a.name), placement)
        files[a.name], env[a.name] = dict(rendered.files), dict(rendered.env)
    return GeneratedConfigs(placement=placement, files=files, env=env)


def write_configs(configs: GeneratedConfigs, out_dir: Path) -> dict[str, Path]:
    """Write ``<out_dir>/<server>/<file>`` (+ ``env`` files); returns each server's directory."""
    dirs: dict[str, Path] = {}
    for server, files in configs.files.items():
        d = out_dir / server
        d.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (d / name).write_text(content)
        env = configs.env.get(server, {})
        (d / "env").write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
        dirs[server] = d
    return dirs
