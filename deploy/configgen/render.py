"""Render every server's files for one experiment and one placement."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from servecmp.deploy.configgen import tfserving, torchserve
from servecmp.deploy.configgen.placement import Placement
from servecmp.experiment import Experiment


@dataclass(frozen=True)
class GeneratedConfigs:
    placement: Placement
    # server -> {file name -> content}; these are the only server config files in the project.
    files: dict[str, dict[str, str]]
    # server -> environment for the server process / container (thread budget).
    env: dict[str, dict[str, str]] = field(default_factory=dict)

    def tfserving_flags(self) -> list[str]:
        return [ln for ln in self.files["tfserving"]["flags.txt"].splitlines() if ln.strip()]


def render_all(exp: Experiment, placement: Placement) -> GeneratedConfigs:
    # Each server renders the experiment as it runs it: its own tuning.per_server entry applied.
    ts, tfs = exp.for_server("torchserve"), exp.for_server("tfserving")
    return _render(ts, tfs, placement)


def _render(ts: Experiment, exp: Experiment, placement: Placement) -> GeneratedConfigs:
    tfs_files = {
        "models.config": tfserving.models_config(exp, placement),
        "monitoring.config": tfserving.monitoring_config(),
        "batching.config": tfserving.batching_config(exp),
        "flags.txt": "\n".join(tfserving.flags(exp, placement)) + "\n",
    }
    return GeneratedConfigs(
        placement=placement,
        files={
            "torchserve": {"config.properties": torchserve.config_properties(ts, placement)},
            "tfserving": tfs_files,
        },
        env={"torchserve": torchserve.worker_env(ts), "tfserving": tfserving.worker_env(exp)},
    )


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
