"""Configuration surface: how much configuration each server needed for the same experiment.

Counted from the generated files themselves (so the figure cannot drift from what we run):
files, non-comment lines, and knobs set away from the server's documented default. What counts
as a knob and what each server's defaults are lives behind its adapter
(``ServerAdapter.config_surface``; servecmp/servers/<name>/config.py); this module holds the record and
the generic count a server without documented defaults gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servecmp.configgen.render import GeneratedConfigs
    from servecmp.servers.base import RenderedConfig


@dataclass(frozen=True)
class Surface:
    server: str
    files: int
    lines: int
    knobs_set: int  # settings we wrote at all
    knobs_changed: int  # of those, away from the documented default
    changed: tuple[str, ...]


def content_lines(text: str) -> int:
    return sum(1 for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))


def generic_surface(server: str, rendered: RenderedConfig) -> Surface:
    """Every non-comment line and env variable is a knob set away from the default: an upper
    bound, for a server whose defaults the adapter does not list."""
    env = rendered.env
    lines = [
        f"{name}:{ln.strip()}"
        for name, text in rendered.files.items()
        for ln in text.splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    return Surface(
        server=server,
        files=len(rendered.files) + (1 if env else 0),
        lines=len(lines) + len(env),
        knobs_set=len(lines) + len(env),
        knobs_changed=len(lines) + len(env),
        changed=tuple(sorted([*lines, *(f"env.{k}" for k in env)])),
    )


def config_surface(configs: GeneratedConfigs) -> dict[str, Surface]:
    """Per server in ``configs`` (registry order): its adapter's count over its generated files."""
    from servecmp.servers import registry
    from servecmp.servers.base import RenderedConfig

    return {
        name: registry.get(name).config_surface(RenderedConfig(files, configs.env.get(name, {})))
        for name, files in configs.files.items()
    }
