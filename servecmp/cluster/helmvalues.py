"""Helm inputs from one experiment: the generated configs (files) and the values derived from it.

``servecmp.configgen`` is the only source of server configs; this module writes them with
``write_configs`` and adds what the chart needs besides (model, shared budget, thread env,
which servecmp/servers/protocols the targets use, and each server's ``wire`` block: ports, metrics and
ready paths, in-container paths, generated from its adapter's ``Wire`` so the chart carries no
copy of them). ``servecmp kind up`` (servecmp/cluster/commands.py) writes them as::

    servecmp kind values loadtests/experiments/quick.yaml --out build/kind

does, and passes ``-f build/kind/experiment-values.yaml`` plus :func:`set_file_args`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from servecmp.configgen import GeneratedConfigs, Placement, render_all, write_configs
from servecmp.experiment import Experiment, Protocol


def set_file_keys() -> dict[str, tuple[str, str]]:
    """Helm value key -> (server, generated file name), from each adapter's ``chart_files``."""
    from servecmp.servers import registry

    return {
        f"{a.chart}.{key}": (a.name, file)
        for a in registry.servers() if a.chart is not None
        for key, file in a.chart_files.items()
    }


def experiment_values(exp: Experiment, configs: GeneratedConfigs) -> dict[str, Any]:
    """Values derived from the experiment (everything but the config files themselves)."""
    from servecmp.models.registry import get_model
    from servecmp.servers import registry

    servers = {t.server for t in exp.targets}
    protocols = sorted(
        {t.protocol.value for t in exp.targets if t.protocol in (Protocol.rest, Protocol.grpc)}
    )
    cpu: float | int = exp.resources.cpus
    if float(cpu).is_integer():
        cpu = int(cpu)
    values: dict[str, Any] = {
        "global": {
            "model": {
                "name": exp.model,
                "inputShape": list(get_model(exp.model).input_shape),
            },
            "resources": {"cpu": cpu, "memoryMiB": exp.resources.memory_mib},
            "protocols": protocols or ["rest", "grpc"],
        },
    }
    for a in registry.servers():
        if a.chart is None or a.wire is None:
            continue
        values[a.chart] = {
            "enabled": a.name in servers,
            "env": dict(sorted(configs.env.get(a.name, {}).items())),
            "wire": a.wire.values(),
        }
    return values


def set_file_args(config_dir: Path) -> list[str]:
    """``--set-file key=path`` arguments for the files under ``config_dir/<server>/`` that were
    generated (a server the experiment does not target may have none; the chart refuses an
    enabled server whose file is missing, naming the --set-file)."""
    out: list[str] = []
    for key, (server, name) in set_file_keys().items():
        if (config_dir / server / name).is_file():
            out += ["--set-file", f"{key}={config_dir / server / name}"]
    return out


def write_helm_inputs(exp: Experiment, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<out>/configs/<server>/*`` and ``<out>/experiment-values.yaml``."""
    configs = render_all(exp, Placement.kubernetes())
    config_dir = out_dir / "configs"
    write_configs(configs, config_dir)
    values_path = out_dir / "experiment-values.yaml"
    values_path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Generated from experiment {exp.name!r} ({exp.digest()}) by servecmp.cluster.helmvalues\n"
    values_path.write_text(
        header + yaml.safe_dump(experiment_values(exp, configs), sort_keys=False)
    )
    return config_dir, values_path
